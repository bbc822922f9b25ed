-- A worker hands back leased jobs it did not finish: they return to waiting at once, and the
-- unfinished attempt is not counted. A stopping worker also deregisters; one that stopped an
-- attempt itself (self-fencing) does not.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, worker_id, deregister (0|1), then pairs of id, token
-- Returns the number of jobs handed back.
local base = ARGV[1]
local FIELDS = job_fields({ 'tok', 'pr' })
local worker = ARGV[2]
local deregister = ARGV[3] == '1'
local released = 0
local now = now_ms()
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local job = load_job(base .. 'job:' .. id, FIELDS)
  if job.st == 'active' and job.tok == token and job.w == worker then
    redis.call('ZREM', base .. 'active', id)
    -- Ahead of everything else of its priority: it was already running.
    redis.call('ZADD', base .. 'wait', wait_score(tonumber(job.pr or '0'), 0), id)
    transition(base, id, job, 'released', now, { st = 'waiting', att = tonumber(job.att) - 1, pg = 0 })
    released = released + 1
  end
end
if released > 0 then redis.call('LPUSH', base .. 'wake', '1') end
if deregister then
  redis.call('ZREM', base .. 'workers', worker)
  redis.call('DEL', base .. 'worker:' .. worker)
end
return released

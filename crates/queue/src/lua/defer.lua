-- Put a leased job back for later without counting the attempt (e.g. its user is busy).
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id, token, delay_ms, reason
-- Returns 1 when deferred, 0 when the lease was lost.
local base, id, token = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local job = load_job(base .. 'job:' .. id, { 'tok' })
if job.st ~= 'active' or job.tok ~= token then return 0 end
local due = now + tonumber(ARGV[4])
redis.call('ZREM', base .. 'active', id)
redis.call('ZADD', base .. 'delayed', due, id)
transition(base, id, job, 'deferred', now,
  { st = 'delayed', att = tonumber(job.att) - 1, due = due }, { 'reason', ARGV[5] })
return 1

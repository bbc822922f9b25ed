-- A stopping worker hands back leased jobs it did not finish: they return to waiting at once,
-- and the unfinished attempt is not counted.
-- KEYS[1]: the queue's wait key
-- ARGV: base, worker_id, then pairs of id, token
-- Returns the number of jobs handed back.
local base = ARGV[1]
local worker = ARGV[2]
local released = 0
local now = now_ms()
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, 'st', 'tok', 'w', 'pr', 'att')
  if job[1] == 'active' and job[2] == token and job[3] == worker then
    redis.call('ZREM', base .. 'active', id)
    -- Ahead of everything else of its priority: it was already running.
    redis.call('ZADD', base .. 'wait', wait_score(tonumber(job[4] or '0'), 0), id)
    redis.call('HSET', jk, 'st', 'waiting', 'att', tonumber(job[5]) - 1, 'pg', 0)
    emit(base, id, 'released', now)
    released = released + 1
  end
end
if released > 0 then redis.call('LPUSH', base .. 'wake', '1') end
redis.call('ZREM', base .. 'workers', worker)
redis.call('DEL', base .. 'worker:' .. worker)
return released

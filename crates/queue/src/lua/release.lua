-- A stopping worker hands back leased jobs it did not finish: they return to waiting at once,
-- and the unfinished attempt is not counted.
-- KEYS[1]: the queue's wait key
-- ARGV: base, worker_id, now_ms, then pairs of id, attempt
-- Returns the number of jobs handed back.
local base = ARGV[1]
local worker = ARGV[2]
local released = 0
local now = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, 'st', 'att', 'w', 'pr')
  if job[1] == 'active' and job[2] == attempt and job[3] == worker then
    redis.call('ZREM', base .. 'active', id)
    -- Ahead of everything else of its priority: it was already running.
    redis.call('ZADD', base .. 'wait', tonumber(job[4] or '0') * 1e13, id)
    redis.call('HSET', jk, 'st', 'waiting', 'att', tonumber(attempt) - 1, 'pg', 0)
    emit(base, id, 'released', now)
    released = released + 1
  end
end
if released > 0 then redis.call('LPUSH', base .. 'wake', '1') end
redis.call('ZREM', base .. 'workers', worker)
redis.call('DEL', base .. 'worker:' .. worker)
return released

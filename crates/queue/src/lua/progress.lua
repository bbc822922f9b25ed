-- Record a running job's progress (0-100) if the caller still holds its lease.
-- KEYS[1]: the queue's wait key
-- ARGV: base, id, attempt, progress, now_ms
-- Returns 1 when recorded, 0 when the lease was lost.
local base, id, attempt = ARGV[1], ARGV[2], ARGV[3]
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'att')
if job[1] ~= 'active' or job[2] ~= attempt then return 0 end
redis.call('HSET', jk, 'pg', ARGV[4])
emit(base, id, 'progress', tonumber(ARGV[5]))
return 1

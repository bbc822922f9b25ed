-- Record a running job's progress (0-100) if the caller still holds its lease.
-- KEYS[1]: the queue's wait key
-- ARGV: base, id, token, progress
-- Returns 1 when recorded, 0 when the lease was lost.
local base, id, token = ARGV[1], ARGV[2], ARGV[3]
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'tok')
if job[1] ~= 'active' or job[2] ~= token then return 0 end
redis.call('HSET', jk, 'pg', ARGV[4])
emit(base, id, 'progress', now_ms())
return 1

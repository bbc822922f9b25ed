-- Put a leased job back for later without counting the attempt (e.g. its user is busy).
-- KEYS[1]: the queue's wait key
-- ARGV: base, id, token, delay_ms, reason
-- Returns 1 when deferred, 0 when the lease was lost.
local base, id, token = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'tok', 'att')
if job[1] ~= 'active' or job[2] ~= token then return 0 end
local due = now + tonumber(ARGV[4])
redis.call('ZREM', base .. 'active', id)
redis.call('ZADD', base .. 'delayed', due, id)
redis.call('HSET', jk, 'st', 'delayed', 'att', tonumber(job[3]) - 1, 'due', due)
emit(base, id, 'deferred', now, { 'reason', ARGV[5] })
return 1

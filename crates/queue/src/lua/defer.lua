-- Put a leased job back for later without counting the attempt (e.g. its user is busy).
-- KEYS[1]: the queue's wait key
-- ARGV: base, now_ms, id, attempt, delay_ms, reason
-- Returns 1 when deferred, 0 when the lease was lost.
local base, now, id, attempt = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'att')
if job[1] ~= 'active' or job[2] ~= attempt then return 0 end
local due = now + tonumber(ARGV[5])
redis.call('ZREM', base .. 'active', id)
redis.call('ZADD', base .. 'delayed', due, id)
redis.call('HSET', jk, 'st', 'delayed', 'att', tonumber(attempt) - 1, 'due', due)
emit(base, id, 'deferred', now, { 'reason', ARGV[6] })
return 1

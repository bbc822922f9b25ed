-- Make a delayed job (a delay, a retry backoff or a deferral) due now: it joins the line behind
-- the jobs of its priority that are already waiting.
-- KEYS[1]: the queue's wait key
-- ARGV: base, id
-- Returns 'promoted' | the job's state when it is not delayed | 'missing'.
local base, id = ARGV[1], ARGV[2]
local now = now_ms()
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'pr')
if not job[1] then return 'missing' end
if job[1] ~= 'delayed' then return job[1] end
redis.call('ZREM', base .. 'delayed', id)
local seq = redis.call('INCR', base .. 'seq')
redis.call('ZADD', base .. 'wait', wait_score(tonumber(job[2] or '0'), seq), id)
redis.call('HSET', jk, 'st', 'waiting')
redis.call('HDEL', jk, 'due')
emit(base, id, 'promoted', now)
redis.call('LPUSH', base .. 'wake', '1')
return 'promoted'

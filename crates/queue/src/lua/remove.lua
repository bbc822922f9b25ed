-- Remove a job that is not active.
-- KEYS[1]: the queue's wait key
-- ARGV: base, id
-- Returns 'removed' | 'active' | 'missing'.
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'dk')
if not job[1] then return 'missing' end
if job[1] == 'active' then return 'active' end
for _, set in ipairs({ 'wait', 'delayed', 'completed', 'failed' }) do
  redis.call('ZREM', base .. set, id)
end
if job[2] and job[2] ~= '' and redis.call('GET', base .. 'dedup:' .. job[2]) == id then
  redis.call('DEL', base .. 'dedup:' .. job[2])
end
local now = now_ms()
redis.call('HSET', jk, 'st', 'removed', 'fin', now)
emit(base, id, 'removed', now)
redis.call('DEL', jk)
return 'removed'

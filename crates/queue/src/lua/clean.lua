-- Delete finished jobs (completed or failed) that finished before a cutoff, at most `limit`.
-- KEYS[1]: the queue's wait key
-- ARGV: base, set ('completed' | 'failed'), cutoff_ms, limit
-- Returns the number of jobs deleted.
local base, set = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', base .. set, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do redis.call('DEL', base .. 'job:' .. id) end
for s = 1, #ids, 500 do
  redis.call('ZREM', base .. set, unpack(ids, s, math.min(s + 499, #ids)))
end
return #ids

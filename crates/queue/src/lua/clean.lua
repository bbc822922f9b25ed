-- Delete finished jobs (completed or failed) that finished before a cutoff, at most `limit`.
-- KEYS[1]: the queue's wait key
-- ARGV: base, set ('completed' | 'failed'), cutoff_ms, limit, now_ms
-- Returns the number of jobs deleted.
local base, set = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', base .. set, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
delete_finished(base, set, ids, tonumber(ARGV[5]))
return #ids

-- Delete finished jobs (completed or failed) that finished before a cutoff, at most `limit`.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, set ('completed' | 'failed'), older_than_ms, limit
-- Returns the number of jobs deleted.
local base, set = ARGV[1], ARGV[2]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', base .. set, '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, tonumber(ARGV[4]))
delete_finished(base, set, ids, now)
return #ids

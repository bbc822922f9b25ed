-- Remove a job that is not active.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id
-- Returns 'removed' | 'active' | 'missing'.
local base, id = ARGV[1], ARGV[2]
local job = load_job(base .. 'job:' .. id, { 'dk' })
if not job.st then return 'missing' end
if job.st == 'active' then return 'active' end
for _, set in ipairs({ 'wait', 'delayed', 'completed', 'failed' }) do
  redis.call('ZREM', base .. set, id)
end
release_dedup(base, job.dk, id)
local now = now_ms()
-- The event carries the final version; the hash itself goes.
job.v = (tonumber(job.v) or 0) + 1
job.st, job.fin = 'removed', now
record(base, id, 'removed', now, job)
redis.call('DEL', base .. 'job:' .. id)
return 'removed'

-- Record a running job's progress (0-100) if the caller still holds its lease.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id, token, progress
-- Returns 1 when recorded, 0 when the lease was lost.
local base, id, token = ARGV[1], ARGV[2], ARGV[3]
local job = load_job(base .. 'job:' .. id, { 'tok' })
if job.st ~= 'active' or job.tok ~= token then return 0 end
transition(base, id, job, 'progress', now_ms(), { pg = ARGV[4] })
return 1

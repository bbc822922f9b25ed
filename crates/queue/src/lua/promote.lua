-- Make a delayed job (a delay, a retry backoff or a deferral) due now: it joins the line behind
-- the jobs of its priority that are already waiting.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id
-- Returns 'promoted' | the job's state when it is not delayed | 'missing'.
local base, id = ARGV[1], ARGV[2]
local now = now_ms()
local job = load_job(base .. 'job:' .. id, { 'pr' })
if not job.st then return 'missing' end
if job.st ~= 'delayed' then return job.st end
redis.call('ZREM', base .. 'delayed', id)
local seq = redis.call('INCR', base .. 'seq')
redis.call('ZADD', base .. 'wait', wait_score(tonumber(job.pr or '0'), seq), id)
transition(base, id, job, 'promoted', now, { st = 'waiting', due = false })
redis.call('LPUSH', base .. 'wake', '1')
return 'promoted'

-- Change the priority of a job that has not started (an admin's override). A waiting job moves
-- to its new priority's line, keeping its place in the FIFO order; a delayed job keeps the new
-- priority for when it becomes due.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id, priority
-- Returns 'prioritized' | the job's state when it is neither waiting nor delayed | 'missing'.
local base, id, priority = ARGV[1], ARGV[2], tonumber(ARGV[3])
local job = load_job(base .. 'job:' .. id)
if not job.st then return 'missing' end
if job.st ~= 'waiting' and job.st ~= 'delayed' then return job.st end
if job.st == 'waiting' then
  local score = redis.call('ZSCORE', base .. 'wait', id)
  if score then
    redis.call('ZADD', base .. 'wait', wait_score(priority, tonumber(score) % PRIORITY_SPAN), id)
  end
end
transition(base, id, job, 'prioritized', now_ms(), { pr = priority }, { 'pr', priority })
return 'prioritized'

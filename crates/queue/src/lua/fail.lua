-- A leased job's attempt failed: schedule a retry after the backoff, or fail it for good.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, id, token, error, retryable (0|1), max_backoff_ms, default_max_attempts, backoff_ms,
--   keep_failed
-- Counts retries and final failures in the queue's `metrics` hash (`retried`, `failed`).
-- Returns: {'retrying', due_ms} | {'failed', 0} | {'stale', 0} (the lease was lost; nothing changed)
local base = ARGV[1]
local now = now_ms()
local id, token, err = ARGV[2], ARGV[3], ARGV[4]
local retryable = ARGV[5] == '1'
local max_backoff = tonumber(ARGV[6])
local job = load_job(base .. 'job:' .. id, { 'tok', 'dk' })
if job.st ~= 'active' or job.tok ~= token then return { 'stale', 0 } end

redis.call('ZREM', base .. 'active', id)
local attempts, max_attempts = tonumber(job.att), tonumber(job.max) or tonumber(ARGV[7])
if retryable and attempts < max_attempts then
  local delay = math.min(tonumber(ARGV[8]) * 2 ^ (attempts - 1), max_backoff)
  local due = now + delay
  redis.call('ZADD', base .. 'delayed', due, id)
  transition(base, id, job, 'retrying', now, { st = 'delayed', err = err, due = due })
  redis.call('HINCRBY', base .. 'metrics', 'retried', 1)
  return { 'retrying', due }
end
redis.call('ZADD', base .. 'failed', now, id)
transition(base, id, job, 'failed', now, { st = 'failed', err = err, fin = now }, { 'by', 'worker' })
redis.call('HINCRBY', base .. 'metrics', 'failed', 1)
release_dedup(base, job.dk, id)
trim_finished(base, 'failed', tonumber(ARGV[9]), now)
return { 'failed', 0 }

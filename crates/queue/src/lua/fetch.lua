-- Lease up to N ready jobs to a worker.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, n, lease_ms, worker_id, default_max_attempts
-- Each lease gets a fencing token, and every later write of the attempt must quote it. Tokens
-- never repeat, even after a fail-over that lost writes: a token is above both the queue's
-- `fence` (the last token issued) and Redis's clock in microseconds. A fail-over that rolls the
-- fence back cannot roll the clock back, and the fence runs ahead of the clock only by the tokens
-- of one batch (a few microseconds), far less than a fail-over takes. Tokens also only grow, so
-- a newer attempt's token is the larger one (user-data writes compare them).
-- Returns: next_due_ms (-1 if nothing delayed or jobs were leased), paused (0|1),
-- then per job: id, payload, attempt, max_attempts, token
local base = ARGV[1]
local PROMOTE_FIELDS = job_fields({ 'pr' })
-- What a lease reads of a job, by position: payload, attempt, version, then UNTOUCHED_FIELDS
-- (events.lua) from LEASE_UNTOUCHED on; `max` is the last of them.
local LEASE_READ = { 'data', 'att', 'v', 'due', 'err', 'stalls', 'retries', 'max' }
local LEASE_UNTOUCHED, LEASE_MAX = 4, 8
local n = tonumber(ARGV[2])
local now, now_us = now_ms_us()
local deadline = now + tonumber(ARGV[3])
local worker = ARGV[4]
local default_max = tonumber(ARGV[5])
local CHUNK = 500

local function next_due()
  local first = redis.call('ZRANGE', base .. 'delayed', 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end

if redis.call('EXISTS', base .. 'paused') == 1 then return { next_due(), 1 } end

-- Promote due delayed jobs, a bounded chunk per call.
local due = redis.call('ZRANGEBYSCORE', base .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local seq = redis.call('INCRBY', base .. 'seq', #due) - #due
  local promoted = {}
  for i, id in ipairs(due) do
    local job = load_job(base .. 'job:' .. id, PROMOTE_FIELDS)
    if job.st then
      transition(base, id, job, 'promoted', now, { st = 'waiting', due = false })
      promoted[#promoted + 1] = wait_score(tonumber(job.pr or '0'), seq + i)
      promoted[#promoted + 1] = id
    end
  end
  for s = 1, #promoted, CHUNK * 2 do
    redis.call('ZADD', base .. 'wait', unpack(promoted, s, math.min(s + CHUNK * 2 - 1, #promoted)))
  end
  for s = 1, #due, CHUNK do
    redis.call('ZREM', base .. 'delayed', unpack(due, s, math.min(s + CHUNK - 1, #due)))
  end
end

local out = { -1, 0 }
local popped = redis.call('ZPOPMIN', base .. 'wait', n)
local leases = {}
local token = 0
if #popped > 0 then
  token = math.max(tonumber(redis.call('GET', base .. 'fence') or '0'), now_us)
  redis.call('SET', base .. 'fence', decimal(token + #popped / 2))
end
local now_text, deadline_text = decimal(now), decimal(deadline)
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, unpack(LEASE_READ))
  if job[1] then
    local attempt = tonumber(job[2]) + 1
    local attempt_text, v = decimal(attempt), decimal((tonumber(job[3]) or 0) + 1)
    token = token + 1
    redis.call('HSET', jk, 'v', v, 'tok', decimal(token), 'st', 'active', 'att', attempt_text, 'pg', '0',
      'w', worker, 'sa', now_text)
    -- The lease's changes are also the snapshot it knows (the token is not part of a snapshot).
    local e, m = start_record(base, id, 'active', now, v)
    e[m + 1], e[m + 2], e[m + 3], e[m + 4], e[m + 5] = 'st', 'active', 'att', attempt_text, 'pg'
    e[m + 6], e[m + 7], e[m + 8], e[m + 9], e[m + 10] = '0', 'w', worker, 'sa', now_text
    append_untouched(e, m + 10, job, LEASE_UNTOUCHED)
    leases[#leases + 1] = deadline_text
    leases[#leases + 1] = id
    out[#out + 1] = id
    out[#out + 1] = job[1]
    out[#out + 1] = attempt
    out[#out + 1] = tonumber(job[LEASE_MAX]) or default_max
    out[#out + 1] = token
  end
end
for s = 1, #leases, CHUNK * 2 do
  redis.call('ZADD', base .. 'active', unpack(leases, s, math.min(s + CHUNK * 2 - 1, #leases)))
end
if #leases == 0 then out[1] = next_due() end
return out

-- Return jobs whose lease expired (their worker died or stalled) to waiting, counting a stall
-- but not an attempt; a job that stalled more than max_stalls times fails. Also forgets workers
-- silent too long. Either way the expired lease's token is cleared, so the stalled attempt's
-- heartbeat learns its lease is gone (and stops it) and none of its writes is accepted.
--
-- A paused or stalled Redis is not a dead worker: when no reaper got through for longer than
-- stall_gap_ms (nobody could reach Redis, so nobody could renew a lease), every lease is first
-- given one more lease period, and nothing is reaped in that call.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, max_stalls, limit, worker_silence_ms, keep_failed, stall_gap_ms, lease_ms
-- Returns {requeued, failed, graced (1 when the leases were given a grace)}.
local base = ARGV[1]
local FIELDS = job_fields({ 'pr', 'dk' })
local max_stalls = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local stall_gap, lease = tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()

local last = tonumber(redis.call('GET', base .. 'reaped_at') or '0')
redis.call('SET', base .. 'reaped_at', now)
if last > 0 and now - last > stall_gap then
  local held = redis.call('ZRANGE', base .. 'active', 0, -1)
  for _, id in ipairs(held) do redis.call('ZADD', base .. 'active', 'XX', now + lease, id) end
  return { 0, 0, 1 }
end

redis.call('ZREMRANGEBYSCORE', base .. 'workers', '-inf', now - tonumber(ARGV[4]))
local expired = redis.call('ZRANGEBYSCORE', base .. 'active', '-inf', now, 'LIMIT', 0, limit)
if #expired == 0 then return { 0, 0, 0 } end
local seq = redis.call('INCRBY', base .. 'seq', #expired) - #expired
local requeued, failed = 0, 0
for i, id in ipairs(expired) do
  redis.call('ZREM', base .. 'active', id)
  local job = load_job(base .. 'job:' .. id, FIELDS)
  -- A job deleted meanwhile leaves nothing to reap (and no hash is created for it).
  if job.st == 'active' then
    local stalls = tonumber(job.stalls or '0') + 1
    if stalls > max_stalls then
      local err = 'job stalled ' .. stalls .. ' times (its worker stopped heartbeating)'
      redis.call('ZADD', base .. 'failed', now, id)
      transition(base, id, job, 'failed', now,
        { st = 'failed', stalls = stalls, err = err, fin = now, tok = false }, { 'by', 'reaper' })
      release_dedup(base, job.dk, id)
      redis.call('HINCRBY', base .. 'metrics', 'failed', 1)
      failed = failed + 1
    else
      redis.call('ZADD', base .. 'wait', wait_score(tonumber(job.pr or '0'), seq + i), id)
      transition(base, id, job, 'stalled', now,
        { st = 'waiting', stalls = stalls, att = math.max(0, tonumber(job.att) - 1), pg = 0, tok = false })
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then redis.call('LPUSH', base .. 'wake', '1') end
if failed > 0 then trim_finished(base, 'failed', tonumber(ARGV[5]), now) end
return { requeued, failed, 0 }

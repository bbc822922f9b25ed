-- Retention of finished jobs, prepended to the scripts that finish or clean jobs (see scripts.rs).

-- Deletes the finished jobs `ids` of `set` ('completed' | 'failed') and notes one 'cleaned' event.
-- A hash is deleted only if its state says it is in that set: an id in a finished set whose job
-- has moved on (retried, say) keeps its job.
local function delete_finished(base, set, ids, now)
  if #ids == 0 then return end
  local state = set == 'completed' and 'completed' or 'failed'
  local doomed = {}
  for _, id in ipairs(ids) do
    local jk = base .. 'job:' .. id
    if redis.call('HGET', jk, 'st') == state then doomed[#doomed + 1] = jk end
  end
  for s = 1, #doomed, 500 do
    redis.call('UNLINK', unpack(doomed, s, math.min(s + 499, #doomed)))
  end
  for s = 1, #ids, 500 do
    redis.call('ZREM', base .. set, unpack(ids, s, math.min(s + 499, #ids)))
  end
  note(base, 'cleaned', now, { 'state', set, 'ids', table.concat(ids, ',') })
end

-- Retention by count, amortised: once `set` is a little over `keep`, the oldest go, at most
-- TRIM_CHUNK per call (lowering `keep` a lot is caught up over the next calls, never in one
-- long script).
local TRIM_CHUNK = 1000
local function trim_finished(base, set, keep, now)
  local total = redis.call('ZCARD', base .. set)
  local slack = math.min(100, math.floor(keep / 10))
  if total > keep + slack then
    local excess = math.min(total - keep, TRIM_CHUNK)
    delete_finished(base, set, redis.call('ZRANGE', base .. set, 0, excess - 1), now)
  end
end

-- Return jobs whose lease expired (their worker died or stalled) to waiting, counting a stall;
-- a job that stalled more than max_stalls times fails. Also forgets workers silent too long.
-- KEYS[1]: the queue's wait key
-- ARGV: base, now_ms, max_stalls, limit, worker_dead_before_ms, keep_failed
-- Returns {requeued, failed}.
local base = ARGV[1]
local now = tonumber(ARGV[2])
local max_stalls = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local PRIORITY_SPAN = 1e13

redis.call('ZREMRANGEBYSCORE', base .. 'workers', '-inf', ARGV[5])
local expired = redis.call('ZRANGEBYSCORE', base .. 'active', '-inf', now, 'LIMIT', 0, limit)
if #expired == 0 then return { 0, 0 } end
local seq = redis.call('INCRBY', base .. 'seq', #expired) - #expired
local requeued, failed = 0, 0
for i, id in ipairs(expired) do
  redis.call('ZREM', base .. 'active', id)
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, 'pr', 'stalls', 'dk')
  local stalls = tonumber(job[2] or '0') + 1
  if stalls > max_stalls then
    local err = 'job stalled ' .. stalls .. ' times (its worker stopped heartbeating)'
    redis.call('ZADD', base .. 'failed', now, id)
    redis.call('HSET', jk, 'st', 'failed', 'stalls', stalls, 'err', err, 'fin', now)
    if job[3] and job[3] ~= '' and redis.call('GET', base .. 'dedup:' .. job[3]) == id then
      redis.call('DEL', base .. 'dedup:' .. job[3])
    end
    redis.call('HINCRBY', base .. 'metrics', 'failed', 1)
    emit(base, id, 'failed', now, { 'by', 'reaper' })
    failed = failed + 1
  else
    redis.call('ZADD', base .. 'wait', tonumber(job[1] or '0') * PRIORITY_SPAN + seq + i, id)
    redis.call('HSET', jk, 'st', 'waiting', 'stalls', stalls)
    emit(base, id, 'stalled', now)
    requeued = requeued + 1
  end
end
if requeued > 0 then redis.call('LPUSH', base .. 'wake', '1') end
if failed > 0 then trim_finished(base, 'failed', tonumber(ARGV[6]), now) end
return { requeued, failed }

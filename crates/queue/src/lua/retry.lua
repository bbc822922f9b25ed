-- Put failed jobs back to waiting with a fresh attempt budget (attempts reset, as BullMQ's retry).
-- KEYS[1]: the queue's wait key
-- ARGV: base, then job ids
-- Returns, per id: 'retried' | the job's state when it is not failed | 'missing'.
local base = ARGV[1]
local out, retried = {}, {}
local now = now_ms()
local seq = redis.call('INCRBY', base .. 'seq', #ARGV) - #ARGV
for i = 2, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, 'st', 'pr', 'dk')
  if not job[1] then
    out[#out + 1] = 'missing'
  elseif job[1] ~= 'failed' then
    out[#out + 1] = job[1]
  else
    redis.call('ZREM', base .. 'failed', id)
    redis.call('ZADD', base .. 'wait', wait_score(tonumber(job[2] or '0'), seq + i), id)
    redis.call('HSET', jk, 'st', 'waiting', 'att', 0, 'stalls', 0, 'pg', 0)
    redis.call('HINCRBY', jk, 'retries', 1)
    redis.call('HDEL', jk, 'fin', 'err', 'sa', 'w', 'due')
    emit(base, id, 'retried', now)
    if job[3] and job[3] ~= '' then redis.call('SET', base .. 'dedup:' .. job[3], id, 'NX') end
    out[#out + 1] = 'retried'
    retried[#retried + 1] = id
  end
end
if #retried > 0 then redis.call('LPUSH', base .. 'wake', '1') end
return out

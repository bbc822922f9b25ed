-- Put failed jobs back to waiting with a fresh attempt budget (attempts reset, as BullMQ's retry).
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, then job ids
-- Returns, per id: 'retried' | the job's state when it is not failed | 'missing'.
local base = ARGV[1]
local out, retried = {}, {}
local now = now_ms()
local seq = redis.call('INCRBY', base .. 'seq', #ARGV) - #ARGV
for i = 2, #ARGV do
  local id = ARGV[i]
  local job = load_job(base .. 'job:' .. id, { 'pr', 'dk' })
  if not job.st then
    out[#out + 1] = 'missing'
  elseif job.st ~= 'failed' then
    out[#out + 1] = job.st
  else
    redis.call('ZREM', base .. 'failed', id)
    redis.call('ZADD', base .. 'wait', wait_score(tonumber(job.pr or '0'), seq + i), id)
    transition(base, id, job, 'retried', now, {
      st = 'waiting', att = 0, stalls = 0, pg = 0, retries = tonumber(job.retries or '0') + 1,
      fin = false, err = false, sa = false, w = false, due = false,
    })
    if job.dk and job.dk ~= '' then redis.call('SET', base .. 'dedup:' .. job.dk, id, 'NX') end
    out[#out + 1] = 'retried'
    retried[#retried + 1] = id
  end
end
if #retried > 0 then redis.call('LPUSH', base .. 'wake', '1') end
return out

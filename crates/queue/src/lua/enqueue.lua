-- Enqueue a batch of jobs atomically.
-- KEYS[1]: the queue's wait key (routes the script to the queue's slot; all keys share the hash tag)
-- ARGV: base, now_ms, count, then per job 6 values:
--   id ('' = generate), dedup key ('' = none), delay_ms, priority, max_attempts ('' = the queue's),
--   payload
-- Only fields that differ from their defaults are stored: a retained job costs memory.
-- Returns a flat list: id, duplicate (0|1) per job, in input order.
local base = ARGV[1]
local now = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local PER_JOB = 6
local PRIORITY_SPAN = 1e13

-- One INCRBY reserves ids for every job without an explicit id.
local need_ids = 0
for i = 0, n - 1 do
  if ARGV[4 + i * PER_JOB] == '' then need_ids = need_ids + 1 end
end
local next_id = 0
if need_ids > 0 then next_id = redis.call('INCRBY', base .. 'id', need_ids) - need_ids end
local seq = redis.call('INCRBY', base .. 'seq', n) - n

local out, waiting, delayed, added = {}, {}, {}, {}
for i = 0, n - 1 do
  local a = 4 + i * PER_JOB
  local id, dedup = ARGV[a], ARGV[a + 1]
  local delay, priority = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local existing = false
  if dedup ~= '' then existing = redis.call('GET', base .. 'dedup:' .. dedup) end
  if not existing and id ~= '' and redis.call('EXISTS', base .. 'job:' .. id) == 1 then existing = id end
  if existing then
    note(base, 'deduplicated', now, { 'id', existing })
    out[#out + 1] = existing
    out[#out + 1] = 1
  else
    if id == '' then
      next_id = next_id + 1
      id = tostring(next_id)
    end
    if dedup ~= '' then redis.call('SET', base .. 'dedup:' .. dedup, id) end
    local state
    if delay > 0 then
      state = 'delayed'
      delayed[#delayed + 1] = now + delay
      delayed[#delayed + 1] = id
    else
      state = 'waiting'
      waiting[#waiting + 1] = priority * PRIORITY_SPAN + seq + i
      waiting[#waiting + 1] = id
    end
    local fields = { 'data', ARGV[a + 5], 'st', state, 'att', 0, 'ts', now }
    if ARGV[a + 4] ~= '' then fields[#fields + 1] = 'max'; fields[#fields + 1] = ARGV[a + 4] end
    if priority ~= 0 then fields[#fields + 1] = 'pr'; fields[#fields + 1] = priority end
    if dedup ~= '' then fields[#fields + 1] = 'dk'; fields[#fields + 1] = dedup end
    redis.call('HSET', base .. 'job:' .. id, unpack(fields))
    if delay > 0 then redis.call('HSET', base .. 'job:' .. id, 'due', now + delay) end
    emit(base, id, 'enqueued', now, { 'data', ARGV[a + 5] })
    added[#added + 1] = id
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end

-- Bulk writes in chunks, well below Lua's unpack limit.
local CHUNK = 500
local function zadd_chunks(key, args)
  for s = 1, #args, CHUNK * 2 do
    redis.call('ZADD', key, unpack(args, s, math.min(s + CHUNK * 2 - 1, #args)))
  end
end
zadd_chunks(base .. 'wait', waiting)
zadd_chunks(base .. 'delayed', delayed)
if #waiting > 0 then
  local tokens = math.min(#waiting / 2, 64)
  local wake = {}
  for t = 1, tokens do wake[t] = '1' end
  redis.call('LPUSH', base .. 'wake', unpack(wake))
  redis.call('LTRIM', base .. 'wake', 0, 63)
end
return out

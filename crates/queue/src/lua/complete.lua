-- Mark a batch of leased jobs completed, then trim the completed set to the retention limit.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, keep_completed, count, then per job: id, token, result
-- A job is completed only if it is still active under that lease token (its lease was not lost).
-- Counts completions by their durations (start of the attempt to now) in the queue's `metrics`
-- hash: `dur_sum_ms` and per-bucket counts `dur_le_<ms>` / `dur_le_inf`, whose sum is the number
-- of completions (one command fewer per call than a separate count).
-- Returns the ids of the jobs completed.
local base = ARGV[1]
-- What a completion reads of a job, by position, then UNTOUCHED_FIELDS (events.lua) from
-- COMPLETE_UNTOUCHED on.
local COMPLETE_READ = { 'st', 'tok', 'v', 'sa', 'dk', 'att', 'w', 'due', 'err', 'stalls', 'retries', 'max' }
local COMPLETE_UNTOUCHED = 8
local now = now_ms()
local keep = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local CHUNK = 500
local BOUNDS_MS = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000, 600000 }
local hist, dur_sum = {}, 0

local function observe(started)
  local started_ms = tonumber(started)
  if not started_ms then return 0 end
  local d = math.max(0, now - started_ms)
  local field = 'dur_le_inf'
  for _, bound in ipairs(BOUNDS_MS) do
    if d <= bound then field = 'dur_le_' .. bound; break end
  end
  hist[field] = (hist[field] or 0) + 1
  dur_sum = dur_sum + d
  return d
end

local done, finished = {}, {}
local now_text = decimal(now)
for i = 0, n - 1 do
  local id, token, result = ARGV[4 + i * 3], ARGV[5 + i * 3], ARGV[6 + i * 3]
  local jk = base .. 'job:' .. id
  local job = redis.call('HMGET', jk, unpack(COMPLETE_READ))
  if job[1] == 'active' and job[2] == token then
    local v = decimal(tonumber(job[3]) + 1)
    if result ~= 'null' then
      redis.call('HSET', jk, 'v', v, 'st', 'completed', 'fin', now_text, 'pg', '100', 'res', result)
    else
      redis.call('HSET', jk, 'v', v, 'st', 'completed', 'fin', now_text, 'pg', '100')
    end
    release_dedup(base, job[5], id)
    -- The snapshot it knows, in `transition`'s field order (an active job has att, w and sa).
    local e, m = start_record(base, id, 'completed', now, v)
    e[m + 1], e[m + 2], e[m + 3], e[m + 4], e[m + 5], e[m + 6] = 'st', 'completed', 'att', job[6], 'pg', '100'
    e[m + 7], e[m + 8], e[m + 9], e[m + 10], e[m + 11], e[m + 12] = 'w', job[7], 'sa', job[4], 'fin', now_text
    m = append_untouched(e, m + 12, job, COMPLETE_UNTOUCHED)
    e[m + 1], e[m + 2], e[m + 3], e[m + 4] = 'res', result, 'dur', decimal(observe(job[4]))
    done[#done + 1] = id
    finished[#finished + 1] = now_text
    finished[#finished + 1] = id
  end
end
for s = 1, #done, CHUNK do
  redis.call('ZREM', base .. 'active', unpack(done, s, math.min(s + CHUNK - 1, #done)))
end
for s = 1, #finished, CHUNK * 2 do
  redis.call('ZADD', base .. 'completed', unpack(finished, s, math.min(s + CHUNK * 2 - 1, #finished)))
end

trim_finished(base, 'completed', keep, now)
if #done > 0 then
  local mk = base .. 'metrics'
  redis.call('HINCRBY', mk, 'dur_sum_ms', dur_sum)
  for field, count in pairs(hist) do redis.call('HINCRBY', mk, field, count) end
end
return done

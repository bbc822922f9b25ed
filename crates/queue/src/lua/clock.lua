-- Time and ordering, prepended to every script (see scripts.rs).

-- Milliseconds since the epoch by Redis's clock: every worker agrees on it, whatever its own
-- clock says, so a skewed host cannot expire others' leases or misplace backoffs.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Redis's clock in milliseconds and in microseconds, from one TIME call. Microseconds since the
-- epoch (~1.8e15) are exact in a double until the year 2255.
local function now_ms_us()
  local t = redis.call('TIME')
  local seconds, micros = tonumber(t[1]), tonumber(t[2])
  return seconds * 1000 + math.floor(micros / 1000), seconds * 1000000 + micros
end

-- A waiting job's score: priority first (0 is the most urgent), then FIFO by sequence. 2^40
-- sequence numbers per priority, and at most 1000 priorities, stay below 2^53: exact in a double.
local PRIORITY_SPAN = 1099511627776

local function wait_score(priority, seq)
  return priority * PRIORITY_SPAN + (seq % PRIORITY_SPAN)
end

-- True when a job in state `st` has not finished (a dedup key pointing at it still holds).
local function pending(st)
  return st == 'waiting' or st == 'delayed' or st == 'active'
end

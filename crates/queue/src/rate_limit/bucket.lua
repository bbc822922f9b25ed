-- The token bucket, the one implementation every limiter uses: prepended to `take.lua` (the
-- SP-API limiter and per-user limits) and to the rate-limited fetch (per-queue start limits).
-- A bucket is a hash: tokens, ts = ms of the last update, rate = learned tokens/s. Tokens may
-- go negative (a reservation waits its turn, GCRA-style). Time comes from Redis, so every
-- process agrees.

-- The bucket at `key` refilled up to now: tokens, now (ms), rate (tokens/s). A bucket never
-- seen before starts full. `learned` > 0 replaces the stored rate from now on.
local function bucket_refill(key, default_rate, burst, learned)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local state = redis.call('HMGET', key, 'tokens', 'ts', 'rate')
  local rate = learned
  if rate > 0 then
    redis.call('HSET', key, 'rate', tostring(rate))
  else
    rate = tonumber(state[3]) or default_rate
  end
  local tokens = tonumber(state[1]) or burst
  local last = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
  return tokens, now, rate
end

-- Stores the bucket; a bucket left alone refills completely, it is kept a while longer and
-- then let go.
local function bucket_store(key, tokens, now, rate, burst)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate) + 60000)
end

-- Ms until the bucket holds `need` tokens (0 when it does).
local function bucket_wait(tokens, need, rate)
  if tokens >= need then return 0 end
  return math.ceil((need - tokens) * 1000 / rate)
end

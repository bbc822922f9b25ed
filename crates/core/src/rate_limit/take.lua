-- Takes one token from a token bucket, or reserves the next one (GCRA-style: tokens may go
-- negative, each reservation waits its turn). Time comes from Redis, so every process agrees.
--
-- KEYS[1]  the bucket (hash: tokens, ts = ms of the last update, rate = learned tokens/s)
-- ARGV[1]  default rate, tokens per second (used until a rate is learned)
-- ARGV[2]  burst, the bucket's size
-- ARGV[3]  longest acceptable wait in ms; a longer one reserves nothing
-- ARGV[4]  learned rate to store (tokens/s), or 0 to keep what is stored
-- ARGV[5]  "1" when the server refused a call (429): the bucket is empty, whatever we thought
-- ARGV[6]  headroom in ms: wait until the bucket also holds this much refill beyond the token
--          (capped at a full bucket), a cushion for calls that reach the server out of step
--
-- Returns the wait in ms before the call may go (0: at once), or -(wait) when it exceeds ARGV[3].
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate')
local burst = tonumber(ARGV[2])
local rate = tonumber(ARGV[4])
if rate > 0 then
  redis.call('HSET', KEYS[1], 'rate', ARGV[4])
else
  rate = tonumber(state[3]) or tonumber(ARGV[1])
end
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
if ARGV[5] == '1' then
  tokens = math.min(tokens, 0)
end
local need = math.min(1 + tonumber(ARGV[6]) * rate / 1000, burst)
local wait = 0
if tokens < need then
  wait = math.ceil((need - tokens) * 1000 / rate)
end
local granted = wait <= tonumber(ARGV[3])
if granted then
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
-- A bucket left alone refills completely; keep it a while longer, then let it go.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 60000)
if granted then
  return wait
end
return -wait

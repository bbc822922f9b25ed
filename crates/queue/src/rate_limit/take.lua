-- Takes one token from a token bucket, or reserves the next one (bucket.lua is prepended).
--
-- KEYS[1]  the bucket
-- ARGV[1]  default rate, tokens per second (used until a rate is learned)
-- ARGV[2]  burst, the bucket's size
-- ARGV[3]  longest acceptable wait in ms; a longer one reserves nothing
-- ARGV[4]  learned rate to store (tokens/s), or 0 to keep what is stored
-- ARGV[5]  "1" when the server refused a call (429): the bucket is empty, whatever we thought
-- ARGV[6]  headroom in ms: wait until the bucket also holds this much refill beyond the token
--          (capped at a full bucket), a cushion for calls that reach the server out of step
--
-- Returns the wait in ms before the call may go (0: at once), or -(wait) when it exceeds ARGV[3].
local burst = tonumber(ARGV[2])
local tokens, now, rate = bucket_refill(KEYS[1], tonumber(ARGV[1]), burst, tonumber(ARGV[4]))
if ARGV[5] == '1' then
  tokens = math.min(tokens, 0)
end
local wait = bucket_wait(tokens, math.min(1 + tonumber(ARGV[6]) * rate / 1000, burst), rate)
local granted = wait <= tonumber(ARGV[3])
if granted then
  tokens = tokens - 1
end
bucket_store(KEYS[1], tokens, now, rate, burst)
if granted then
  return wait
end
return -wait

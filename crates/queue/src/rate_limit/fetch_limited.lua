-- The fetch of a queue with a start limit: the queue's fetch script (`fetch.lua`, unchanged,
-- wrapped below as a function) leases only as many jobs as the queue's token bucket holds whole
-- tokens, and the bucket pays one token per job leased, in the same atomic step. So however
-- many workers fetch, no more jobs start (become active) than the bucket allows. Jobs over the
-- limit simply stay waiting (no attempt is spent); when the bucket is empty the reply's
-- next-due time says when its next token comes, so idle workers wait until then.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV[1..5]: as fetch.lua; ARGV[6]: the bucket key; ARGV[7]: rate (tokens/s); ARGV[8]: burst
local bucket, rate, burst = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local tokens, now = bucket_refill(bucket, rate, burst, 0)
local allowed = math.min(tonumber(ARGV[2]), math.floor(tokens))
if allowed < 1 then
  bucket_store(bucket, tokens, now, rate, burst)
  local paused = redis.call('EXISTS', ARGV[1] .. 'paused')
  return { now + bucket_wait(tokens, 1, rate), paused }
end
ARGV[2] = tostring(allowed)
local out = (function()
--FETCH--
end)()
bucket_store(bucket, tokens - (#out - 2) / 5, now, rate, burst)
return out

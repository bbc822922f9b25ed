-- A worker is alive: extend the leases of its in-flight attempts and record the heartbeat.
-- KEYS: declared, not read (see SCRIPT_KEYS in queue.rs): the queue's fixed keys, KEYS[1] = wait,
-- then the named jobs' keys
-- ARGV: base, lease_ms, worker_id, info_json, then pairs of job id, lease token
-- Only leases the worker still holds under that token are extended.
-- Returns the ids whose lease is lost (reaped, or leased again under a newer token): their
-- attempts must stop, and nothing they write later is accepted. An attempt that ended itself
-- (completed, failed, retrying, deferred under its own token) is not lost, only done.
local base = ARGV[1]
local lease = tonumber(ARGV[2])
local worker = ARGV[3]
local now = now_ms()
local deadline = now + lease
redis.call('ZADD', base .. 'workers', now, worker)
redis.call('SET', base .. 'worker:' .. worker, ARGV[4], 'PX', lease * 3)
local lost = {}
for i = 5, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local job = redis.call('HMGET', base .. 'job:' .. id, 'st', 'tok')
  if job[1] == 'active' and job[2] == token then
    redis.call('ZADD', base .. 'active', 'XX', deadline, id)
  elseif not job[1] or job[2] ~= token or job[1] == 'waiting' then
    lost[#lost + 1] = id
  end
end
return lost

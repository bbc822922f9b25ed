-- A worker is alive: extend the leases of its in-flight jobs and record the heartbeat.
-- KEYS[1]: the queue's wait key
-- ARGV: base, now_ms, lease_ms, worker_id, info_json, then the in-flight job ids
-- Only leases the worker still holds are extended (ZADD XX on jobs active under this worker).
-- Returns the number of leases extended.
local base = ARGV[1]
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local worker = ARGV[4]
local deadline = now + lease
redis.call('ZADD', base .. 'workers', now, worker)
redis.call('SET', base .. 'worker:' .. worker, ARGV[5], 'PX', lease * 3)
local extended = 0
for i = 6, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', base .. 'job:' .. id, 'w') == worker then
    extended = extended + redis.call('ZADD', base .. 'active', 'XX', 'CH', deadline, id)
  end
end
return extended

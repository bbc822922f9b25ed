-- The event outbox, prepended to every script that moves a job (see scripts.rs).
--
-- Every transition of a job appends one entry to `<base>events` in the same script, so the
-- stream is exactly the queue's history. An entry carries:
--   e     the transition (enqueued, active, progress, retrying, deferred, stalled, released,
--         completed, failed, removed, retried; deduplicated and cleaned carry no snapshot)
--   id    the job id
--   v     the job's version: every transition increments it, so a reader can tell a newer
--         state from an older one whatever order it sees them in
--   t     when (ms since the epoch)
--   then a snapshot of the job's state fields after the transition (those that are set):
--   st att pg w sa due err fin stalls retries max
--   and the transition's own fields (data, res, dur, by).
-- The stream is trimmed only behind its consumer groups (Queue::trim_events).
local SNAPSHOT_FIELDS = { 'st', 'att', 'pg', 'w', 'sa', 'due', 'err', 'fin', 'stalls', 'retries', 'max' }

local function emit(base, id, kind, now, extra)
  local jk = base .. 'job:' .. id
  local v = redis.call('HINCRBY', jk, 'v', 1)
  local snap = redis.call('HMGET', jk, unpack(SNAPSHOT_FIELDS))
  local entry = { 'e', kind, 'id', id, 'v', v, 't', now }
  for i, field in ipairs(SNAPSHOT_FIELDS) do
    if snap[i] and snap[i] ~= '' then
      entry[#entry + 1] = field
      entry[#entry + 1] = snap[i]
    end
  end
  if extra then
    for i = 1, #extra do entry[#entry + 1] = extra[i] end
  end
  redis.call('XADD', base .. 'events', '*', unpack(entry))
end

-- An event about a job that does not change it (a dedup hit) or about many (cleaned).
local function note(base, kind, now, fields)
  local entry = { 'e', kind, 't', now }
  for i = 1, #fields do entry[#entry + 1] = fields[i] end
  redis.call('XADD', base .. 'events', '*', unpack(entry))
end

-- Job records and the event outbox, prepended to every script (see scripts.rs).
--
-- Every transition of a job is recorded in the queue's event stream `<base>events` by the same
-- script, so the stream is exactly the queue's history. A script call appends ONE stream entry
-- holding all of its transitions, in order (a batch of 50 completions is one XADD, not 50):
--   t     when (ms since the epoch, Redis's clock), once for the entry
--   then per transition, starting with its kind:
--   e     the transition (enqueued, active, progress, retrying, deferred, stalled, released,
--         promoted, completed, failed, removed, retried; deduplicated and cleaned are notes that
--         carry no snapshot)
--   id    the job id (`ids`, comma-separated, for cleaned)
--   v     the job's version: every transition increments it, so a reader can tell a newer
--         state from an older one whatever order it sees them in
--   then a snapshot of the job's state fields after the transition (those that are set):
--   st att pg w sa due err fin stalls retries max
--   and the transition's own fields (data, res, dur, by, reason).
-- A reader splits an entry at each `e`; fields before the first `e` (t) apply to all of them.
-- The stream is trimmed only behind its consumer groups (Queue::trim_events).
--
-- The snapshot is built from the fields the script read and the changes it made (see
-- `transition`), so recording a transition costs no extra Redis command.
local SNAPSHOT_FIELDS = { 'st', 'att', 'pg', 'w', 'sa', 'due', 'err', 'fin', 'stalls', 'retries', 'max' }

-- The fields `load_job` reads: the version, the snapshot fields and the `extra` ones. Built once
-- per script call (outside a script's loop over jobs), not once per job.
local function job_fields(extra)
  local names = { 'v' }
  for i = 1, #SNAPSHOT_FIELDS do names[#names + 1] = SNAPSHOT_FIELDS[i] end
  if extra then
    for i = 1, #extra do names[#names + 1] = extra[i] end
  end
  return names
end
local JOB_FIELDS = job_fields()

-- A job's `names` fields (default: version and snapshot) as a table, one HMGET; a missing field
-- is `false`, a missing job has `st == false`.
local function load_job(jk, names)
  names = names or JOB_FIELDS
  local values = redis.call('HMGET', jk, unpack(names))
  local job = {}
  for i = 1, #names do job[names[i]] = values[i] end
  return job
end

-- The entry being assembled by this script call, written by `flush_events`.
local event_fields, event_time = {}, nil
-- Field values per entry before it is written (well below Lua's unpack limit of ~8000, with
-- room for the transition recorded after the check).
local EVENT_ENTRY_LIMIT = 4000

local function flush_events(base)
  if #event_fields == 0 then return end
  redis.call('XADD', base .. 'events', '*', 't', event_time, unpack(event_fields))
  event_fields = {}
end

local function append_event(base, now, fields)
  if #event_fields + #fields > EVENT_ENTRY_LIMIT then flush_events(base) end
  event_time = now
  for i = 1, #fields do event_fields[#event_fields + 1] = fields[i] end
end

-- Starts a transition of job `id` (now at version `v`) in the entry being assembled:
-- `e kind id <id> v <v>`. Returns the entry and its length, for the caller to append the rest.
local function start_record(base, id, kind, now, v)
  if #event_fields > EVENT_ENTRY_LIMIT then flush_events(base) end
  event_time = now
  local e, n = event_fields, #event_fields
  e[n + 1], e[n + 2], e[n + 3], e[n + 4], e[n + 5], e[n + 6] = 'e', kind, 'id', id, 'v', v
  return e, n + 6
end

-- Appends `value` as field `name` unless it is unset; returns the entry's new length.
local function append_set(e, n, name, value)
  if value and value ~= '' then
    e[n + 1], e[n + 2] = name, value
    return n + 2
  end
  return n
end

-- Appends the flat list `list` (if any) to the entry.
local function append_list(e, n, list)
  if not list then return n end
  for i = 1, #list do e[n + i] = list[i] end
  return n + #list
end

-- Records a transition of job `id` whose state (after the change) is the table `job`. Writes
-- straight into the entry being assembled (this runs once per job of a batch).
local function record(base, id, kind, now, job, extra)
  local e, n = start_record(base, id, kind, now, job.v)
  for i = 1, #SNAPSHOT_FIELDS do
    n = append_set(e, n, SNAPSHOT_FIELDS[i], job[SNAPSHOT_FIELDS[i]])
  end
  append_list(e, n, extra)
end

-- The two hot transitions, a lease and a completion, skip `load_job`/`transition`: they read only
-- the fields they need (an HMGET kept as an array) and write the snapshot they know straight
-- into the entry (`start_record`, then the fields they set, then `append_untouched`: the
-- snapshot fields they neither set nor clear, read in UNTOUCHED_FIELDS order, empty unless the
-- job failed, stalled, was retried, waits with a due time or has its own attempt limit). The
-- entry says exactly what `transition` would record (a leasable job has no `fin`: `retry`
-- clears it). Why: in Redis's Lua much of a script's time goes to the values it makes per job
-- (each field read, each table, each function call, each number turned into text); reading
-- every field into a table took a no-op job's Redis time to ~48 µs, this way it is ~27 µs
-- (docs/capacity.md).
local UNTOUCHED_FIELDS = { 'due', 'err', 'stalls', 'retries', 'max' }

-- A number as decimal text, made once where a script writes it many times (a batch's time).
local function decimal(number)
  return string.format('%d', number)
end

-- Appends the set ones of UNTOUCHED_FIELDS, read in that order at `values[first ..]`, to the
-- entry `e` of length `n`; returns its new length.
local function append_untouched(e, n, values, first)
  for i = 1, #UNTOUCHED_FIELDS do
    local value = values[first + i - 1]
    if value and value ~= '' then
      e[n + 1], e[n + 2] = UNTOUCHED_FIELDS[i], value
      n = n + 2
    end
  end
  return n
end

-- Moves job `id` (loaded with `load_job`) through a transition: applies `changes` (field ->
-- value; `false` deletes the field), increments its version, writes it (one HSET, plus one HDEL
-- when fields go) and records the event with the resulting snapshot and `extra` fields.
local function transition(base, id, job, kind, now, changes, extra)
  job.v = (tonumber(job.v) or 0) + 1
  local set, del = { 'v', job.v }, {}
  for name, value in pairs(changes) do
    job[name] = value
    if value == false then
      del[#del + 1] = name
    else
      set[#set + 1] = name
      set[#set + 1] = value
    end
  end
  local jk = base .. 'job:' .. id
  redis.call('HSET', jk, unpack(set))
  if #del > 0 then redis.call('HDEL', jk, unpack(del)) end
  record(base, id, kind, now, job, extra)
end

-- An event about a job that does not change it (a dedup hit) or about many (cleaned).
local function note(base, kind, now, fields)
  local entry = { 'e', kind }
  for i = 1, #fields do entry[#entry + 1] = fields[i] end
  append_event(base, now, entry)
end

-- A finished or removed job gives up its dedup key (if the key still points at it).
local function release_dedup(base, dedup, id)
  if dedup and dedup ~= '' and redis.call('GET', base .. 'dedup:' .. dedup) == id then
    redis.call('DEL', base .. 'dedup:' .. dedup)
  end
end

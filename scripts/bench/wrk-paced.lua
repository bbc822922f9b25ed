-- wrk script for scripts/bench-api: paces each connection to RATE/connections requests per
-- second (Debian's wrk has no wrk2 -R), rotates user ids in PATH's %d, sends TOKEN, and prints
-- one JSON line at the end. Environment: PATH_TEMPLATE, USERS, TOKEN, RATE, CONNECTIONS.
local template = os.getenv("PATH_TEMPLATE")
local users = tonumber(os.getenv("USERS") or "1")
local token = os.getenv("TOKEN")
local pause_ms = 1000 * tonumber(os.getenv("CONNECTIONS")) / tonumber(os.getenv("RATE"))
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  n = id * 7919
end

function request()
  n = n + 1
  local path = string.format(template, n % users)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

function delay()
  return pause_ms
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"path":"%s","requests":%d,"seconds":%.2f,"req_per_s":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
    template, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

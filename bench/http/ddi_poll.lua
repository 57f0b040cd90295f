-- wrk script for bench/http/run.sh: hawkBit DDI base polls of many distinct devices over
-- keep-alive connections. Each request is the next device of the thread's share of the
-- list, with that device's own TargetToken.
--
-- Arguments (after `--` on the wrk command line):
--   1 file of "deviceId,token" lines (the device import's answer, header line included)
--   2 Host header value    3 DDI tenant
--
-- Every response whose status is not 200 is counted (reported as non206= so run.sh parses
-- one format). done() prints the same RESULT line as range.lua.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  threads[#threads + 1] = thread
end

local requests_of, host, at
non206 = 0
first_bad = "-"

function init(args)
  host = args[2]
  local tenant = args[3]
  local f = io.open(args[1] or "", "r")
  if not f or not host or not tenant then
    error("ddi_poll.lua: bad arguments (tokens file, host, tenant)")
  end
  requests_of = {}
  for line in f:lines() do
    local id, token = line:match("^([^,]+),([^,]+)$")
    if id and id ~= "deviceId" then
      requests_of[#requests_of + 1] = string.format(
        "GET /%s/controller/v1/%s HTTP/1.1\r\nHost: %s\r\nAccept: application/hal+json\r\n" ..
        "Authorization: TargetToken %s\r\n\r\n", tenant, id, host, token)
    end
  end
  f:close()
  if #requests_of == 0 then
    error("ddi_poll.lua: no devices in " .. args[1])
  end
  -- Threads start at different devices, so each device is polled by one thread at a time.
  at = math.floor(((thread_id or 1) - 1) * #requests_of / 2)
end

function request()
  at = at % #requests_of + 1
  return requests_of[at]
end

function response(status, headers, body)
  if status ~= 200 then
    non206 = non206 + 1
    if first_bad == "-" then
      first_bad = tostring(status)
    end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, "-"
  for _, thread in ipairs(threads) do
    bad = bad + (tonumber(thread:get("non206")) or 0)
    local f = thread:get("first_bad")
    if first == "-" and f and f ~= "-" then
      first = f
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d non206=%d err_connect=%d err_read=%d " ..
    "err_write=%d err_status=%d err_timeout=%d p50_us=%d p99_us=%d max_us=%d first_bad=%s\n",
    summary.requests, summary.duration, summary.bytes, bad, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max, first))
end

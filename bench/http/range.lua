-- wrk script for bench/http/run.sh: every request asks for one random byte range of the
-- file, aligned to the range size, with a token (nginx ignores it, otad needs it): Bearer,
-- or the scheme given as argument 7 (TargetToken for the DDI artifact path).
--
-- Arguments (after `--` on the wrk command line):
--   1 range size in bytes    2 file size in bytes    3 bearer token
--   4 Host header value      5 request path          6 seed
--   7 authorization scheme (Bearer when absent)
--
-- Every response whose status is not 206 is counted. done() prints one line,
--   RESULT requests=.. duration_us=.. bytes=.. non206=.. err_connect=.. err_read=..
--          err_write=.. err_status=.. err_timeout=.. p50_us=.. p99_us=.. max_us=..
--          first_bad=<status>
-- which run.sh parses.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  threads[#threads + 1] = thread
end

-- Per-thread state (each wrk thread has its own Lua state).
local range_size, slots, token, host, path, scheme
non206 = 0
first_bad = "-"

function init(args)
  range_size = tonumber(args[1])
  local file_size = tonumber(args[2])
  token = args[3]
  host = args[4]
  path = args[5]
  local seed = tonumber(args[6]) or 1
  scheme = args[7] or "Bearer"
  if not range_size or not file_size or range_size <= 0 or file_size < range_size then
    error("range.lua: bad arguments (range size, file size)")
  end
  slots = math.floor(file_size / range_size)
  math.randomseed(seed * 7919 + (thread_id or 0))
end

function request()
  local first = math.random(0, slots - 1) * range_size
  return string.format(
    "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s %s\r\nRange: bytes=%d-%d\r\n\r\n",
    path, host, scheme, token, first, first + range_size - 1)
end

function response(status, headers, body)
  if status ~= 206 then
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

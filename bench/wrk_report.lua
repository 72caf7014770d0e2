-- wrk script for bench/run.py.
--
-- The request shape comes from the environment (headers come from wrk's -H options):
--   BENCH_METHOD     HTTP method (default GET)
--   BENCH_BODY_FILE  path of a file whose bytes are sent as the request body (optional)
--
-- Every response status is counted per thread, and done() prints one line
--   BENCH_RESULT {json}
-- with throughput, latency percentiles (microseconds), wrk's socket errors and the status counts.
-- Any status outside 200-299 is an error for the benchmark (wrk itself only counts 4xx/5xx).

local method = os.getenv("BENCH_METHOD")
if method ~= nil and method ~= "" then
  wrk.method = method
end

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file ~= nil and body_file ~= "" then
  local handle = assert(io.open(body_file, "rb"))
  wrk.body = handle:read("*a")
  handle:close()
end

-- Global on purpose: each wrk thread has its own Lua state, and done() reads it back with thread:get().
statuses = {}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local non_2xx = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
      if status < 200 or status > 299 then
        non_2xx = non_2xx + count
      end
    end
  end

  local status_parts = {}
  for status, count in pairs(counts) do
    table.insert(status_parts, string.format('"%d": %d', status, count))
  end
  table.sort(status_parts)

  local duration_s = summary.duration / 1e6
  local rps = 0
  if duration_s > 0 then
    rps = summary.requests / duration_s
  end

  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "requests_per_s": %.3f, '
      .. '"latency_us": {"p50": %.1f, "p95": %.1f, "p99": %.1f, "mean": %.1f, "max": %.1f}, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"non_2xx": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes, rps,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    non_2xx, table.concat(status_parts, ", ")
  ))
end

-- wrk script for the intake scenario: wrk_report.lua (status counts, the BENCH_RESULT line) plus a request()
-- that gives every request its own Idempotency-Key header, so that each one is a new submission rather than a
-- replay of the first.
--
-- A key is "bench-" .. 16 hex digits read from /dev/urandom once per thread .. "-" .. the thread's number ..
-- "-" .. the thread's request counter: at most 6 + 16 + 1 + 3 + 1 + 10 = 37 characters of [A-Za-z0-9_-],
-- unique across threads and across wrk runs (the warm-up and the measured run are separate processes).
--
-- bench/load.py passes the path of wrk_report.lua in BENCH_REPORT_SCRIPT; method, body and the other headers
-- come from the environment and the -H options as for every scenario.

dofile(assert(os.getenv("BENCH_REPORT_SCRIPT"), "BENCH_REPORT_SCRIPT is not set"))

local report_setup = setup
local thread_count = 0

function setup(thread)
  report_setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local function random_hex(bytes)
  local source = io.open("/dev/urandom", "rb")
  if source ~= nil then
    local data = source:read(bytes)
    source:close()
    if data ~= nil and #data == bytes then
      return (data:gsub(".", function(c) return string.format("%02x", c:byte()) end))
    end
  end
  -- No /dev/urandom: the clock and the thread's address still tell runs and threads apart.
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
  local parts = {}
  for i = 1, bytes do
    parts[i] = string.format("%02x", math.random(0, 255))
  end
  return table.concat(parts)
end

local key_prefix
local counter = 0

function init(args)
  key_prefix = "bench-" .. random_hex(8) .. "-" .. tostring(thread_number or 0) .. "-"
end

function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = key_prefix .. counter
  return wrk.format()
end

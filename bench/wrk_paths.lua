-- wrk script for scenarios that request many paths (the review scenarios): wrk_report.lua (status counts, the
-- BENCH_RESULT line) plus a request() that asks for a path drawn at random, on every request, from the file named
-- by BENCH_PATHS_FILE (one path per line, written by bench/load.py from the scenario's setup). So the record
-- scenario opens a different record each time instead of one whose pages stay in every cache, and the queue
-- scenario mixes its filters.
--
-- Each thread seeds its own generator from /dev/urandom (or, without it, the clock and the thread's address), so
-- threads and runs draw different sequences. Method, body and headers come from the environment and the -H options
-- as for every scenario.

dofile(assert(os.getenv("BENCH_REPORT_SCRIPT"), "BENCH_REPORT_SCRIPT is not set"))

local paths = {}

local function read_paths()
  local name = assert(os.getenv("BENCH_PATHS_FILE"), "BENCH_PATHS_FILE is not set")
  local handle = assert(io.open(name, "r"))
  for line in handle:lines() do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
  handle:close()
  assert(#paths > 0, "BENCH_PATHS_FILE lists no path")
end

local function seed()
  local source = io.open("/dev/urandom", "rb")
  if source ~= nil then
    local data = source:read(4)
    source:close()
    if data ~= nil and #data == 4 then
      local a, b, c, d = data:byte(1, 4)
      math.randomseed(((a * 256 + b) * 256 + c) * 256 + d)
      return
    end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function init(args)
  read_paths()
  seed()
end

function request()
  return wrk.format(nil, paths[math.random(#paths)])
end

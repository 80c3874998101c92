-- wrk script for benches/load.sh: requests the URL paths listed in the file $WRK_PATHS (one
-- path per line, e.g. "/loc/asset.ism/manifest(format=m3u8-cmaf)").
--
-- WRK_MODE=cycle (default): every thread cycles through the whole list, thread i starting at
--   offset i * len / threads, so a small set of paths is spread over all connections.
-- WRK_MODE=once: path k goes to thread k mod $WRK_THREADS, and every path is requested exactly
--   once, in list order per thread. A thread that has all its answers writes the file
--   $WRK_DONE_DIR/<thread id> and stops; connections left without a path send nothing and idle.
--   (wrk itself always runs for -d; load.sh sends it SIGINT once every thread is done, so the
--   reported duration and req/s are the walk's.) In this mode a response() hook counts
--   non-200 answers and body bytes (which makes wrk keep bodies: a little more client CPU).
--
-- WRK_DELAY_MS=N (optional): each connection waits N ms before each request, which caps its
--   rate (benches/soak.sh runs a steady mix instead of the fastest possible one).
--
-- done() prints one machine-readable line starting with "RESULT".

local mode = os.getenv("WRK_MODE") or "cycle"
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")

-- Main state: hand each thread its id, keep the thread objects for done().
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Thread state.
local requests = {}
local pos = 1
local answered = 0
not200 = 0
body_bytes = 0
assigned = 0

function init(args)
  local file = assert(io.open(assert(os.getenv("WRK_PATHS"), "WRK_PATHS not set"), "r"))
  local all = {}
  for line in file:lines() do
    if line ~= "" then table.insert(all, line) end
  end
  file:close()
  assert(#all > 0, "no paths in " .. os.getenv("WRK_PATHS"))
  if mode == "once" then
    for k = 1, #all do
      if (k - 1) % nthreads == id then table.insert(requests, wrk.format("GET", all[k])) end
    end
  else
    for k = 1, #all do requests[k] = wrk.format("GET", all[k]) end
    pos = math.floor(id * #all / nthreads) % #all + 1
  end
  assigned = #requests
end

-- wrk (4.x) calls request() once on thread 0's state before the run, to count the requests in
-- the string (pipelining check): that call must not use up a path of the walk.
local verified = false

function request()
  if mode == "once" then
    if id == 0 and not verified then
      verified = true
      return requests[1] or wrk.format("GET", "/healthz")
    end
    if pos > #requests then return "" end -- nothing left: this connection goes quiet
    local r = requests[pos]
    pos = pos + 1
    return r
  end
  local r = requests[pos]
  pos = pos % #requests + 1
  return r
end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms then
  function delay() return delay_ms end
end

local function finish()
  local dir = os.getenv("WRK_DONE_DIR")
  if dir then
    local f = io.open(dir .. "/" .. id, "w")
    if f then f:write(answered, "\n"); f:close() end
  end
  wrk.thread:stop()
end

if mode == "once" then
  function response(status, headers, body)
    answered = answered + 1
    if status ~= 200 then not200 = not200 + 1 end
    if body then body_bytes = body_bytes + #body end
    if answered >= assigned then finish() end
  end
end

function done(summary, latency, reqs)
  local not_200, bytes, walked, planned = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    not_200 = not_200 + (tonumber(t:get("not200")) or 0)
    bytes = bytes + (tonumber(t:get("body_bytes")) or 0)
    planned = planned + (tonumber(t:get("assigned")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d " ..
    "non2xx3xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d not200=%d body_bytes=%d planned=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, not_200, bytes, planned))
end

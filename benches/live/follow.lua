-- wrk script for benches/live.sh: followers of live media playlists, as players behind a CDN
-- are. Run it with as many threads as connections (one connection per thread, so a response
-- answers the thread's last request).
--
-- $WRK_PATHS lists media playlist paths, one a line; thread i follows the playlists k with
-- k mod $WRK_THREADS == i. Each thread polls its playlists in turn, each about every
-- $PLAYLIST_EVERY_MS (default 1000: half a 2 s segment, what a CDN's max-age gives), and after a
-- playlist answer fetches the segments that appeared since its previous poll (on the first
-- poll, only the newest: followers start at the live edge), each once, before the next poll.
--
-- done() prints one machine-readable line starting with "RESULT" (requests, latency, errors,
-- and playlist and segment requests counted apart).

local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
local every_ms = tonumber(os.getenv("PLAYLIST_EVERY_MS") or "1000")

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Thread state.
local playlists = {}  -- paths this thread follows
local pos = 1         -- the playlist polled next
local seen = {}       -- playlist path -> set of segment paths already listed
local queue = {}      -- segment paths to fetch, oldest first
local last = nil      -- the path of the request in flight
playlist_requests = 0
segment_requests = 0
not200 = 0

function init(args)
  local file = assert(io.open(assert(os.getenv("WRK_PATHS"), "WRK_PATHS not set"), "r"))
  local k = 0
  for line in file:lines() do
    if line ~= "" then
      if k % nthreads == id then table.insert(playlists, line) end
      k = k + 1
    end
  end
  file:close()
end

local function dir_of(path)
  return path:match("^(.*/)") or "/"
end

local function resolve(base, uri)
  if uri:sub(1, 1) == "/" then return uri end
  local rest = uri:match("^https?://[^/]+(/.*)$")
  if rest then return rest end
  return dir_of(base) .. uri
end

function request()
  if #playlists == 0 then return wrk.format("GET", "/healthz") end
  if #queue > 0 then
    last = table.remove(queue, 1)
    segment_requests = segment_requests + 1
  else
    last = playlists[pos]
    pos = pos % #playlists + 1
    playlist_requests = playlist_requests + 1
  end
  return wrk.format("GET", last)
end

-- Wait between playlist polls so that each playlist is polled about every every_ms; segments
-- go at once.
function delay()
  if #queue > 0 or #playlists == 0 then return 0 end
  return math.floor(every_ms / #playlists)
end

function response(status, headers, body)
  if status ~= 200 then
    not200 = not200 + 1
    return
  end
  if last == nil or last:find("Fragments%(") then return end
  local first_poll = seen[last] == nil
  local listed = {}
  local new = {}
  for line in body:gmatch("[^\r\n]+") do
    if line:sub(1, 1) ~= "#" then
      local path = resolve(last, line)
      listed[path] = true
      if first_poll or not seen[last][path] then table.insert(new, path) end
    end
  end
  if first_poll then
    if #new > 0 then table.insert(queue, new[#new]) end
  else
    for _, path in ipairs(new) do table.insert(queue, path) end
  end
  seen[last] = listed
end

function done(summary, latency, reqs)
  local playlists_n, segments_n, not_200 = 0, 0, 0
  for _, t in ipairs(threads) do
    playlists_n = playlists_n + (tonumber(t:get("playlist_requests")) or 0)
    segments_n = segments_n + (tonumber(t:get("segment_requests")) or 0)
    not_200 = not_200 + (tonumber(t:get("not200")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d playlists=%d segments=%d " ..
    "non2xx3xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d not200=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), playlists_n, segments_n,
    e.status, e.connect, e.read, e.write, e.timeout, not_200))
end

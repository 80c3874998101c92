# shellcheck shell=bash
# Shell pieces shared by the benchmark scripts (benches/load.sh, benches/soak.sh): tools, the
# release build, the server's life cycle and /proc readings, and walking playlists with curl.
# Sourced, not run. The caller sets ROOT (the repository), OUT (an absolute results folder) and
# LOG_TAG, then BIN, CONFIG and BASE before start_server.

# The Python helpers import each other: no __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need_tools COMMAND:DEBIAN_PACKAGE ... — installs the packages of the commands not on PATH.
need_tools() {
  local missing=() spec
  for spec in "$@"; do command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]}"
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Builds the release binary unless BIN names one or BUILD=0; sets BIN.
build_release() {
  if [ -n "${BIN:-}" ]; then
    log "BIN=$BIN"
  elif [ "${BUILD:-1}" = 1 ]; then
    log "cargo build --release"
    cargo build --release --locked --quiet
  else
    log "BUILD=0: using the existing target/release/jit-origin"
  fi
  BIN=${BIN:-$ROOT/target/release/jit-origin}
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The server: start_server (re)starts "$BIN serve --config $CONFIG", logging to
# $OUT/server-N.log, and waits for /healthz. With SERVER_LOG_KEEP set (an awk condition on a
# log line), only the lines it selects are written, so a long run's access log stays small.
SERVER_PID=
SERVER_N=0
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    # The access log has a line per request (hundreds of MB at 70k req/s): keep its end,
    # unless SERVER_LOG_KEEP already kept only what matters.
    if [ -z "${SERVER_LOG_KEEP:-}" ]; then
      tail -n 2000 "$SERVER_LOG" >"$SERVER_LOG.tail" && mv "$SERVER_LOG.tail" "$SERVER_LOG"
    fi
  fi
  SERVER_PID=
}

start_server() {
  stop_server
  SERVER_N=$((SERVER_N + 1))
  SERVER_LOG=$OUT/server-$SERVER_N.log
  if [ -n "${SERVER_LOG_KEEP:-}" ]; then
    "$BIN" serve --config "$CONFIG" > >(awk "$SERVER_LOG_KEEP { print; fflush() }" >"$SERVER_LOG") 2>&1 &
  else
    "$BIN" serve --config "$CONFIG" >"$SERVER_LOG" 2>&1 &
  fi
  SERVER_PID=$!
  # SERVER_UP_MS: how long the server took to answer /healthz (the config's size shows in it).
  local t0 limit=${START_TIMEOUT_SECS:-10}
  t0=$(date +%s%N)
  for _ in $(seq $((limit * 20))); do
    if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
      SERVER_UP_MS=$((($(date +%s%N) - t0) / 1000000))
      log "server $SERVER_N up in $SERVER_UP_MS ms (pid $SERVER_PID, $BASE)"
      return
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { sleep 0.2; cat "$SERVER_LOG" >&2; die "server exited"; }
    sleep 0.05
  done
  cat "$SERVER_LOG" >&2
  die "server did not answer /healthz in $limit s"
}

# utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat, after "comm"), summed over
# the PIDs given (default: the server).
# shellcheck disable=SC2120 # callers without arguments mean the server
cpu_ticks() {
  local pid sum=0 t
  for pid in "${@:-$SERVER_PID}"; do
    t=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    sum=$((sum + t))
  done
  echo "$sum"
}
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/${2:-$SERVER_PID}/status"; }

# The static-file floor: Debian's nginx serving files under a root, one worker process,
# sendfile, keep-alive, and an access log line per request like the origin's. start_nginx ROOT
# writes $OUT/nginx/nginx.conf, starts nginx on a free port of 127.0.0.1 as the current user and
# sets NGINX_BASE and NGINX_PIDS (master and worker: the CPU accounting sums both).
NGINX_PID=
# shellcheck disable=SC2034 # read by the caller (benches/load.sh)
NGINX_PIDS=
start_nginx() {
  stop_nginx
  local root=$1 dir=$OUT/nginx port user=
  port=$(free_port)
  mkdir -p "$dir/tmp"
  rm -f "$dir/access.log" "$dir/error.log"
  # As root, the worker would otherwise run as "nobody".
  [ "$(id -u)" -ne 0 ] || user="user $(id -un);"
  cat >"$dir/nginx.conf" <<NGINX
# Written by benches/common.sh (start_nginx).
$user
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 100000000;
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; video/mp4 mp4; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    root $root;
  }
}
NGINX
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  NGINX_PID=$!
  NGINX_BASE=http://127.0.0.1:$port
  local worker=
  for _ in $(seq 200); do
    worker=$(pgrep -P "$NGINX_PID" | head -n1 || true)
    [ -n "$worker" ] && curl -sS -o /dev/null "$NGINX_BASE/" 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$dir/error.log" >&2; die "nginx exited"; }
    sleep 0.05
  done
  [ -n "$worker" ] || { cat "$dir/error.log" >&2; die "nginx did not start"; }
  NGINX_PIDS="$NGINX_PID $worker"
  log "nginx up (master $NGINX_PID, worker $worker, $NGINX_BASE, root $root)"
}
stop_nginx() {
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    local alog=$OUT/nginx/access.log
    [ ! -f "$alog" ] || { tail -n 2000 "$alog" >"$alog.tail" && mv "$alog.tail" "$alog"; }
  fi
  NGINX_PID=
  # shellcheck disable=SC2034
  NGINX_PIDS=
}

# package_static ASSET_FOLDER NAME: `$BIN package` of the asset folder as HLS CMAF into
# $OUT/static/NAME, for the static floor (kept while newer than the asset's files).
package_static() {
  local src=$1 dst=$OUT/static/$2
  if [ -f "$dst/.complete" ] && [ -z "$(find "$src" -newer "$dst/.complete" -type f)" ]; then
    return
  fi
  log "packaging $src into $dst (static floor)"
  rm -rf "$dst"
  "$BIN" package --format hls-cmaf --out "$dst" "$src" >/dev/null
  touch "$dst/.complete"
}

# static_paths [ASSET] <ORIGIN_PATHS: maps origin paths (/{locator}/{asset}.ism/{resource}) to
# the files package_static wrote for the same resources (/{asset}/{file}): HLS CMAF without
# encryption (`package` writes neither MPEG-TS nor encrypted files), under the file's name with
# its extension. ASSET replaces the path's asset name (hard-linked copies of one asset).
static_paths() {
  (cd "$OUT/static" && find . -type f ! -name .complete) >"$OUT/static-files.txt"
  awk -v asset="${1:-}" '
    function key(p) { sub(/\)\.[a-z0-9]+$/, ")", p); return p }
    FNR == NR { sub(/^\./, ""); files[key($0)] = $0; next }
    {
      p = $0
      sub(/^\/[^\/]*\//, "/", p)   # the locator
      if (asset != "") sub(/^\/[^\/]*\//, "/" asset "/", p); else sub(/\.ism\//, "/", p)
      gsub(/,encryption=[^,)]*/, "", p)
      gsub(/format=m3u8-aapl/, "format=m3u8-cmaf", p)
      k = key(p)
      if (!(k in files)) { print "static_paths: no packaged file for " $0 > "/dev/stderr"; exit 1 }
      print files[k]
    }' "$OUT/static-files.txt" -
}

# GET that must answer 200; prints the body.
get() {
  local code
  code=$(curl -sS -o "$OUT/get.body" -w '%{http_code}' "$BASE$1") || die "GET $1 failed"
  [ "$code" = 200 ] || { cat "$OUT/get.body" >&2; die "GET $1 answered $code"; }
  cat "$OUT/get.body"
}

# Resolves a playlist's URI line against the playlist's path (relative or absolute).
resolve() {
  case $2 in
    /*) echo "$2" ;;
    http*) echo "/${2#*://*/}" ;;
    *) echo "${1%/*}/$2" ;;
  esac
}

# Media playlist path of the first video variant (a STREAM-INF with RESOLUTION=) of a multivariant.
video_playlist() {
  local mv=$1 body uri
  body=$(get "$mv")
  uri=$(printf '%s\n' "$body" | awk '/^#EXT-X-STREAM-INF/ && /RESOLUTION=/ {getline; print; exit}' | tr -d '\r')
  [ -n "$uri" ] || die "no variant in $mv"
  resolve "$mv" "$uri"
}

# Segment paths of a media playlist, one a line.
segments_of() {
  local pl=$1
  get "$pl" | tr -d '\r' | grep -v '^#' | grep -v '^$' | while read -r uri; do resolve "$pl" "$uri"; done
}

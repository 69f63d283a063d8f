#!/usr/bin/env bash
# Interoperability proof for ws-tokio: our server and client against Python `websockets`,
# Node `ws`, a real Chromium, and nginx as a reverse proxy. Everything runs on 127.0.0.1.
#
#   bash ws-tokio/tests/interop/run.sh
#
# Installs what it needs, idempotently: Debian's chromium and nginx-light (apt-get, only when
# missing), a venv with `websockets` under target/interop-venv, and `npm ci` here. Builds the
# interop_server / interop_client examples (debug; INTEROP_PROFILE=release for release), runs
# every check, prints one PASS/FAIL line per check and ends with `N passed, M failed`; exits 1
# if anything failed. Logs go to a temporary directory, kept when something failed (or with
# INTEROP_KEEP=1). INTEROP_VERBOSE=1 also prints the helpers' other output.
#
# Checks:
#  1. interop_server vs Python websockets and Node ws clients: echo sizes, fragmented messages,
#     ping/pong, keepalive, every allowed close code, server-initiated close, subprotocols, 403.
#     These clients offer no compression; every connection must come without an extension.
#  2. interop_client vs Python websockets and Node ws servers: the same from the client side,
#     fragmentation on the receiving side (our API sends whole messages only), and 403. These
#     servers decline our permessage-deflate offer; every connection must come without one.
#  3. Chromium (headless, playwright-core) against interop_server, both sides checked;
#     permessage-deflate (Chromium always offers it) must be negotiated, and a 1 MiB text must
#     arrive compressed.
#  4. Behind nginx (proxy_read_timeout 3s): keepalive pings keep an idle connection open for
#     10 s; without pings the proxy cuts it; a dead peer is detected by the pong timeout.
#  5. permessage-deflate (RFC 7692), with the Sec-WebSocket-Extensions answer asserted on every
#     connection (by the client) and in the server's log (as it went out on the wire):
#     a. interop_server (default settings, then --lean) vs Python websockets and Node ws clients
#        with compression on, and vs clients asking for server_max_window_bits=10: all of 1
#        (sampled close codes) plus text/binary of 0 B, 125 B, 64 KiB and 16 MiB (JSON, pattern,
#        random), compressed fragmented messages, close with 4000; the size of the server's
#        compressed echoes on the wire, and of the clients' compressed messages in the server's
#        log; a message only a window of 8 KiB or more can shrink (it must not shrink at 10 bits).
#     b. interop_client vs Python websockets (its default, 12-bit windows; and with no context
#        takeover) and Node ws (perMessageDeflate: true) servers: the same from the client side.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="$ROOT/target/interop-venv"
PY="$VENV/bin/python"
PROFILE="${INTEROP_PROFILE:-debug}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
STARTED_AT=$(date +%s)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ws-interop.XXXXXX")"
PIDS=()
PASSED=0
FAILED=0

# ---------------------------------------------------------------------------------------------
# Process handling: everything started in the background is recorded and stopped at the end.

stop_all() {
  local p i alive
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  PIDS=()
}

on_exit() {
  stop_all
  if [ -z "${INTEROP_KEEP:-}" ] && [ "$FAILED" -eq 0 ]; then rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, output to $WORK/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}

# wait_listening NAME: waits (at most 30 s) for `LISTENING HOST:PORT` in NAME's log; prints PORT.
wait_listening() {
  local log="$WORK/$1.log" i line
  for i in $(seq 1 300); do
    line=$(grep -m1 '^LISTENING ' "$log" 2>/dev/null)
    if [ -n "$line" ]; then
      echo "${line##*:}"
      return 0
    fi
    sleep 0.1
  done
  echo "no LISTENING line from $1 after 30 s: $(tail -n 3 "$log" 2>/dev/null | tr '\n' ' ')" >&2
  return 1
}

# wait_port PORT: waits (at most 20 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------------
# Reporting.

record() { # PASS|FAIL NAME [DETAIL]
  if [ "$1" = PASS ]; then
    PASSED=$((PASSED + 1))
    echo "PASS $2"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $2${3:+: $3}"
  fi
}

# collect GROUP OUT RC: turns a helper's PASS/FAIL lines into checks of GROUP.
collect() {
  local group=$1 out=$2 rc=$3 n=0 line
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) record PASS "[$group] ${line#PASS }"; n=$((n + 1)) ;;
      "FAIL "*) record FAIL "[$group] ${line#FAIL }"; n=$((n + 1)) ;;
      "  ("*) echo "     $line" ;;
      *) [ -n "${INTEROP_VERBOSE:-}" ] && echo "     | $line" ;;
    esac
  done <"$out"
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
    record FAIL "[$group] helper exited with status $rc" "$(tail -n 3 "$out" | tr '\n' ' ')"
  elif [ "$n" -eq 0 ]; then
    record FAIL "[$group] helper reported no checks" "$(tail -n 3 "$out" | tr '\n' ' ')"
  fi
}

# run_checks GROUP SECONDS CMD...: runs a helper (bounded in time) and collects its checks.
run_checks() {
  local group=$1 limit=$2 out rc
  shift 2
  out="$WORK/$(echo "$group" | tr -c 'A-Za-z0-9\n' '_').out"
  timeout -k 5 "$limit" "$@" >"$out" 2>&1
  rc=$?
  collect "$group" "$out" "$rc"
}

finish() {
  stop_all
  local took=$(($(date +%s) - STARTED_AT))
  echo
  echo "interop: took ${took} s in all; logs: $([ "$FAILED" -eq 0 ] && [ -z "${INTEROP_KEEP:-}" ] && echo "removed" || echo "$WORK")"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && exit 0 || exit 1
}

# ---------------------------------------------------------------------------------------------
# Setup.

APT_UPDATED=""
apt_install() { # PACKAGE...: apt-get install, with one `apt-get update` first
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update -q >>"$WORK/apt.log" 2>&1
    APT_UPDATED=1
  fi
  $sudo apt-get install -y -q --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1
}

setup() {
  local need=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  [ -x "$CHROMIUM" ] || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (apt-get)"
    if ! apt_install "${need[@]}"; then
      # Newer Debian has only `nginx` (nginx-light became a transitional package).
      need=("${need[@]/nginx-light/nginx}")
      apt_install "${need[@]}" || { tail -n 20 "$WORK/apt.log"; return 1; }
    fi
  fi
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

  local want
  want=$(sed -n 's/^websockets==//p' "$HERE/requirements.txt")
  if ! "$PY" -c 'import sys, websockets.version as v; sys.exit(v.version != sys.argv[1])' "$want" 2>/dev/null; then
    echo "== creating $VENV with websockets"
    if ! python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1; then
      # Debian's own python3 needs python3-venv for ensurepip.
      apt_install python3-venv &&
        python3 -m venv --clear "$VENV" >>"$WORK/venv.log" 2>&1 ||
        { tail -n 20 "$WORK/venv.log"; return 1; }
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >>"$WORK/venv.log" 2>&1 ||
      { tail -n 20 "$WORK/venv.log"; return 1; }
  fi

  if [ ! -f "$HERE/node_modules/.package-lock.json" ] ||
    [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
    echo "== npm ci (ws, playwright-core)"
    (cd "$HERE" && npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1) ||
      { tail -n 20 "$WORK/npm.log"; return 1; }
  fi

  echo "== building interop_server and interop_client ($PROFILE)"
  local flags=()
  [ "$PROFILE" = release ] && flags+=(--release)
  (cd "$ROOT" && cargo build -q "${flags[@]}" -p ws-tokio --example interop_server --example interop_client) ||
    return 1
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/examples"
  [ -x "$BIN/interop_server" ] && [ -x "$BIN/interop_client" ]
}

if ! setup; then
  record FAIL "setup (installs and build)"
  finish
fi
SETUP_DONE_AT=$(date +%s)
echo "== setup done in $((SETUP_DONE_AT - STARTED_AT)) s; checks start"

# ---------------------------------------------------------------------------------------------
# 1 + 3. Our server against Python websockets, Node ws and Chromium.

echo "== 1. interop_server vs Python websockets / Node ws clients; 3. vs Chromium"
start server "$BIN/interop_server" --protocols chat,superchat --ping-interval-ms 300 --any-origin
if PORT=$(wait_listening server); then
  BASE="ws://127.0.0.1:$PORT"
  run_checks "python client -> ws-tokio server" 180 "$PY" "$HERE/py_client.py" "$BASE" --expect-ext none
  run_checks "node client -> ws-tokio server" 180 node "$HERE/node_client.js" "$BASE" --expect-ext none
  run_checks "chromium -> ws-tokio server" 120 node "$HERE/browser.js" "$BASE/browser" "$CHROMIUM"
  sleep 0.5 # let the server log the last connections' ends
  L="$WORK/server.log"
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" keepalive /keepalive-py 2
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" keepalive /keepalive-node 2
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" reject /reject 403
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" ended /close-me/4001 clean
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" ended /close-me/4002 clean
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" ended /close-after/6000/4003 clean
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" ended /close-after/6000/4004 clean
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" browser /browser
  run_checks "ws-tokio server log" 30 "$PY" "$HERE/logcheck.py" "$L" all-clean
else
  record FAIL "interop_server did not start"
fi
stop_all

# ---------------------------------------------------------------------------------------------
# 2. Our client against Python websockets and Node ws servers.

echo "== 2. interop_client vs Python websockets / Node ws servers"
start py_server "$PY" "$HERE/py_server.py"
start node_server node "$HERE/node_server.js"
if PY_PORT=$(wait_listening py_server); then
  run_checks "ws-tokio client -> python server" 180 "$BIN/interop_client" --expect-ext none \
    "ws://127.0.0.1:$PY_PORT"
  run_checks "ws-tokio client -> python server" 30 "$BIN/interop_client" --expect-reject 403 \
    "ws://127.0.0.1:$PY_PORT/reject"
else
  record FAIL "python websockets server did not start"
fi
if NODE_PORT=$(wait_listening node_server); then
  run_checks "ws-tokio client -> node server" 180 "$BIN/interop_client" --expect-ext none \
    "ws://127.0.0.1:$NODE_PORT"
  run_checks "ws-tokio client -> node server" 30 "$BIN/interop_client" --expect-reject 403 \
    "ws://127.0.0.1:$NODE_PORT/reject"
else
  record FAIL "node ws server did not start"
fi
stop_all

# ---------------------------------------------------------------------------------------------
# 4. Behind nginx.

echo "== 4. behind nginx (proxy_read_timeout 3s)"
DEAD_PING=1000
DEAD_PONG=2000
start ka_server "$BIN/interop_server" --ping-interval-ms 1000 --pong-timeout-ms 5000
start noping_server "$BIN/interop_server" --no-ping
start dead_server "$BIN/interop_server" --ping-interval-ms $DEAD_PING --pong-timeout-ms $DEAD_PONG \
  --close-timeout-ms 500
if KA=$(wait_listening ka_server) && NP=$(wait_listening noping_server) &&
  DEAD=$(wait_listening dead_server) && NG=$(free_port); then
  N="$WORK/nginx"
  mkdir -p "$N/logs"
  cat >"$N/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $N/nginx.pid;
error_log $N/logs/error.log info;
events { worker_connections 128; }
http {
    access_log $N/logs/access.log;
    client_body_temp_path $N/body;
    proxy_temp_path $N/proxy;
    fastcgi_temp_path $N/fastcgi;
    uwsgi_temp_path $N/uwsgi;
    scgi_temp_path $N/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$connection_upgrade;
    proxy_set_header Host \$host;
    proxy_buffering off;
    proxy_read_timeout 3s;
    proxy_send_timeout 3s;
    server {
        listen 127.0.0.1:$NG;
        location /ka/ { proxy_pass http://127.0.0.1:$KA; }
        location /noping/ { proxy_pass http://127.0.0.1:$NP; }
        location /dead/ { proxy_pass http://127.0.0.1:$DEAD; }
    }
}
EOF
  start nginx "$NGINX" -p "$N/" -c "$N/nginx.conf" -e "$N/logs/error.log"
  if wait_port "$NG"; then
    # The four scenarios run at the same time; each is bounded.
    (timeout -k 5 60 node "$HERE/nginx_client.js" keepalive "ws://127.0.0.1:$NG/ka/idle" 10000 \
      >"$WORK/ka.out" 2>&1; echo $? >"$WORK/ka.rc") &
    PIDS+=($!)
    (timeout -k 5 60 node "$HERE/nginx_client.js" cut "ws://127.0.0.1:$NG/noping/idle" 10000 \
      >"$WORK/cut.out" 2>&1; echo $? >"$WORK/cut.rc") &
    PIDS+=($!)
    (timeout -k 5 60 "$PY" "$HERE/dead_peer.py" "ws://127.0.0.1:$NG/dead/peer" 8 \
      >"$WORK/dead.json" 2>&1; echo $? >"$WORK/dead.rc") &
    PIDS+=($!)
    (timeout -k 5 60 "$PY" "$HERE/dead_peer.py" "ws://127.0.0.1:$DEAD/dead-direct/peer" 8 \
      >"$WORK/dead-direct.json" 2>&1; echo $? >"$WORK/dead-direct.rc") &
    PIDS+=($!)
    wait "${PIDS[@]: -4}" 2>/dev/null
    sleep 0.5
    collect "nginx (a) keepalive" "$WORK/ka.out" "$(cat "$WORK/ka.rc" 2>/dev/null || echo 99)"
    collect "nginx (b) no pings" "$WORK/cut.out" "$(cat "$WORK/cut.rc" 2>/dev/null || echo 99)"
    run_checks "nginx (b) no pings" 30 "$PY" "$HERE/logcheck.py" "$WORK/noping_server.log" \
      ended /noping/idle error=PeerVanished
    run_checks "nginx (c) dead peer" 30 "$PY" "$HERE/logcheck.py" "$WORK/dead_server.log" \
      dead-peer /dead/peer $DEAD_PING $DEAD_PONG "$WORK/dead.json"
    run_checks "dead peer, direct" 30 "$PY" "$HERE/logcheck.py" "$WORK/dead_server.log" \
      dead-peer /dead-direct/peer $DEAD_PING $DEAD_PONG "$WORK/dead-direct.json"
  else
    record FAIL "nginx did not start" "$(tail -n 5 "$N/logs/error.log" "$WORK/nginx.log" 2>/dev/null | tr '\n' ' ')"
  fi
else
  record FAIL "nginx checks: the servers did not start"
fi
stop_all

# ---------------------------------------------------------------------------------------------
# 5. permessage-deflate.

DEFLATE_STEP=900 # seconds for one client run (each check inside is bounded to 120 s)
BIG=16777216
RANDOM_4M=4194304

# deflate_server_run LABEL SERVER_FLAGS EXPECTED_EXT py|node CLIENT_ARGS...: a fresh
# interop_server with SERVER_FLAGS, the client with compression on, then the server's log.
# The pong timeout is raised from 20 s to 120 s: in a debug build, compressing a 16 MiB message
# at a 10-bit window keeps the connection's task busy for 20-25 s, and ws-tokio checks its pong
# deadline before it reads the pong that arrived meanwhile, so the connection would fail with
# Timeout(Pong) although the peer answered in time (a release build compresses it in 0.5 s).
deflate_server_run() {
  local label=$1 flags=$2 expect=$3 client=$4 name port group L random=$BIG a prev=""
  shift 4
  for a in "$@"; do
    [ "$prev" = --random-size ] && random=$a
    prev=$a
  done
  name="dsrv_$(echo "$label" | tr -c 'A-Za-z0-9\n' '_')"
  group="deflate: $label"
  # shellcheck disable=SC2086 # flags are words
  start "$name" "$BIN/interop_server" --protocols chat,superchat --ping-interval-ms 300 \
    --pong-timeout-ms 120000 $flags
  if port=$(wait_listening "$name"); then
    case $client in
      py) run_checks "$group" $DEFLATE_STEP "$PY" "$HERE/py_client.py" "ws://127.0.0.1:$port" \
        --close-codes sample --expect-ext "$expect" "$@" ;;
      node) run_checks "$group" $DEFLATE_STEP node "$HERE/node_client.js" "ws://127.0.0.1:$port" \
        --close-codes sample --expect-ext "$expect" "$@" ;;
    esac
    sleep 0.5
    L="$WORK/$name.log"
    run_checks "$group: server log" 30 "$PY" "$HERE/logcheck.py" "$L" negotiated "$expect"
    run_checks "$group: server log" 30 "$PY" "$HERE/logcheck.py" "$L" keepalive "/keepalive-$client" 2
    run_checks "$group: server log" 30 "$PY" "$HERE/logcheck.py" "$L" compressed-in "/deflate-$client" $BIG 5
    if [ "$random" = $BIG ]; then
      # That connection's own check reports how it ended.
      run_checks "$group: server log" 30 "$PY" "$HERE/logcheck.py" "$L" all-clean "/deflate-random-$client"
    else
      run_checks "$group: server log" 30 "$PY" "$HERE/logcheck.py" "$L" all-clean
    fi
  else
    record FAIL "[$group] interop_server $flags did not start"
  fi
  stop_all
}

echo "== 5a. permessage-deflate: interop_server vs Python websockets / Node ws clients"
# The default server asks every client to reset its context (client_no_context_takeover), so
# that it keeps no decompressor between messages.
DEFAULT_EXT="permessage-deflate; client_no_context_takeover"
deflate_server_run "python client -> ws-tokio server" "" "$DEFAULT_EXT" py --deflate on
deflate_server_run "node client -> ws-tokio server" "" "$DEFAULT_EXT" node --deflate true
deflate_server_run "python client (server_max_window_bits=10) -> ws-tokio server" "" \
  "$DEFAULT_EXT; server_max_window_bits=10" py --deflate window10 --random-size $RANDOM_4M
deflate_server_run "node client (serverMaxWindowBits: 10) -> ws-tokio server" "" \
  "$DEFAULT_EXT; server_max_window_bits=10" node --deflate '{"serverMaxWindowBits":10}' \
  --random-size $RANDOM_4M
LEAN_EXT="permessage-deflate; server_no_context_takeover; client_no_context_takeover"
deflate_server_run "python client -> ws-tokio server --lean" --lean "$LEAN_EXT" py --deflate on \
  --random-size $RANDOM_4M
deflate_server_run "node client -> ws-tokio server --lean" --lean "$LEAN_EXT" node --deflate true \
  --random-size $RANDOM_4M

echo "== 5b. permessage-deflate: interop_client vs Python websockets / Node ws servers"
# deflate_client_run LABEL EXPECTED_EXT CLIENT_ARGS... -- SERVER_CMD...
deflate_client_run() {
  local label=$1 expect=$2 name port args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  name="dpeer_$(echo "$label" | tr -c 'A-Za-z0-9\n' '_')"
  start "$name" "$@"
  if port=$(wait_listening "$name"); then
    run_checks "deflate: $label" $DEFLATE_STEP "$BIN/interop_client" --close-codes sample \
      --expect-ext "$expect" "${args[@]}" "ws://127.0.0.1:$port"
  else
    record FAIL "[deflate: $label] the server did not start"
  fi
  stop_all
}
deflate_client_run "ws-tokio client -> python server" \
  "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12" \
  -- "$PY" "$HERE/py_server.py" --deflate default
deflate_client_run "ws-tokio client -> python server (no context takeover)" \
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12" \
  --random-size $RANDOM_4M -- "$PY" "$HERE/py_server.py" --deflate lean
deflate_client_run "ws-tokio client -> node server" "permessage-deflate" \
  -- node "$HERE/node_server.js" --deflate true

finish

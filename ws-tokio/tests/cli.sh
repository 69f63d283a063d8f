#!/usr/bin/env bash
# The `ws` command line end to end, on 127.0.0.1 only:
#   1. `ws connect` typed at in a real terminal (tmux: send-keys, capture-pane) against
#      `ws serve`: a text and its echo, /ping with -P shows the pong, a bad command, history
#      (Up), /close 4000 bye ends with that code (exit 3);
#   2. `ws connect -x` from a script: the reply on stdout, exit 0;
#   3. through tinyproxy (HTTP CONNECT, started here with its own config) with --proxy;
#   4. wss:// to `ws serve --tls` with a CA made here by openssl: --ca, no CA (refused),
#      --insecure (works, with its warning);
#   5. `ws bench`: the k6 scenario at 1,000 virtual users (10 s ramp, 15 s in all, sessions of
#      5 s), no errors, every session and message accounted for;
#   6. the Rust tests of the binary (tests/cli.rs, its unit tests) and of ws_tokio::load
#      (tests/load.rs and its unit tests).
# Installs tmux, tinyproxy and openssl with apt-get when they are missing.
#
#   bash ws-tokio/tests/cli.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${need[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
TINYPROXY=$(command -v tinyproxy || echo /usr/bin/tinyproxy)

# `ws connect` follows the environment's proxy, as curl does: none here but the one step 3 sets.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

start=$(date +%s)
cargo build -q -p ws-tokio --features cli --bin ws
WS=$PWD/target/debug/ws

tmp=$(mktemp -d)
session="ws-cli-test-$$"
pids=()
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  if tmux has-session -t "$session" 2>/dev/null; then
    echo "--- terminal:" >&2
    tmux capture-pane -p -t "$session" >&2
  fi
  exit 1
}

# Polls (at most 20 s) until `file` has a line containing `text`.
wait_file() {
  local file=$1 text=$2
  for _ in $(seq 200); do
    grep -qF -- "$text" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "no \"$text\" in $file"
}

# Polls (at most 20 s) until the terminal shows `text`.
wait_screen() {
  local text=$1
  for _ in $(seq 200); do
    tmux capture-pane -p -t "$session" | grep -qF -- "$text" && return 0
    sleep 0.1
  done
  fail "the terminal never showed \"$text\""
}

# Starts `ws serve ARGS` on a free port; sets $port and $server_pid, logs to $tmp/NAME.log.
serve() {
  local name=$1
  shift
  "$WS" serve 127.0.0.1:0 --no-color "$@" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_file "$tmp/$name.log" "listening on"
  port=$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/$name.log" | head -1 | cut -d: -f2)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== 1. ws connect in a terminal (tmux)"
serve echo
tmux new-session -d -s "$session" -x 150 -y 40 "bash --norc --noprofile"
tmux send-keys -t "$session" "$WS connect -P ws://127.0.0.1:$port/; echo EXIT=\$?" Enter
wait_screen "connected to ws://127.0.0.1:$port/"
tmux send-keys -t "$session" "hello from a terminal" Enter
wait_screen "< hello from a terminal"
wait_file "$tmp/echo.log" "hello from a terminal"
tmux send-keys -t "$session" "/ping are you there" Enter
wait_screen '< pong "are you there"'
tmux send-keys -t "$session" "/nonsense" Enter
wait_screen "unknown command /nonsense"
# History: Up brings back the last line; Ctrl-U clears it again.
tmux send-keys -t "$session" Up
wait_screen "> /nonsense"
tmux send-keys -t "$session" C-u
tmux send-keys -t "$session" "/close 4000 bye" Enter
wait_screen "closed: 4000 bye"
wait_screen "EXIT=3"
wait_file "$tmp/echo.log" "closed 4000 bye"
# The line editor's raw mode is gone: the shell's terminal echoes and reads lines again.
tmux send-keys -t "$session" "stty -a | grep -o -w -e -icanon -e -echo | wc -l | sed 's/^/RAW=/'" Enter
wait_screen "RAW=0"
echo "ok: echo, pong with -P, history, /close 4000 bye -> exit 3"

echo "== 2. ws connect -x from a script"
out=$("$WS" connect -x "from a script" -w 1s "ws://127.0.0.1:$port/")
[ "$out" = "from a script" ] || fail "-x printed \"$out\""
echo "ok: reply on stdout, exit 0"

echo "== 3. through tinyproxy (HTTP CONNECT)"
tp_port=$(free_port)
cat >"$tmp/tinyproxy.conf" <<EOF
Listen 127.0.0.1
Port $tp_port
Timeout 30
LogLevel Connect
LogFile "$tmp/tinyproxy.log"
MaxClients 20
Allow 127.0.0.1
DisableViaHeader Yes
EOF
"$TINYPROXY" -d -c "$tmp/tinyproxy.conf" >"$tmp/tinyproxy-stdout.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$tp_port") 2>/dev/null && break
  sleep 0.1
done
out=$("$WS" connect --proxy "http://127.0.0.1:$tp_port" -x "through the proxy" -w 1s "ws://127.0.0.1:$port/")
[ "$out" = "through the proxy" ] || fail "--proxy printed \"$out\""
wait_file "$tmp/tinyproxy.log" "CONNECT"
grep -F "CONNECT" "$tmp/tinyproxy.log" | grep -qF "127.0.0.1:$port" || fail "tinyproxy did not log the tunnel to $port"
tunnels=$(grep -c "CONNECT" "$tmp/tinyproxy.log")
# The proxy the environment names, as curl takes it; --no-proxy goes around it.
out=$(http_proxy="http://127.0.0.1:$tp_port" "$WS" connect -x "via http_proxy" -w 1s "ws://127.0.0.1:$port/")
[ "$out" = "via http_proxy" ] || fail "http_proxy printed \"$out\""
for _ in $(seq 100); do
  [ "$(grep -c "CONNECT" "$tmp/tinyproxy.log")" -gt "$tunnels" ] && break
  sleep 0.1
done
[ "$(grep -c "CONNECT" "$tmp/tinyproxy.log")" -gt "$tunnels" ] || fail "http_proxy did not go through tinyproxy"
tunnels=$(grep -c "CONNECT" "$tmp/tinyproxy.log")
out=$(http_proxy="http://127.0.0.1:$tp_port" "$WS" connect --no-proxy -x "direct" -w 1s "ws://127.0.0.1:$port/")
[ "$out" = "direct" ] || fail "--no-proxy printed \"$out\""
sleep 0.5
[ "$(grep -c "CONNECT" "$tmp/tinyproxy.log")" = "$tunnels" ] || fail "--no-proxy went through the proxy"
echo "ok: --proxy and http_proxy went through tinyproxy's CONNECT tunnel, --no-proxy around it"

echo "== 4. wss:// with a CA made here"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -subj "/CN=ws cli test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -out "$tmp/server.pem" -days 2 -extfile "$tmp/ext.cnf" 2>/dev/null
serve tls --tls "$tmp/server.pem" "$tmp/server.key"
grep -qF "wss://127.0.0.1:$port/" "$tmp/tls.log" || fail "ws serve --tls does not say wss://"
out=$("$WS" connect --ca "$tmp/ca.pem" -x "over TLS" -w 1s "wss://localhost:$port/")
[ "$out" = "over TLS" ] || fail "wss with --ca printed \"$out\""
set +e
"$WS" connect -x "untrusted" -w 1s "wss://localhost:$port/" >"$tmp/untrusted.out" 2>"$tmp/untrusted.log"
code=$?
set -e
[ "$code" = 1 ] || fail "wss without the CA exited $code, not 1"
grep -qi "certificate\|UnknownIssuer" "$tmp/untrusted.log" || fail "no certificate error for the untrusted server"
out=$("$WS" connect --insecure -x "not checked" -w 1s "wss://127.0.0.1:$port/" 2>"$tmp/insecure.log")
[ "$out" = "not checked" ] || fail "--insecure printed \"$out\""
grep -qF "WARNING: --insecure" "$tmp/insecure.log" || fail "--insecure gave no warning"
echo "ok: --ca trusted, no CA refused (exit 1), --insecure warned"

echo "== 5. ws bench: k6 scenario, 1,000 virtual users"
serve bench -q
"$WS" bench "ws://127.0.0.1:$port/" --vus 1000 --ramp 10s -d 15s --session 5s \
  --server-pid "$server_pid" --json >"$tmp/bench.json"
python3 - "$tmp/bench.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["metrics"]
sent, received = m["ws_msgs_sent"]["count"], m["ws_msgs_received"]["count"]
sessions = m["ws_sessions"]["count"]
assert r["errors"] == 0, r
assert sessions >= 1000, sessions
assert sent == received and sent > 1000, (sent, received)
assert r["peak_connections"] >= 900, r["peak_connections"]
for name in ("ws_connecting", "ws_round_trip", "ws_session_duration"):
    t = m[name]
    assert t["count"] > 0 and 0 < t["min"] <= t["med"] <= t["p(90)"] <= t["p(95)"] <= t["max"], (name, t)
s = r["server"]
print(f"ok: {sessions} sessions, {sent} messages echoed, peak {r['peak_connections']} connections, "
      f"round trip p(95) {m['ws_round_trip']['p(95)']:.2f} ms, "
      f"server {s.get('bytes_per_connection') or 0:.0f} B per connection at peak")
EOF

echo "== 6. the binary's Rust tests (feature cli: not in the workspace run) and the load module's"
cargo test -p ws-tokio --features cli --test cli --test load --bins 2>&1 | grep -E "^test result|FAILED|panicked|Running"
test "${PIPESTATUS[0]}" = 0 || fail "cargo test failed"
# The load module's unit tests (the rest of the library's run in the workspace run).
cargo test -p ws-tokio --features cli --lib load:: 2>&1 | grep -E "^test result|FAILED|panicked|Running"
test "${PIPESTATUS[0]}" = 0 || fail "the load module's unit tests failed"
cargo test -p ws-tokio --features load --doc load 2>&1 | grep -E "^test result|FAILED|panicked"
test "${PIPESTATUS[0]}" = 0 || fail "the load module's doc tests failed"

echo "cli.sh: all passed in $(($(date +%s) - start)) s"

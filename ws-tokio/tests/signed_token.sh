#!/usr/bin/env bash
# End-to-end run of the signed_token example on 127.0.0.1: the server, then its client with a
# token in each of the three places (accepted), an expired token and a token signed with
# another secret (refused with 401), and raw requests without a token (401 with a Bearer
# challenge) and from another site (403). Then a real Chromium sends the token the way a
# browser must, in the subprotocols (signed_token_browser.js).
#
#   bash ws-tokio/tests/signed_token.sh
#
# Installs what the browser part needs when missing, as tests/interop/run.sh does: Debian's
# chromium (apt-get) and playwright-core (npm ci in tests/interop). Prints one PASS/FAIL line
# per check; exits 1 if anything failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=ws-tokio/tests
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

cargo build -q -p ws-tokio --example signed_token
bin=target/debug/examples/signed_token
log=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$log"' EXIT

export WS_TOKEN_SECRET=ci-secret

start_server() { # log name, extra args...; sets $url
  local name=$1
  shift
  "$bin" server 127.0.0.1:0 "$@" >"$log/$name" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening on' "$log/$name" && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$log/$name")
  [ -n "$url" ] || { echo "FAIL server did not start"; cat "$log/$name"; exit 1; }
}

start_server server
hostport=${url#ws://}

failed=0
check() { # name, expected exit code, command...
  local name=$1 want=$2
  shift 2
  local got=0
  timeout 20 "$@" >"$log/out" 2>&1 || got=$?
  if [ "$got" = "$want" ]; then
    echo "PASS $name"
  else
    echo "FAIL $name (exit $got, wanted $want)"
    cat "$log/out"
    failed=1
  fi
}
expect_out() { # name, pattern
  if grep -q -- "$2" "$log/out"; then echo "PASS $1"; else echo "FAIL $1"; cat "$log/out"; failed=1; fi
}

for via in header query protocol; do
  check "token in $via accepted" 0 "$bin" client "$url/chat" alice --via "$via"
  expect_out "greeting and echo ($via)" '^< hello alice'
done
expect_out "the marker protocol is echoed" 'subprotocol Some("bearer")'
check "expired token refused" 1 "$bin" client "$url/chat" bob --ttl -5
expect_out "expired token gets 401" 'HTTP 401'
check "foreign secret refused" 1 env WS_TOKEN_SECRET=other "$bin" client "$url/chat" mallory
expect_out "foreign secret gets 401" 'HTTP 401'

raw() { # extra header lines (CRLF-terminated)
  printf 'GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%b\r\n' "$hostport" "$1" |
    timeout 10 python3 -c '
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(sys.stdin.buffer.read())
out = b""
while True:
    b = s.recv(4096)
    out += b
    if not b or b"\r\n\r\n" in out:
        break
sys.stdout.write(out.split(b"\r\n\r\n", 1)[0].decode("latin-1") + "\n")
' "$hostport" >"$log/out" 2>&1 || true
}
raw ''
expect_out "no token gets 401" '^HTTP/1.1 401'
expect_out "with a Bearer challenge" 'WWW-Authenticate: Bearer realm="signed_token example"'
token=$("$bin" mint alice 60)
raw "Origin: https://evil.example\r\nAuthorization: Bearer $token\r\n"
expect_out "cross-site origin gets 403" '^HTTP/1.1 403'
raw "Origin: http://$hostport\r\nAuthorization: Bearer $token\r\n"
expect_out "same-origin browser request gets 101" '^HTTP/1.1 101'


# --- A real browser: the token in the subprotocols.
if [ ! -x "$CHROMIUM" ]; then
  echo "== installing chromium (apt-get)"
  { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } >"$log/apt" 2>&1 ||
    { tail -n 20 "$log/apt"; exit 1; }
fi
if [ ! -d "$here/interop/node_modules/playwright-core" ]; then
  (cd "$here/interop" && npm ci --no-audit --no-fund >"$log/npm" 2>&1) || { tail -n 20 "$log/npm"; exit 1; }
fi
page_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server allowed --allow-origin "http://127.0.0.1:$page_port"
allowed=$url
start_server strict
strict=$url
good=$("$bin" mint alice 60)
forged=$(WS_TOKEN_SECRET=other "$bin" mint alice 60)
if timeout 120 node "$here/signed_token_browser.js" "$page_port" "$allowed/chat" "$strict/chat" \
  "$good" "$forged" "$CHROMIUM" >"$log/out" 2>&1; then
  grep -E '^(PASS|FAIL)' "$log/out"
else
  cat "$log/out"
  failed=1
fi
# The browser cannot see the status of a refused handshake; the servers' logs tell it.
grep -q 'refused with 401' "$log/allowed" && echo "PASS chromium: forged token got 401" ||
  { echo "FAIL chromium: forged token got 401"; cat "$log/allowed"; failed=1; }
grep -q 'refused with 403' "$log/strict" && echo "PASS chromium: other origin got 403" ||
  { echo "FAIL chromium: other origin got 403"; cat "$log/strict"; failed=1; }

exit $failed

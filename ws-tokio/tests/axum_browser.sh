#!/usr/bin/env bash
# Chromium against the axum_app example (ws-tokio's axum extractor), on 127.0.0.1: the page
# at `/`, then in it a WebSocket to `/ws` with permessage-deflate, text and binary echoes up
# to 16 MiB and a close with 1000 (tests/interop/axum_browser.js). Twice: over cleartext
# HTTP/1.1, and over TLS (a self-signed certificate made here with openssl; ALPN h2), where
# the server's log tells whether Chromium opened the WebSocket on the page's HTTP/2
# connection (RFC 8441 extended CONNECT) or on an HTTP/1.1 connection of its own.
#
#   bash ws-tokio/tests/axum_browser.sh
#
# Installs what it needs when missing, as tests/interop/run.sh does: Debian's chromium and
# openssl (apt-get) and playwright-core (npm ci in tests/interop). Builds axum_app in debug
# (AXUM_BROWSER_PROFILE=release for release); the checks take about 15 s once it is built.
# Prints one PASS/FAIL line per check and `N passed, M failed`; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
here=ws-tokio/tests
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PROFILE="${AXUM_BROWSER_PROFILE:-debug}"
started=$(date +%s)

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
passed=0
failed=0
record() { # PASS|FAIL name [detail]
  if [ "$1" = PASS ]; then passed=$((passed + 1)); echo "PASS $2"; else failed=$((failed + 1)); echo "FAIL $2${3:+: $3}"; fi
}

need=()
[ -x "$CHROMIUM" ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -f "$here/interop/node_modules/.package-lock.json" ] ||
  [ "$here/interop/package-lock.json" -nt "$here/interop/node_modules/.package-lock.json" ]; then
  (cd "$here/interop" && npm ci --no-audit --no-fund >/dev/null)
fi

flags=()
[ "$PROFILE" = release ] && flags+=(--release)
cargo build -q "${flags[@]}" -p ws-tokio --features axum,rustls --example axum_app || exit 1
bin="${CARGO_TARGET_DIR:-target}/$PROFILE/examples/axum_app"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1 || { echo "FAIL openssl"; exit 1; }

start() { # name, args...: starts axum_app; sets $addr
  local name=$1
  shift
  "$bin" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  addr=""
  for _ in $(seq 100); do
    addr=$(sed -n 's/^LISTENING //p' "$work/$name.log")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "FAIL $name did not start: $(cat "$work/$name.log")"
  return 1
}

run_page() { # label, url, log
  local label=$1 url=$2 log=$3 line
  timeout -k 5 180 node "$here/interop/axum_browser.js" "$url" "$CHROMIUM" >"$work/$label.out" 2>&1
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) record PASS "${line#PASS }" ;;
      "FAIL "*) record FAIL "${line#FAIL }" ;;
      *) echo "     $line" ;;
    esac
  done <"$work/$label.out"
  grep -q '^PASS ' "$work/$label.out" || record FAIL "[$label] browser script ran no check" "$(tail -n 3 "$work/$label.out")"
  sleep 0.5
  echo "     server log: $(grep '^ws ' "$log" | tr '\n' ';')"
  if grep -q '^ws end messages=7 close=1000$' "$log"; then
    record PASS "[$label] server: 7 messages echoed, close 1000 received, no error"
  else
    record FAIL "[$label] server side" "$(grep '^ws ' "$log" | tr '\n' ' ')"
  fi
}

if start plain 127.0.0.1:0; then
  run_page http "http://$addr/" "$work/plain.log"
  if grep -q '^ws open HTTP/1.1 deflate=true$' "$work/plain.log"; then
    record PASS "[http] server: WebSocket over HTTP/1.1 with permessage-deflate"
  else
    record FAIL "[http] server: no HTTP/1.1 upgrade with permessage-deflate"
  fi
fi
if start tls 127.0.0.1:0 --cert "$work/cert.pem" --key "$work/key.pem"; then
  run_page https "https://$addr/" "$work/tls.log"
  if grep -q '^ws open HTTP/2.0 deflate=true$' "$work/tls.log"; then
    record PASS "[https] server: Chromium opened the WebSocket with RFC 8441 extended CONNECT on the page's HTTP/2 connection, permessage-deflate on"
  elif grep -q '^ws open HTTP/1.1 deflate=true$' "$work/tls.log"; then
    record PASS "[https] server: WebSocket over HTTP/1.1 with permessage-deflate (Chromium did not use RFC 8441)"
  else
    record FAIL "[https] server: no WebSocket with permessage-deflate"
  fi
fi

echo
echo "axum browser check: took $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

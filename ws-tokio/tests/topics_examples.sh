#!/usr/bin/env bash
# End-to-end run of the broadcast and hub examples on 127.0.0.1 with Python `websockets`
# clients (topics_examples.py):
#  - broadcast without compression (declined), then with --deflate (permessage-deflate with
#    client_no_context_takeover in every answer, a 10-bit window granted when asked, a 16 KiB
#    text compressed on the wire): 60 clients get every text and binary message once, the
#    senders included, and a burst of 100 in order;
#  - broadcast (1 MiB queues) with a client that never reads: 10 readers get all 400 messages
#    of 16 KiB, and the stuck client is closed with 1008;
#  - hub: SET_NAME, SAY (CHAT_MSG to everyone), the server's CHAT_MSG every tick (300 ms
#    here), ERROR for bad JSON, 1009 past 4 KiB, LEAVE closed with 1000.
#
#   bash ws-tokio/tests/topics_examples.sh
#
# Uses the venv of tests/interop (target/interop-venv, websockets from its requirements.txt),
# made when missing. Prints one PASS/FAIL line per check; exits 1 if anything failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=ws-tokio/tests
venv=target/interop-venv
if ! "$venv/bin/python" -c "import websockets" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/interop/requirements.txt"
fi
py="$venv/bin/python"

cargo build -q -p ws-tokio --example broadcast --example hub
bin=target/debug/examples
log=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$log"' EXIT

start() { # log name, program, args...; sets $url
  local name=$1
  shift
  "$@" >"$log/$name" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening on' "$log/$name" && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$log/$name")
  [ -n "$url" ] || { echo "FAIL $name did not start"; cat "$log/$name"; exit 1; }
}

failed=0
run() { # timeout, args...
  local t=$1
  shift
  timeout "$t" "$py" "$here/topics_examples.py" "$@" || failed=1
}

start plain "$bin/broadcast" 127.0.0.1:0
run 60 broadcast "$url"
start slow "$bin/broadcast" 127.0.0.1:0 --queue-bytes 1048576
run 60 slow "$url"
start deflate "$bin/broadcast" 127.0.0.1:0 --deflate
run 60 broadcast "$url" --deflate
start hub "$bin/hub" 127.0.0.1:0 --tick-ms 300
run 30 hub "$url" 300
exit $failed

#!/usr/bin/env bash
# The conformance runner against implementations that are not ours, cases 1.x-10.x
# (`--no-deflate`: 12.x/13.x are permessage-deflate), with the table counts they get:
#
# - server role, `--server`: tokio-tungstenite 0.30's echo server (benches' bench_server);
# - client role, `--client-cmd`: conformance/external-client.py, on Python `websockets`.
#
# Every count is asserted exactly, except where the suite's verdict depends on timing (see
# below). Takes about 25 s beside the builds. Usage: bash conformance/external-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build -q --release -p conformance --bin conformance
# A debug build is enough for an echo server here (the run takes 7-8 s either way), and it
# reuses what the test step compiled.
cargo build -q -p benches --bin bench_server

# The external client's own environment: Python `websockets`, pinned.
venv=$target/external-client-venv
websockets_version=17.4
if ! "$venv/bin/python" -c "import sys, websockets; sys.exit(websockets.__version__ != '$websockets_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "websockets==$websockets_version"
fi

"$target/debug/bench_server" --impl tungstenite --addr 127.0.0.1:0 --max-secs 600 >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^PORT ' "$work/server.out" && break
  sleep 0.1
done
port=$(sed -n 's/^PORT //p' "$work/server.out")
[ -n "$port" ] || { cat "$work/server.out"; echo "external-check: bench_server did not start"; exit 1; }

fail=0
# The `all` row of ROLE's table in FILE: cases OK NON-STRICT INFORMATIONAL UNIMPLEMENTED FAILED.
totals() { awk -v role="$2" '/^== /{cur=$2} cur==role && $1=="all"{print $2,$3,$4,$5,$6,$7}' "$1"; }
verdict() { # what, wanted, got, ok?
  if [ "$4" = yes ]; then echo "external-check: $1: $3, as wanted"; else
    echo "external-check: $1: got '$3', wanted $2 (cases OK NON-STRICT INFORMATIONAL UNIMPLEMENTED FAILED)"
    fail=1
  fi
}
run() { # name, log, runner arguments...
  local name=$1 log=$2 start=$SECONDS
  shift 2
  if ! "$target/release/conformance" "$@" >"$log" 2>&1; then
    echo "external-check: $name: the runner failed"
    fail=1
  fi
  cat "$log"
  echo "external-check: $name took $((SECONDS - start)) s"
}

run "tokio-tungstenite server" "$work/server.log" \
  --server "ws://127.0.0.1:$port" --agent tokio-tungstenite --no-deflate
got=$(totals "$work/server.log" server)
want="301 296 2 3 0 0"
verdict "tokio-tungstenite server" "'$want'" "$got" "$([ "$got" = "$want" ] && echo yes)"

run "Python websockets client" "$work/client.log" \
  --client-cmd "$venv/bin/python conformance/external-client.py {url} {agent}" \
  --agent python-websockets --no-deflate
got=$(totals "$work/client.log" client)
# websockets reads frames ahead of the application: in 3.2-3.4, 4.1.3-4.1.5 and 4.2.3-4.2.5
# (a message, then a frame it must fail on) it either echoes the message before failing (OK)
# or fails first (NON-STRICT), depending on how the frames arrive. 5.15 and 6.4.1-6.4.4 are
# always NON-STRICT (invalid UTF-8 is caught at the message's end), 7.1.5 always FAILED (close
# code 1002 where 1000 is wanted, for a fragment after a close).
good=no
read -r cases ok non_strict info unimpl failed <<<"$got" || true
if [[ "$got" =~ ^[0-9]+( [0-9]+){5}$ ]] && [ "$cases" = 301 ] && [ "$info" = 3 ] && [ "$unimpl" = 0 ] && [ "$failed" = 1 ] &&
  [ $((ok + non_strict)) = 297 ] && [ "$non_strict" -ge 5 ] && [ "$non_strict" -le 14 ]; then
  good=yes
fi
verdict "Python websockets client" "301 cases, OK + NON-STRICT 297 with NON-STRICT 5-14, 3 INFORMATIONAL, 0 UNIMPLEMENTED, 1 FAILED" "$got" "$good"

if [ "$fail" != 0 ]; then
  echo "external-check: FAILED"
  exit 1
fi
echo "external-check: passed"

#!/usr/bin/env bash
# What the default configuration costs per message, as a new user runs it: ws-tokio's
# `echo_server` example (the serve loop with every default on: keepalive pings, the write
# timeout, the handshake deadline, caps, Origin policy, permessage-deflate offered) against
# the peers' echo servers from the benches (benches/src/server.rs), each on ONE tokio worker
# pinned to CPU 1 (TOKIO_WORKER_THREADS=1 for the example, --workers 1 for the peers), the
# load generator (bench_load, one client thread) pinned to CPU 0.
#
# Cells: 100 connections x 16 B, 100 x 64 KiB and 1000 x 1 KiB, one message in flight per
# connection; the figure is the server's CPU time per echoed message (utime+stime from /proc
# over the window, / round trips). Implementations rotate from round to round; the table
# shows medians and every run.
#
#   bash benches/defaults_cost.sh [ROUNDS] [IMPLS...]   # default 8 rounds;
#                                                       # echo_server fastwebsockets tokio-websockets
#
# Environment: DURATION (seconds per run, default 4), WARMUP (default 1), CELLS (a subset of
# "100x16 100x64k 1000x1k").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-8}
shift || true
IMPLS=("$@")
[ ${#IMPLS[@]} -gt 0 ] || IMPLS=(echo_server fastwebsockets tokio-websockets)
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
read -r -a CELLS <<<"${CELLS:-100x16 100x64k 1000x1k}"
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (server on one, load on the other)" >&2; exit 2; }
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 2; }

cargo build -q --release -p benches --bin bench_server --bin bench_load
cargo build -q --release -p ws-tokio --example echo_server
bin="${CARGO_TARGET_DIR:-target}/release"
out=$(mktemp)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# run IMPL CONNS SIZE: one fresh server on CPU 1, one bench_load run on CPU 0.
run() {
  local imp=$1 conns=$2 size=$3 port pid line
  if [ "$imp" = echo_server ]; then
    # The example prints "listening on ws://ADDR" first; port 0 picks a free one.
    coproc SRV { TOKIO_WORKER_THREADS=1 exec taskset -c 1 "$bin/examples/echo_server" 127.0.0.1:0; }
    pid=$SRV_PID
    read -r line <&"${SRV[0]}"
    port=${line##*:}
  else
    coproc SRV { exec taskset -c 1 "$bin/bench_server" --impl "$imp" --workers 1 --addr 127.0.0.1:0 --max-secs 600; }
    pid=$SRV_PID
    read -r line <&"${SRV[0]}"
    port=${line#PORT }
  fi
  line=$(timeout 300 taskset -c 0 "$bin/bench_load" --addr "127.0.0.1:$port" --server-pid "$pid" \
    --conns "$conns" --size "$size" --duration "$DURATION" --warmup "$WARMUP" | sed -n 1p)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$imp ${conns}x$size $line" | tee -a "$out"
}

n=${#IMPLS[@]}
for r in $(seq 1 "$ROUNDS"); do
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${IMPLS[$(((i + r) % n))]}"); done
  echo "== round $r/$ROUNDS (${order[*]})"
  for cell in "${CELLS[@]}"; do
    for imp in "${order[@]}"; do
      run "$imp" "${cell%x*}" "${cell#*x}"
    done
  done
done

python3 - "$out" "${IMPLS[@]}" <<'EOF'
import re, statistics, sys
path, impls = sys.argv[1], sys.argv[2:]
runs, errors = {}, 0
for line in open(path):
    imp, cell, rest = line.split(' ', 2)
    m = re.search(r'server_cpu/op=([0-9.]+)(ns|us|µs|ms).* errors=([0-9]+)', rest)
    if not m:
        print('unparsed:', line.strip())
        errors += 1
        continue
    errors += int(m.group(3))
    scale = {'ns': 1e-3, 'us': 1, 'µs': 1, 'ms': 1e3}[m.group(2)]
    runs.setdefault(cell, {}).setdefault(imp, []).append(float(m.group(1)) * scale)
print()
print('server CPU per echoed message (µs), median of the rounds (every run in brackets)')
print()
print('| cell | ' + ' | '.join(impls) + ' | first ÷ best other |')
print('|---|' + '---:|' * (len(impls) + 1))
for cell, per in runs.items():
    meds = {i: statistics.median(per[i]) for i in impls if i in per}
    cols = ['%.2f (%s)' % (meds[i], ', '.join('%.2f' % v for v in per[i])) if i in meds else '-' for i in impls]
    others = [meds[i] for i in impls[1:] if i in meds]
    ratio = '%.2fx' % (meds[impls[0]] / min(others)) if impls[0] in meds and others else '-'
    print(f'| {cell} | ' + ' | '.join(cols) + f' | {ratio} |')
if errors:
    print(f'\n{errors} errors or unparsed runs')
    sys.exit(1)
EOF
rm -f "$out"

#!/usr/bin/env bash
# ws-tokio's axum extractor against axum's own (tokio-tungstenite), both behind the same axum
# router and hyper HTTP/1.1 server (benches/src/server.rs, impls axum-ours and
# axum-tungstenite), measured with bench_load against a fresh bench_server per run:
#
#   - echo, 100 connections, one message in flight each: 16 B and 64 KiB binary messages;
#     server CPU per echoed message (utime+stime from /proc over the window, / round trips);
#   - idle memory: server RSS per connection with N connections open (handshake only) and
#     after one 16 B echo on each.
#
# The implementations alternate within each round and the order flips every round (A/B, B/A),
# so a neighbour's load on this shared machine falls on both alike. Prints every run and a
# table of medians.
#
#   bash benches/axum_ab.sh [ROUNDS] [IDLE_CONNS...]     # default: 5 rounds, 2000 and 10000
#
# Environment: DURATION (seconds per echo run, default 4), WARMUP (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
shift || true
IDLE=("$@")
[ ${#IDLE[@]} -gt 0 ] || IDLE=(2000 10000)
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
IMPLS=(axum-ours axum-tungstenite)

cargo build -q --release -p benches --bin bench_server --bin bench_load
bin="${CARGO_TARGET_DIR:-target}/release"
out=$(mktemp)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# run IMPL CELL ARGS...: one fresh server, one bench_load run; appends "IMPL CELL line".
run() {
  local imp=$1 cell=$2 port pid line
  shift 2
  coproc SRV { exec "$bin/bench_server" --impl "$imp" --addr 127.0.0.1:0 --max-secs 600 --exit-on-stdin-eof; }
  pid=$SRV_PID
  read -r line <&"${SRV[0]}"
  port=${line#PORT }
  line=$(timeout 300 "$bin/bench_load" --addr "127.0.0.1:$port" --server-pid "$pid" "$@" | sed -n 1p)
  eval "exec ${SRV[1]}>&-"
  wait "$pid" 2>/dev/null || true
  echo "$imp $cell $line" | tee -a "$out"
}

for r in $(seq 1 "$ROUNDS"); do
  order=("${IMPLS[@]}")
  [ $((r % 2)) -eq 0 ] && order=("${IMPLS[1]}" "${IMPLS[0]}")
  echo "== round $r/$ROUNDS (${order[*]})"
  for imp in "${order[@]}"; do
    run "$imp" "echo-16B" --conns 100 --size 16 --duration "$DURATION" --warmup "$WARMUP"
  done
  for imp in "${order[@]}"; do
    run "$imp" "echo-64KiB" --conns 100 --size 64k --duration "$DURATION" --warmup "$WARMUP"
  done
  for n in "${IDLE[@]}"; do
    for imp in "${order[@]}"; do
      run "$imp" "idle-$n" --mode idle --conns "$n"
    done
  done
done

python3 - "$out" "${IMPLS[@]}" <<'EOF'
import re, statistics, sys
path, impls = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    imp, cell, rest = line.split(' ', 2)
    if cell.startswith('echo'):
        m = re.search(r'^echo: .*-> ([0-9.]+)/s .* server_cpu/op=([0-9.]+)(ns|us|µs|ms)', rest)
        if not m:
            continue
        scale = {'ns': 1e-3, 'us': 1, 'µs': 1, 'ms': 1e3}[m.group(3)]
        runs.setdefault((cell, 'server CPU per echo (µs)'), {}).setdefault(imp, []).append(float(m.group(2)) * scale)
        runs.setdefault((cell, 'echoes/s'), {}).setdefault(imp, []).append(float(m.group(1)))
    else:
        m = re.search(r'([0-9]+) B/conn open, ([0-9]+) B/conn after an echo', rest)
        if not m:
            continue
        runs.setdefault((cell, 'RSS per connection, open (KB)'), {}).setdefault(imp, []).append(int(m.group(1)) / 1000)
        runs.setdefault((cell, 'RSS per connection, after one echo (KB)'), {}).setdefault(imp, []).append(int(m.group(2)) / 1000)
print()
print('| cell | figure | ' + ' | '.join(impls) + ' | ours ÷ axum\'s |')
print('|---|---|' + '---:|' * (len(impls) + 1))
for (cell, fig), per in runs.items():
    meds = [statistics.median(per[i]) if i in per else float('nan') for i in impls]
    spread = ['%.2f (%s)' % (m, ', '.join('%.2f' % v for v in per.get(i, []))) for m, i in zip(meds, impls)]
    print(f'| {cell} | {fig} | ' + ' | '.join(spread) + f' | {meds[0] / meds[1]:.2f} |')
EOF
rm -f "$out"

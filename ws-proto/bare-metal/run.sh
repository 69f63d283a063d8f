#!/usr/bin/env bash
# Builds the bare-metal program (release, thumbv7m-none-eabi) with and without the opening
# handshake, runs both in QEMU's Cortex-M3 board lm3s6965evb with a time limit, and prints
# their sizes: flash and static RAM (llvm-size), ws-proto's symbols (llvm-nm) and, with
# sizes.py, where the flash goes by owner and by ws-proto source file.
#
# Usage: bash ws-proto/bare-metal/run.sh
#   TIME_LIMIT  seconds each QEMU run may take (default 60; a run takes well under 1 s)
#
# Needs qemu-system-arm (Debian: apt-get install qemu-system-arm); adds the rustup target
# thumbv7m-none-eabi and the component llvm-tools when they are missing. Exits non-zero unless
# both runs exit with status 0 and print the success line `bare-metal: N passed, 0 failed`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
limit="${TIME_LIMIT:-60}"
target=thumbv7m-none-eabi

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    echo "run.sh: qemu-system-arm not found (Debian: apt-get install -y qemu-system-arm)" >&2
    exit 2
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
sysroot="$(rustc --print sysroot)"
host="$(rustc -vV | sed -n 's/^host: //p')"
llvm="$sysroot/lib/rustlib/$host/bin"
[ -x "$llvm/llvm-size" ] || rustup component add llvm-tools

mkdir -p target/variants
build() { # VARIANT CARGO-ARGS...: builds and copies the program to target/variants/VARIANT
    local variant="$1"
    shift
    cargo build --release --quiet "$@"
    cp "target/$target/release/ws-proto-bare-metal" "target/variants/$variant"
}
echo "== building (release: opt-level z, lto, codegen-units 1, panic abort)"
build handshake
build no-handshake --no-default-features

failed=0
run() { # VARIANT: runs it in QEMU; checks the exit status and the success line
    local elf="target/variants/$1" log="target/variants/$1.log" status=0
    echo
    echo "== running $1 in QEMU (lm3s6965evb, Cortex-M3)"
    timeout "$limit" qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
        -semihosting-config enable=on,target=native -kernel "$elf" >"$log" 2>&1 || status=$?
    # QEMU prints a line of its own about the board's timer.
    grep -v '^Timer with period zero' "$log" || true
    if [ "$status" -eq 124 ]; then
        echo "run.sh: $1 did not finish within ${limit} s" >&2
        failed=1
    elif [ "$status" -ne 0 ]; then
        echo "run.sh: $1 exited with status $status" >&2
        failed=1
    elif ! grep -Eq '^bare-metal: [0-9]+ passed, 0 failed$' "$log"; then
        echo "run.sh: $1 exited 0 but printed no success line" >&2
        failed=1
    fi
}
run handshake
run no-handshake

sizes() { # VARIANT: flash and static RAM from the section sizes; ws-proto's symbols
    local elf="target/variants/$1"
    echo
    echo "== sizes: $1"
    "$llvm/llvm-size" -A "$elf" | awk '
        $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ { printf "  %-14s %6d\n", $1, $2 }
        END {
            printf "  flash (.vector_table + .text + .rodata + .data): %d bytes (%.1f KiB)\n", flash, flash / 1024
            printf "  static RAM (.data + .bss): %d bytes\n", ram
        }'
    "$llvm/llvm-nm" -S -C --radix=d --defined-only "$elf" | awk '
        NF >= 4 && $3 ~ /^[tTrR]$/ {
            name = $4; for (i = 5; i <= NF; i++) name = name " " $i
            sub(/^</, "", name)
            size = $2 + 0
            if (name ~ /^ws_proto::/) ws += size
            else if (name ~ /^(httparse|sha1|digest|block_buffer|base64|simdutf8)::/) deps += size
        }
        END {
            printf "  symbols named ws_proto::*: %d bytes; httparse, sha1, digest, block_buffer, base64, simdutf8: %d bytes\n", ws, deps
            print "  (symbol sizes miss the ws-proto code inlined into the program: see the breakdown)"
        }'
}
sizes handshake
sizes no-handshake

if command -v python3 >/dev/null 2>&1; then
    echo
    echo "== flash breakdown: handshake (sizes.py)"
    python3 sizes.py target/variants/handshake
    echo
    echo "== flash breakdown: no-handshake (sizes.py --summary)"
    python3 sizes.py target/variants/no-handshake --summary
fi

echo
if [ "$failed" -ne 0 ]; then
    echo "run.sh: FAILED" >&2
    exit 1
fi
echo "run.sh: both variants passed in QEMU"

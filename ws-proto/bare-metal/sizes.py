#!/usr/bin/env python3
"""Where the flash of the bare-metal program goes: ws-proto (by source file), the crates it
uses, the program itself, the runtime, and code they share.

Usage: sizes.py ELF [--summary] [-v]

How bytes are charged:
- .text: every halfword is looked up with llvm-symbolizer, inline chain included, and charged
  to the innermost frame whose source is not in `core`: `core` code inlined into a ws-proto
  function is ws-proto's, and ws-proto code inlined into the program is ws-proto's too.
- A literal-pool word is charged to the instruction that loads it.
- A function left wholly to `core` or compiler-builtins (not inlined: `str::from_utf8`,
  `memcpy`, ...) is charged to its callers when they are all of one owner (ws-proto and its
  dependencies count as one); otherwise it stays "shared".
- .rodata: every address that code refers to (literal words, `movw` immediates) starts a piece
  that runs to the next referred-to address and is charged to the referring code.
Needs llvm-objdump (rustup's llvm-tools) and llvm-symbolizer (Debian's llvm package).
"""

import collections
import re
import shutil
import subprocess
import sys

REGISTRY = re.compile(r"/registry/src/[^/]+/([A-Za-z0-9_-]+?)-\d+\.\d+\.\d+[^/]*/")
WS_PROTO = re.compile(r"/ws-proto/src/(.+\.rs)$")
PROGRAM = re.compile(r"/ws-proto/bare-metal/src/(.+\.rs)$")
STD = re.compile(r"/library/(core|alloc|compiler-builtins)/")

# Crates that are in the image only because ws-proto uses them.
DEPS = {"httparse", "sha1", "digest", "block-buffer", "base64", "simdutf8", "generic-array",
        "crypto-common", "typenum", "cpufeatures"}
RUNTIME = {"cortex-m-rt", "cortex-m-semihosting", "critical-section"}
SHARED = "shared (core, compiler-builtins)"
WS = ("ws-proto", "ws-proto deps")


def tool(name):
    """`name` from rustup's llvm-tools, else from PATH (also as Debian's `name-14`)."""
    sysroot = run(["rustc", "--print", "sysroot"]).strip()
    host = re.search(r"host: (\S+)", run(["rustc", "-vV"])).group(1)
    for c in (f"{sysroot}/lib/rustlib/{host}/bin/{name}", name, f"{name}-14"):
        if shutil.which(c):
            return c
    return None


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def by_path(path):
    """(owner, detail) for a source path, or None for `core` (charged further out)."""
    m = WS_PROTO.search(path)
    if m:
        return ("ws-proto", m.group(1))
    m = REGISTRY.search(path)
    if m:
        crate = m.group(1)
        if crate in DEPS:
            return ("ws-proto deps", crate)
        return ("runtime" if crate in RUNTIME else "other", crate)
    m = PROGRAM.search(path)
    if m:
        return ("program", m.group(1))
    m = STD.search(path)
    if m:
        return (SHARED, "compiler-builtins") if m.group(1) == "compiler-builtins" else None
    return None


def by_name(symbol):
    """(owner, detail) from a demangled symbol name, for code without usable line info."""
    s = short(symbol).lstrip("<")
    for prefix, owner in [("ws_proto_bare_metal::", ("program", "(by symbol)")),
                          ("ws_proto::", ("ws-proto", "(by symbol)")),
                          ("httparse::", ("ws-proto deps", "httparse")),
                          ("sha1::", ("ws-proto deps", "sha1")),
                          ("base64::", ("ws-proto deps", "base64")),
                          ("cortex_m_semihosting::", ("runtime", "cortex-m-semihosting")),
                          ("compiler_builtins::", (SHARED, "compiler-builtins"))]:
        if s.startswith(prefix):
            return owner
    if re.match(r"(Reset|__stext|DefaultHandler|HardFault|DefaultPreInit|__pre_init|main$)", s):
        return ("runtime", "cortex-m-rt")
    if "rust_begin_unwind" in s:
        return ("program", "main.rs (panic handler)")
    if re.match(r"(__aeabi|mem|__u?div|__mul|__lsl|__lsr)", s):
        return (SHARED, "compiler-builtins")
    return (SHARED, "core")


def short(name):
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    for a, b in [("_$LT$", "<"), ("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"),
                 ("$u5b$", "["), ("$u5d$", "]"), ("$u3b$", ";"), ("$C$", ","), ("..", "::")]:
        name = name.replace(a, b)
    return name


def main():
    elf = sys.argv[1]
    verbose = "-v" in sys.argv[2:]
    summary = "--summary" in sys.argv[2:]
    objdump, symbolizer = tool("llvm-objdump"), tool("llvm-symbolizer")
    if not objdump or not symbolizer:
        print("sizes.py: the breakdown needs llvm-objdump and llvm-symbolizer")
        return 0

    sections = {}
    for line in run([objdump, "-h", elf]).splitlines():
        f = line.split()
        if len(f) >= 4 and f[1].startswith("."):
            sections[f[1]] = (int(f[3], 16), int(f[2], 16))
    text_start, text_size = sections[".text"]
    ro_start, ro_size = sections.get(".rodata", (0, 0))
    text_end = text_start + text_size

    funcs = []  # (start, demangled name)
    words = {}  # address of a literal word -> its value
    loads = {}  # address of a literal word -> address of the instruction loading it
    refs = []  # (address of an instruction, rodata address it names)
    calls = []  # (address of a call or branch, its target)
    for line in run([objdump, "-d", "-C", "--no-show-raw-insn", elf]).splitlines():
        m = re.match(r"^([0-9a-f]+) <(.+)>:$", line)
        if m:
            funcs.append((int(m.group(1), 16), m.group(2)))
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*\.word\s+0x([0-9a-f]+)", line)
        if m:
            words[int(m.group(1), 16)] = int(m.group(2), 16)
            continue
        m = re.match(r"^\s+([0-9a-f]+):.*\[pc, #[^]]*\].*@ 0x([0-9a-f]+)", line)
        if m:
            loads.setdefault(int(m.group(2), 16), int(m.group(1), 16))
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+movw\s+\w+, #0x([0-9a-f]+)", line)
        if m:  # below 64 KiB an address fits in one `movw`
            refs.append((int(m.group(1), 16), int(m.group(2), 16)))
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+b(?:l|\.w)?\s+0x([0-9a-f]+)", line)
        if m:
            calls.append((int(m.group(1), 16), int(m.group(2), 16)))
    funcs.sort()
    ends = [s for s, _ in funcs[1:]] + [text_end]
    spans = [(s, e, n) for (s, n), e in zip(funcs, ends) if text_start <= s < text_end]

    # Every halfword of .text, through its inline chain.
    addrs = list(range(text_start, text_end, 2))
    out = run([symbolizer, f"--obj={elf}", "--inlining", "--functions=linkage", "-C"],
              "".join(f"0x{a:x}\n" for a in addrs))
    owner = {}
    fn_of = {}  # halfword -> the ws-proto function it is charged to
    span_i = 0
    for a, block in zip(addrs, out.split("\n\n")):
        while span_i + 1 < len(spans) and spans[span_i + 1][0] <= a:
            span_i += 1
        symbol = spans[span_i][2]
        lines = block.strip().splitlines()
        frames = list(zip(lines[0::2], lines[1::2]))
        got = None
        for fn, loc in frames:
            got = by_path(loc.rsplit(":", 2)[0])
            if got:
                fn_of[a] = short(fn)
                break
        # A lookup that lands in a compiler-builtins unit inside a function that is not one
        # comes from line tables of discarded sections: go by the symbol instead.
        if not got or (got[1] == "compiler-builtins" and by_name(symbol)[0] != SHARED):
            got = by_name(symbol)
            fn_of[a] = short(symbol)
        owner[a] = got

    for w, v in words.items():  # a literal word is its loader's
        if w in loads and loads[w] in owner:
            for a in (w, w + 2):
                if a in owner:
                    owner[a] = owner[loads[w]]
                    fn_of[a] = fn_of.get(loads[w], "")
        refs.append((loads.get(w, w), v))

    # Shared functions used by one owner only are that owner's (to a fixed point: memcpy is
    # reached through __aeabi_memcpy).
    changed = True
    while changed:
        changed = False
        callers = collections.defaultdict(set)
        for a, target in calls:
            if a in owner:
                callers[target].add(owner[a][0])
        for start, end, name in spans:
            if any(owner[a][0] != SHARED for a in range(start, end, 2)):
                continue
            who = callers.get(start, set()) - {SHARED}
            if not who or SHARED in callers.get(start, set()):
                continue
            if who <= set(WS):
                g = "ws-proto" if "ws-proto" in who else "ws-proto deps"
            elif len(who) == 1:
                g = next(iter(who))
            else:
                continue
            label = short(name) if end - start >= 100 else "small helpers"
            for a in range(start, end, 2):
                owner[a] = (g, "core: " + label)
                fn_of[a] = short(name)
            changed = True

    text = collections.Counter()
    for a, o in owner.items():
        text[o] += 2
    ro = collections.Counter()
    points = {}
    for a, v in sorted(refs):
        if ro_start <= v < ro_start + ro_size and a in owner:
            points.setdefault(v, owner[a])
    starts = sorted(points)
    ro[("unreferenced", "")] += (starts[0] if starts else ro_start + ro_size) - ro_start
    for i, v in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else ro_start + ro_size
        ro[points[v]] += end - v
        if verbose:
            print(f"  .rodata 0x{v:x} +{end - v} {points[v]}")

    vt = sections.get(".vector_table", (0, 0))[1]
    data = sections.get(".data", (0, 0))[1]
    text[("runtime", "vector table")] += vt
    if data:
        text[("program", ".data initial values")] += data
    total = vt + text_size + ro_size + data
    per_owner = collections.Counter()
    for (g, _), n in (text + ro).items():
        per_owner[g] += n

    print(f"flash {total} bytes (.vector_table {vt}, .text {text_size}, .rodata {ro_size},"
          f" .data {data}), by owner:")
    for g, n in per_owner.most_common():
        t = sum(v for (gg, _), v in text.items() if gg == g)
        print(f"  {g:34} {n:6}  (code {t}, constants {n - t})")
    ws = per_owner["ws-proto"] + per_owner["ws-proto deps"]
    print(f"  {'=> ws-proto with its dependencies':34} {ws:6}"
          f"  ({ws / 1024:.1f} KiB; plus its part of the {per_owner[SHARED]} shared bytes)")
    if summary:
        return 0
    print("ws-proto and its dependencies, by source:")
    detail = text + ro
    for (g, d), n in detail.most_common():
        if g in WS:
            print(f"  {d:42} {n:6}  (constants {ro[(g, d)]})")
    print("shared code (called by ws-proto and the program):")
    shared = collections.Counter()
    for start, end, name in spans:
        n = sum(2 for a in range(start, end, 2) if owner[a][0] == SHARED)
        if n:
            shared[short(name)] += n
    for f, n in shared.most_common(12):
        print(f"  {n:6}  {f}")
    print("largest ws-proto functions (code, with what is inlined into them):")
    fns = collections.Counter()
    for a, o in owner.items():
        if o[0] in WS:
            fns[fn_of.get(a, "?")] += 2
    for f, n in fns.most_common(25 if verbose else 15):
        print(f"  {n:6}  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

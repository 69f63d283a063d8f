"""Checks on the interop_server's log (see examples/interop_server.rs for its format).

usage: logcheck.py LOG CHECK ARGS...   prints PASS/FAIL lines; exits 1 if any failed.

  keepalive PATH MIN_PONGS       the connection on PATH got at least MIN_PONGS pongs
  reject PATH STATUS             a request for PATH was rejected with STATUS
  ended PATH WHAT                the connection on PATH ended with `end WHAT` (e.g. clean,
                                 error=PeerVanished)
  all-clean [EXCEPT_PATH...]     every accepted connection (but those on EXCEPT_PATHs) ended
                                 with `end clean`
  browser PATH                   what the Chromium page sent, as the server saw it, and that
                                 permessage-deflate was agreed and used
  negotiated EXPECTED            every accepted connection was answered with this
                                 Sec-WebSocket-Extensions value (compared as a set of
                                 parameters; `none`: no extension agreed)
  compressed-in PATH LEN FACTOR  the first data message of LEN bytes on PATH took fewer than
                                 LEN/FACTOR bytes on the wire (the peer compressed it and we
                                 inflated it): wire_in at its recv line less wire_in at the
                                 previous data message (or the accept line)
  dead-peer PATH PING_MS PONG_MS JSON
                                 the server failed the connection on PATH with Timeout(Pong)
                                 within PONG_MS + PING_MS + 1 s of the peer going silent
                                 (JSON: dead_peer.py's output)
"""

import json
import re
import sys

LINE = re.compile(r"^(\d+) conn=(\d+) (\S+)(.*)$")
failed = 0


def report(name, err):
    global failed
    if err is None:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {err}", flush=True)


def load(path):
    conns = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            ts, cid, kind, rest = int(m[1]), int(m[2]), m[3], m[4].strip()
            c = conns.setdefault(cid, {"id": cid, "path": None, "accepted": False, "events": []})
            pm = re.search(r'path="([^"]*)"', rest)
            if pm and kind in ("accept", "reject", "handshake-failed"):
                c["path"] = pm[1]
            if kind == "accept":
                c["accepted"] = True
                c["accept_at"] = ts
                c["accept"] = rest
            c["events"].append((ts, kind, rest))
    return conns


def on_path(conns, path):
    return [c for c in conns.values() if c["path"] == path]


def end_of(c):
    ends = [(ts, rest) for ts, kind, rest in c["events"] if kind == "end"]
    return ends[-1] if ends else None


def ext_key(value):
    """An extension header value as (name, sorted parameters), for comparison."""
    if value in (None, "", "-", "none"):
        return None
    parts = ["=".join(x.strip().strip('"').lower() for x in p.split("=")) for p in value.split(";")]
    return parts[0], sorted(parts[1:])


def negotiated_of(c):
    """The Sec-WebSocket-Extensions value our server sent (None: none)."""
    m = re.search(r'negotiated=(-|"((?:[^"\\]|\\.)*)")', c.get("accept", ""))
    if not m or m[1] == "-":
        return None
    return m[2]


def wire_in(rest):
    m = re.search(r"wire_in=(\d+)", rest)
    return int(m[1]) if m else None


def compressed_in(c, length, factor):
    """(error, detail) for the first data message of `length` bytes on connection c."""
    prev = wire_in(c.get("accept", ""))
    for _, kind, rest in c["events"]:
        if kind != "recv":
            continue
        m = re.match(r"(text|binary) len=(\d+)", rest)
        if not m:
            continue
        now = wire_in(rest)
        if int(m[2]) == length:
            if prev is None or now is None:
                return "no wire_in counters in the log", None
            took = now - prev
            detail = f"{length} bytes took {took} bytes on the wire ({took * 100 / length:.2f}%)"
            return (None if took < length // factor else detail), detail
        prev = now
    return f"no data message of {length} bytes received", None


def one(conns, path):
    cs = on_path(conns, path)
    if len(cs) != 1:
        return None, f"{len(cs)} connections on {path} in the log"
    return cs[0], None


def main():
    log, check, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    conns = load(log)
    if check == "keepalive":
        path, need = args[0], int(args[1])
        c, err = one(conns, path)
        if c:
            pongs = sum(1 for _, k, rest in c["events"] if k == "recv" and rest.startswith("pong"))
            err = None if pongs >= need else f"{pongs} pongs (want >= {need})"
        report(f"server log: the peer answered our keepalive pings on {path}", err)
    elif check == "reject":
        path, status = args[0], args[1]
        cs = [c for c in on_path(conns, path) if any(k == "reject" for _, k, _ in c["events"])]
        ok = any(f"status={status}" in rest for c in cs for _, k, rest in c["events"] if k == "reject")
        report(f"server log: {path} rejected with {status}", None if ok else "no such reject line")
    elif check == "ended":
        path, what = args[0], args[1]
        c, err = one(conns, path)
        if c:
            e = end_of(c)
            err = None if e and e[1].startswith(what) else f"ended with {e[1] if e else 'nothing'}"
        report(f"server log: the connection on {path} ended with `{what}`", err)
    elif check == "all-clean":
        except_paths = set(args)
        accepted = [c for c in conns.values() if c["accepted"] and c["path"] not in except_paths]
        bad = []
        for c in accepted:
            e = end_of(c)
            if not e or not e[1].startswith("clean"):
                bad.append(f"conn {c['id']} {c['path']}: {e[1] if e else 'no end line'}")
        err = None if accepted and not bad else (f"{len(bad)} of {len(accepted)}: {bad[:5]}" if bad else "no connections")
        but = f" (but those on {', '.join(sorted(except_paths))})" if except_paths else ""
        report(f"server log: all {len(accepted)} accepted connections{but} ended with a clean close handshake", err)
    elif check == "negotiated":
        want = args[0]
        accepted = [c for c in conns.values() if c["accepted"]]
        bad = [
            f"conn {c['id']} {c['path']}: {negotiated_of(c) or '(none)'}"
            for c in accepted
            if ext_key(negotiated_of(c)) != ext_key(want)
        ]
        err = None if accepted and not bad else (f"{len(bad)} of {len(accepted)}: {bad[:3]}" if bad else "no connections")
        report(f"server log: all {len(accepted)} accepted connections answered with Sec-WebSocket-Extensions {want!r}", err)
    elif check == "compressed-in":
        path, length, factor = args[0], int(args[1]), int(args[2])
        c, err = one(conns, path)
        detail = None
        if c:
            err, detail = compressed_in(c, length, factor)
        if detail:
            print(f"  ({path}: {detail})", flush=True)
        report(f"server log: the {length}-byte message on {path} came in compressed (< 1/{factor} on the wire)", err)
    elif check == "browser":
        path = args[0]
        c, err = one(conns, path)
        if not c:
            report("server log: chromium connected", err)
        else:
            recv = [rest for _, k, rest in c["events"] if k == "recv"]
            report(
                "server log: chromium offered permessage-deflate, we chose subprotocol chat",
                None
                if "permessage-deflate" in c["accept"] and "protocol=chat " in c["accept"]
                else c["accept"],
            )
            got = negotiated_of(c)
            report(
                "server log: we answered chromium with Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover",
                None
                if ext_key(got) == ext_key("permessage-deflate; client_no_context_takeover")
                else f"negotiated {got or '(none)'}",
            )
            err, detail = compressed_in(c, 1 << 20, 5)
            if detail:
                print(f"  (chromium's 1 MiB text: {detail})", flush=True)
            report("server log: chromium's 1 MiB text came in compressed (< 1/5 on the wire)", err)
            for want, name in [
                ('text len=23 text="hello from chromium ✓"', "text"),
                ("binary len=256 ", "binary 256 B"),
                ("binary len=65536 ", "binary 64 KiB"),
                ("text len=1048576 ", "text 1 MiB JSON"),
                ("binary len=262144 ", "binary 256 KiB random"),
                ('close code=1000 reason="browser done"', "close 1000"),
            ]:
                ok = any(r.startswith(want) for r in recv)
                report(f"server log: received chromium's {name}", None if ok else f"not in {recv}")
            e = end_of(c)
            report(
                "server log: chromium's connection ended cleanly",
                None if e and e[1].startswith("clean") else f"{e}",
            )
    elif check == "dead-peer":
        path, ping_ms, pong_ms, jpath = args[0], int(args[1]), int(args[2]), args[3]
        name = f"dead peer on {path} detected by Timeout(Pong) within pong_timeout + ping_interval + 1 s"
        with open(jpath, encoding="utf-8") as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        peer = json.loads(lines[-1]) if lines else {}
        c, err = one(conns, path)
        if c and "silent_since" not in peer:
            err = f"dead_peer.py output: {peer}"
        if c and not err:
            e = end_of(c)
            if not e or "Timeout(Pong)" not in e[1]:
                err = f"ended with {e[1] if e else 'nothing (still open)'}"
            else:
                # The last thing the server heard from the peer: its "alive" message.
                heard = max(ts for ts, k, rest in c["events"] if k == "recv")
                took = e[0] - heard
                limit = pong_ms + ping_ms + 1000
                print(
                    f"  (peer silent since {peer['silent_since']}, server last heard it at {heard}, "
                    f"Timeout(Pong) logged {took} ms later; limit {limit} ms; the peer saw "
                    f"{len(peer['pings'])} pings, close {peer['close']}, eof at {peer['eof_at']})",
                    flush=True,
                )
                if took > limit:
                    err = f"took {took} ms (limit {limit} ms)"
                elif took < pong_ms:
                    err = f"took {took} ms, less than pong_timeout {pong_ms} ms"
                elif not peer["pings"]:
                    err = "the peer saw no ping"
        report(name, err)
    else:
        report(f"logcheck {check}", "unknown check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Python `websockets` client against the ws-tokio interop_server.

usage: py_client.py ws://127.0.0.1:PORT [--close-codes all|sample]
                    [--deflate off|on|window10] [--expect-ext VALUE|none] [--random-size N]

Prints one `PASS name` / `FAIL name: detail` line per check; exits 1 if any failed.
The server must run with `--protocols chat,superchat` and a short `--ping-interval-ms`.

--deflate: `off` (the default) offers no compression; `on` is websockets' default offer
(`permessage-deflate; client_max_window_bits`); `window10` also asks the server for
`server_max_window_bits=10`. --expect-ext: every connection must get this
Sec-WebSocket-Extensions response (compared as a set of parameters; `none`: no header). With
compression on, compression checks run too (the size of the server's echoes on the wire is
measured; websockets compresses every data frame, fragments included), the last one with
random binary of --random-size bytes (default 16 MiB).
"""

import asyncio
import os
import sys

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

STEP = 30  # seconds per check
failed = 0
DEFLATE = "off"
EXPECT_EXT = None  # None: not checked; "": no extension; else the expected header value


def report(name, err):
    global failed
    if err is None:
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {err}", flush=True)


def pattern(n):
    return bytes(i % 251 for i in range(n))


def describe(m):
    if isinstance(m, str):
        return f"text {m[:40]!r}" if len(m) <= 40 else f"text of {len(m)} chars"
    return f"binary of {len(m)} bytes"


class Counting(ClientConnection):
    """Counts the bytes received from the server (compressed frames included)."""

    wire_in = 0

    def data_received(self, data):
        self.wire_in += len(data)
        super().data_received(data)


def ext_key(value):
    """An extension header value as (name, sorted parameters), for comparison."""
    parts = [
        "=".join(x.strip().strip('"').lower() for x in p.split("=")) for p in value.split(";")
    ]
    return parts[0], sorted(parts[1:])


def response_ext(ws):
    values = ws.response.headers.get_all("Sec-WebSocket-Extensions")
    return ", ".join(v.strip() for v in values) if values else ""


def ext_param(ws, name):
    for p in response_ext(ws).split(";")[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == name:
            return v.strip().strip('"')
    return None


def deflate_options():
    if DEFLATE == "off":
        return {"compression": None}
    if DEFLATE == "on":
        return {"compression": "deflate"}
    if DEFLATE == "window10":
        factory = ClientPerMessageDeflateFactory(
            server_max_window_bits=10, compress_settings={"memLevel": 5}
        )
        return {"compression": None, "extensions": [factory]}
    raise SystemExit(f"unknown --deflate {DEFLATE!r}")


class conn:
    """`connect` with our settings; on open, checks the negotiated extensions (--expect-ext)."""

    def __init__(self, url, **kw):
        for k, v in deflate_options().items():
            kw.setdefault(k, v)
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("close_timeout", 10)
        kw.setdefault("create_connection", Counting)
        self.url = url
        self.cm = connect(url, **kw)

    async def __aenter__(self):
        ws = await self.cm.__aenter__()
        if EXPECT_EXT is not None:
            got = response_ext(ws)
            same = ext_key(got) == ext_key(EXPECT_EXT) if got and EXPECT_EXT else got == EXPECT_EXT
            if not same:
                await self.cm.__aexit__(None, None, None)
                raise AssertionError(
                    f"{self.url}: Sec-WebSocket-Extensions {got or '(none)'!r}, "
                    f"expected {EXPECT_EXT or '(none)'!r}"
                )
        return ws

    async def __aexit__(self, *exc):
        return await self.cm.__aexit__(*exc)


async def check(name, coro):
    try:
        err = await asyncio.wait_for(coro, STEP)
    except asyncio.TimeoutError:
        err = f"timed out after {STEP} s"
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        err = f"{type(e).__name__}: {e}"
    report(name, err)
    return err is None


async def expect_echo(ws, msg, want=None):
    await ws.send(msg)
    got = await ws.recv()
    want = msg if want is None else want
    if got != want:
        return f"sent {describe(want)}, got {describe(got)}"
    return None


async def close_normally(ws):
    await ws.close(1000, "done")
    if ws.protocol.close_rcvd is None or ws.protocol.close_rcvd.code != 1000:
        return f"close echo: {ws.protocol.close_rcvd}"
    return None


async def echo_checks(base):
    async with conn(base + "/echo-py") as ws:
        cases = [
            ("text hello", "hello"),
            ("text unicode", "héllo wörld ✓ 😀 — ünïcödé"),
            ("text 0 B", ""),
            ("text 64 KiB", "x" * 65536),
            ("binary 0 B", b""),
            ("binary 125 B", pattern(125)),
            ("binary 126 B", pattern(126)),
            ("binary 64 KiB", pattern(65536)),
            ("binary 16 MiB", pattern(16 << 20)),
        ]
        for name, msg in cases:
            if not await check(f"echo {name}", expect_echo(ws, msg)):
                return
        await check("echo: close 1000", close_normally(ws))


async def fragment_checks(base):
    async with conn(base + "/fragments-py") as ws:
        await check(
            "fragmented text (3 str fragments)",
            expect_echo(ws, ["héllo ", "wörld ✓ ", "😀"], "héllo wörld ✓ 😀"),
        )
        data = pattern(200_000)
        chunks = [data[i : i + 25_000] for i in range(0, len(data), 25_000)]
        await check("fragmented binary (8 x 25000 B)", expect_echo(ws, chunks, data))
        one = pattern(1000)
        await check(
            "fragmented binary (1000 x 1 B)",
            expect_echo(ws, [one[i : i + 1] for i in range(1000)], one),
        )
        await check("fragmented binary (empty fragments)", expect_echo(ws, [b"", b"", b""], b""))

        async def with_ping():
            # A control frame between the fragments of one message.
            yield "first fragment, "
            pong = await ws.ping(b"between-fragments")
            yield "second fragment, "
            yield "third ✓"
            with_ping.pong = pong

        async def run_interleaved():
            err = await expect_echo(ws, with_ping(), "first fragment, second fragment, third ✓")
            if err:
                return err
            await asyncio.wait_for(with_ping.pong, 5)
            return None

        await check("fragmented text with a ping between fragments", run_interleaved())
        await check("fragments: close 1000", close_normally(ws))


async def ping_checks(base):
    async with conn(base + "/ping-py") as ws:

        async def ping():
            waiter = await ws.ping(b"py-ping-1")
            await asyncio.wait_for(waiter, 5)
            return None

        await check("our ping gets the server's pong", ping())
        await check("ping: close 1000", close_normally(ws))

    async def keepalive():
        # The server pings every few hundred ms; websockets answers them. run.sh checks the
        # server's log for the pongs of this connection.
        async with conn(base + "/keepalive-py") as ws:
            await asyncio.sleep(1.5)
            return await expect_echo(ws, "still here") or await close_normally(ws)

    await check("keepalive connection (server pings, we pong) stays usable", keepalive())


async def close_code_checks(base, all_codes):
    codes = list(range(1000, 1004)) + list(range(1007, 1015))
    codes += list(range(3000, 5000)) if all_codes else [3000, 3001, 3999, 4000, 4001, 4999]
    sem = asyncio.Semaphore(16)
    failures = []

    async def one(code):
        async with sem:
            try:
                async with conn(base + "/close-py") as ws:
                    reason = f"closing with {code} ✓"
                    await ws.close(code, reason)
                    rcvd = ws.protocol.close_rcvd
                    if rcvd is None or rcvd.code != code:
                        failures.append((code, f"echo was {rcvd}"))
            except Exception as e:  # noqa: BLE001
                failures.append((code, f"{type(e).__name__}: {e}"))

    async def server_closes_after_idle():
        # The server waits 6 s without reading, then closes (runs alongside the sweep).
        async with conn(base + "/close-after/6000/4003") as ws:
            try:
                m = await ws.recv()
                return f"expected a close, got {describe(m)}"
            except ConnectionClosed:
                pass
            rcvd = ws.protocol.close_rcvd
            if rcvd is None or rcvd.code != 4003:
                return f"expected close 4003, got {rcvd}"
        return None

    idle = asyncio.ensure_future(check("server closes (4003) after 6 s idle, we see it and echo", server_closes_after_idle()))

    async def run():
        await asyncio.gather(*(one(c) for c in codes))
        if failures:
            failures.sort()
            return f"{len(failures)} of {len(codes)} failed; first: {failures[:5]}"
        return None

    await check(f"close with each of {len(codes)} codes + reason, server echoes the code", run())
    await idle

    async def server_closes():
        async with conn(base + "/close-me/4001") as ws:
            try:
                m = await ws.recv()
                return f"expected a close, got {describe(m)}"
            except ConnectionClosed:
                pass
            rcvd = ws.protocol.close_rcvd
            if rcvd is None or (rcvd.code, rcvd.reason) != (4001, "server says bye"):
                return f"expected close 4001 'server says bye', got {rcvd}"
            sent = ws.protocol.close_sent
            if sent is None or sent.code != 4001:
                return f"our echo was {sent}"
        return None

    await check("server closes with 4001 + reason, we see it and echo", server_closes())


async def subprotocol_checks(base):
    async def offer(offered, want):
        async with conn(base + "/subprotocol-py", subprotocols=offered) as ws:
            if ws.subprotocol != want:
                return f"offered {offered}, got {ws.subprotocol!r}"
            return await close_normally(ws)

    await check("subprotocol: offer chat, get chat", offer(["chat"], "chat"))
    await check(
        "subprotocol: offer superchat,chat, get superchat (first offered)",
        offer(["superchat", "chat"], "superchat"),
    )
    await check("subprotocol: offer nonesuch, get none", offer(["nonesuch"], None))


async def reject_check(base):
    async def run():
        try:
            async with conn(base + "/reject"):
                return "connected, expected a 403"
        except InvalidStatus as e:
            r = e.response
            if r.status_code != 403:
                return f"status {r.status_code}"
            if r.body != b"rejected by interop_server\n":
                return f"body {r.body!r}"
            return None

    await check("/reject is refused with 403 and its body", run())


def random_bytes(n):
    return os.urandom(n)


def json_text(n):
    """About n bytes of JSON: an array of similar records (highly compressible)."""
    parts, size, i = [], 2, 0
    while size < n:
        rec = (
            f'{{"id":{i},"name":"user-{i}","email":"user{i}@example.com","active":true,'
            f'"tags":["alpha","beta"],"score":{i % 97}}},'
        )
        parts.append(rec)
        size += len(rec)
        i += 1
    return ("[" + "".join(parts))[: n - 1] + "]"


def far_repeats(n):
    """A random 5000-byte block repeated: only a window of 8 KiB or more can shrink it."""
    block = os.urandom(5000)
    return (block * (n // 5000 + 1))[:n]


def wire_check(len_, took, rule):
    kind, arg = rule
    if kind == "below":
        ok = took < len_ // arg
    else:  # "about": not shrunk (at least 90% of the size)
        ok = took >= len_ * 9 // 10
    return None if ok else f"{took} bytes on the wire for {len_} bytes ({took * 100 / max(len_, 1):.2f}%)"


def describe_rule(rule):
    kind, arg = rule
    return f"fewer than 1/{arg} of its size" if kind == "below" else "at least 90% of its size (not shrunk)"


async def deflate_checks(base, random_size):
    async with conn(base + "/deflate-py") as ws:
        got = response_ext(ws)
        report(
            f"permessage-deflate agreed: the server answered {got or '(none)'!r}",
            None if got and ext_key(got)[0] == "permessage-deflate" else "no permessage-deflate",
        )
        report(
            "websockets enabled its PerMessageDeflate extension",
            None if any(e.name == "permessage-deflate" for e in ws.protocol.extensions) else f"{ws.protocol.extensions}",
        )
        bits = int(ext_param(ws, "server_max_window_bits") or 15)
        # The server's window, less zlib's 262-byte lookahead margin, against a 5000-byte gap.
        far = ("below", 10) if (1 << bits) - 262 > 5000 else ("about", None)
        big = 16 << 20
        cases = [
            ("text 0 B", "", None),
            ("text 125 B", ("a short text message, compressible: " * 4)[:125], None),
            ("text 64 KiB JSON", json_text(64 << 10), ("below", 4)),
            ("binary 0 B", b"", None),
            ("binary 125 B random", random_bytes(125), None),
            ("binary 64 KiB random", random_bytes(64 << 10), None),
            ("text 16 MiB JSON (highly compressible)", json_text(big), ("below", 5)),
            ("binary 16 MiB pattern (compressible)", pattern(big), ("below", 2)),
            (
                f"binary 1 MiB of a 5000-byte random block repeated (server window {bits} bits: "
                + ("must shrink)" if far[0] == "below" else "must not shrink)"),
                far_repeats(1 << 20),
                far,
            ),
        ]
        for name, msg, rule in cases:
            before = ws.wire_in
            if not await check(f"deflate echo {name}", expect_echo(ws, msg)):
                return
            took = ws.wire_in - before
            print(f"  ({name}: {len(msg)} bytes; the server's echo took {took} bytes on the wire)", flush=True)
            if rule:
                report(
                    f"deflate wire: the server's echo of {name} came in {describe_rule(rule)}",
                    wire_check(len(msg), took, rule),
                )
        data = json_text(4 << 20).encode()
        chunks = [data[i : i + 300_000] for i in range(0, len(data), 300_000)]
        await check(
            f"deflate: fragmented text, 4 MiB JSON in {len(chunks)} compressed fragments",
            expect_echo(ws, [c.decode() for c in chunks], data.decode()),
        )
        one = random_bytes(3000)
        await check(
            "deflate: fragmented binary, 3000 x 1 B random, each fragment compressed",
            expect_echo(ws, [one[i : i + 1] for i in range(3000)], one),
        )

        async def close_4000():
            await ws.close(4000, "compressed connection done ✓")
            rcvd = ws.protocol.close_rcvd
            if rcvd is None or rcvd.code != 4000:
                return f"close echo: {rcvd}"
            return None

        await check("deflate: close 4000 + reason, the server echoes it", close_4000())

    # Last, on its own connection: deflate makes incompressible data a little longer, so the
    # compressed frame is larger than the message.
    async def random_echo():
        # Not `async with`: closing a connection the server has failed raises AttributeError
        # inside websockets (17.4), which would hide the close code.
        ws = await conn(base + "/deflate-random-py").__aenter__()
        msg = random_bytes(random_size)
        before = ws.wire_in
        try:
            err = await expect_echo(ws, msg)
        except ConnectionClosed as e:
            return f"sent {describe(msg)} (compressed by websockets), the connection closed: {e}"
        if err:
            ws.transport.abort()
            return err
        print(f"  (binary {random_size} B random: the server's echo took {ws.wire_in - before} bytes on the wire)", flush=True)
        return await close_normally(ws)

    await check(f"deflate echo binary {random_size} B random (incompressible), own connection", random_echo())


async def main():
    global DEFLATE, EXPECT_EXT, STEP
    args = sys.argv[1:]
    base = args[0].rstrip("/")
    all_codes = not ("--close-codes" in args and args[args.index("--close-codes") + 1] == "sample")
    if "--deflate" in args:
        DEFLATE = args[args.index("--deflate") + 1]
    if "--expect-ext" in args:
        v = args[args.index("--expect-ext") + 1]
        EXPECT_EXT = "" if v == "none" else v
    if DEFLATE != "off":
        STEP = 120  # compressing 16 MiB takes a while in a debug build of the server
    random_size = 16 << 20
    if "--random-size" in args:
        random_size = int(args[args.index("--random-size") + 1])
    await echo_checks(base)
    if DEFLATE != "off":
        await deflate_checks(base, random_size)
    await fragment_checks(base)
    await ping_checks(base)
    await subprotocol_checks(base)
    await reject_check(base)
    await close_code_checks(base, all_codes)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001
        report("python client run", f"{type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)

"""Python `websockets` client against the ws-tokio interop_server.

usage: py_client.py ws://127.0.0.1:PORT [--close-codes all|sample]

Prints one `PASS name` / `FAIL name: detail` line per check; exits 1 if any failed.
The server must run with `--protocols chat,superchat` and a short `--ping-interval-ms`.
"""

import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

STEP = 30  # seconds per check
failed = 0


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


def conn(url, **kw):
    # Compression off: ws-tokio does not implement permessage-deflate yet.
    kw.setdefault("compression", None)
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    return connect(url, **kw)


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


async def main():
    args = sys.argv[1:]
    base = args[0].rstrip("/")
    all_codes = not ("--close-codes" in args and args[args.index("--close-codes") + 1] == "sample")
    await echo_checks(base)
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

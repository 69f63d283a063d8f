"""End-to-end checks of the broadcast and hub examples with Python `websockets` clients.

    python topics_examples.py broadcast ws://127.0.0.1:PORT [--deflate]
    python topics_examples.py slow ws://127.0.0.1:PORT
    python topics_examples.py hub ws://127.0.0.1:PORT TICK_MS

Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import asyncio
import json
import socket
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

failed = 0


def check(name, ok, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failed += 1


async def recv_n(ws, n, timeout=20):
    """Up to n messages; fewer if they do not come within the timeout (the check fails)."""
    got = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < n:
                got.append(await ws.recv())
    except TimeoutError:
        print(f"  timed out after {len(got)} of {n} messages", flush=True)
    return got


def opener(deflate):
    if deflate:
        # The client's usual offer (context takeover, 15-bit windows) and one that asks the
        # server for a 10-bit window.
        return [
            dict(compression="deflate"),
            dict(
                extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
                compression=None,
            ),
        ]
    return [dict(compression=None)]


async def broadcast(url, deflate):
    kinds = opener(deflate)
    clients = []
    for i in range(60):
        clients.append(await connect(url, max_size=None, **kinds[i % len(kinds)]))
    answers = [c.response.headers.get("Sec-WebSocket-Extensions") for c in clients]
    if deflate:
        check(
            "every client negotiated permessage-deflate with client_no_context_takeover",
            all(a and "permessage-deflate" in a and "client_no_context_takeover" in a for a in answers),
            answers[:2],
        )
        check(
            "the 10-bit window was granted",
            all("server_max_window_bits=10" in a for a in answers[1::2]),
            answers[1],
        )
    else:
        check("compression declined", all(a is None for a in answers), answers[:2])

    # Text and binary from two senders: everyone, the senders included, gets each once.
    big = ("broadcast " * 1700)[:16384]
    await clients[0].send("hello")
    await clients[1].send(b"\x00\x01\x02" * 400)
    await clients[2].send(big)
    for i, c in enumerate(clients):
        got = await recv_n(c, 3)
        want = sorted([repr("hello"), repr(b"\x00\x01\x02" * 400), repr(big)])
        if sorted(map(repr, got)) != want:
            check(f"client {i} got the three messages", False, [repr(g)[:40] for g in got])
            break
    else:
        check("60 clients got every message once, the senders included", True)

    # One sender's burst arrives whole and in order everywhere.
    burst = [f"m{i}:" + "x" * 1000 for i in range(100)]
    for m in burst:
        await clients[3].send(m)
    orders = [await recv_n(c, 100) == burst for c in clients]
    check("a burst of 100 arrives in order at all 60", all(orders), orders.count(False))

    if deflate:
        # The server's frames were compressed: count the bytes of a raw reader's socket.
        await compressed_on_the_wire(url)
    for c in clients:
        await c.close()


async def compressed_on_the_wire(url):
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    raw = socket.create_connection((host, int(port)))
    raw.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    check("a raw client is answered with permessage-deflate", b"permessage-deflate" in head, head)
    sender = await connect(url, compression=None)
    text = "the same words for everyone " * 585  # 16 KiB
    await sender.send(text)
    raw.settimeout(5)
    first = raw.recv(2)
    rsv1 = bool(first[0] & 0x40)
    n = first[1] & 0x7F
    if n == 126:
        n = int.from_bytes(raw.recv(2), "big")
    check(
        "a 16 KiB text goes out compressed (RSV1) and much smaller",
        rsv1 and n < len(text) // 10,
        (rsv1, n),
    )
    raw.close()
    await sender.close()


async def slow(url):
    """A client that never reads: the others go on getting every message."""
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    # A small receive window from the start (set before connecting), so the kernel's buffers
    # hold little of what the server sends it.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((host, int(port)))
    stuck.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    readers = [await connect(url, compression=None, max_size=None) for _ in range(10)]
    sender = readers[0]
    n = 400
    msg = "y" * 16384
    counts = [0] * len(readers)

    async def read(i, c):
        async with asyncio.timeout(60):
            while counts[i] < n:
                await c.recv()
                counts[i] += 1

    tasks = [asyncio.create_task(read(i, c)) for i, c in enumerate(readers)]
    for _ in range(n):
        await sender.send(msg)
    await asyncio.gather(*tasks)
    check(f"10 readers got all {n} messages of 16 KiB while one client never read", counts == [n] * 10, counts)
    # The stuck client's queue overflowed (1 MiB, the server's --queue-bytes here): it is
    # closed. Its close frame (1008) is behind what filled its socket; read it all now, with a
    # larger window, until the server ends the connection (its close timeout: 5 s).
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    stuck.settimeout(20)
    data = b""
    start = time.monotonic()
    try:
        while True:
            chunk = stuck.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        data += f" [{e}]".encode()
    took = time.monotonic() - start
    has_close = b"\x88" in data and (1008).to_bytes(2, "big") + b"subscriber too slow" in data
    check(
        f"the client that never read was closed with 1008 ({len(data) >> 10} KiB before it, EOF after {took:.1f} s)",
        has_close and took < 15,
        (len(data), took),
    )
    for c in readers:
        await c.close()


async def hub(url, tick_ms):
    a = await connect(url, compression=None)
    b = await connect(url, compression=None)
    await a.send(json.dumps({"event": "SET_NAME", "data": "alice"}))
    await b.send(json.dumps({"event": "SET_NAME", "data": "bob" * 20}))
    await a.send(json.dumps({"event": "SAY", "data": "hello"}))
    await b.send(json.dumps({"event": "SAY", "data": "hi alice"}))

    def chats(msgs):
        return [json.loads(m) for m in msgs if json.loads(m)["data"].get("from") != "server"]

    want = [
        {"event": "CHAT_MSG", "data": {"from": "alice", "text": "hello"}},
        {"event": "CHAT_MSG", "data": {"from": ("bob" * 20)[:32], "text": "hi alice"}},
    ]
    # Two senders on two connections: either order, but the same one for everybody.
    seen = []
    key = lambda m: m["data"]["text"]
    for name, c in [("alice", a), ("bob", b)]:
        got = []
        async with asyncio.timeout(10):
            while len(chats(got)) < 2:
                got.append(await c.recv())
        ok = sorted(chats(got), key=key) == sorted(want, key=key)
        check(f"{name} got both CHAT_MSGs, names as set (cut to 32)", ok, got)
        seen.append(chats(got))
    check("both got them in the same order", seen[0] == seen[1], seen)

    # The server's CHAT_MSG every tick.
    start = time.monotonic()
    ticks = []
    async with asyncio.timeout(3 * tick_ms / 1000 + 5):
        while len(ticks) < 2:
            m = json.loads(await a.recv())
            if m["data"].get("from") == "server":
                ticks.append(time.monotonic())
    gap = ticks[1] - ticks[0]
    check(
        f"server CHAT_MSG every {tick_ms} ms",
        abs(gap - tick_ms / 1000) < 0.5 and "clients connected" in m["data"]["text"],
        (gap, m),
    )

    await a.send("not json")
    async with asyncio.timeout(10):
        while True:
            m = json.loads(await a.recv())
            if m["event"] == "ERROR":
                break
    check("bad JSON gets an ERROR to the sender", True)
    await a.send(json.dumps({"event": "SAY", "data": "x" * 5000}))
    try:
        async with asyncio.timeout(10):
            while True:
                await a.recv()
    except ConnectionClosed as e:
        check("a message over 4 KiB closes with 1009", e.rcvd and e.rcvd.code == 1009, e)

    await b.send(json.dumps({"event": "LEAVE"}))
    try:
        async with asyncio.timeout(10):
            while True:
                await b.recv()
    except ConnectionClosed as e:
        check("LEAVE closes with 1000", e.rcvd and e.rcvd.code == 1000 and e.rcvd.reason == "bye", e)


def main():
    what, url = sys.argv[1], sys.argv[2]
    if what == "broadcast":
        asyncio.run(broadcast(url, "--deflate" in sys.argv))
    elif what == "slow":
        asyncio.run(slow(url))
    else:
        asyncio.run(hub(url, int(sys.argv[3])))
    sys.exit(1 if failed else 0)


main()

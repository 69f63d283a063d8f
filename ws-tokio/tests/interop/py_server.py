"""Python `websockets` echo server for the ws-tokio interop_client.

usage: py_server.py [PORT]   (default 0: any free port; prints `LISTENING 127.0.0.1:PORT`)

Echoes text and binary messages. Text commands (see examples/interop_client.rs):
  !frag binary COUNT SIZE / !frag text COUNT REPS   reply with a fragmented message,
                                                    a ping between the first two fragments
  !ping PAYLOAD                                     ping; after the pong: `pong-received:PAYLOAD`
  !close CODE REASON                                close with CODE and REASON
Rejects /reject with 403; supports subprotocols chat and superchat (server preference).
Compression is off: ws-tokio does not implement permessage-deflate yet.
"""

import asyncio
import http
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

TEXT_UNIT = "héllo wörld ✓ 😀 "
SUBPROTOCOLS = ["chat", "superchat"]


def pattern(n):
    return bytes(i % 251 for i in range(n))


def split(data, count):
    n = len(data)
    return [data[i * n // count : (i + 1) * n // count] for i in range(count)]


def process_request(connection, request):
    if request.path == "/reject" or request.path.startswith("/reject/"):
        return connection.respond(http.HTTPStatus.FORBIDDEN, "rejected by py_server\n")
    return None


def select_subprotocol(connection, offered):
    for p in SUBPROTOCOLS:
        if p in offered:
            return p
    return None


async def fragmented(ws, parts):
    async def gen():
        for i, p in enumerate(parts):
            yield p
            if i == 0 and len(parts) > 1:
                await ws.ping(b"between-fragments")

    await ws.send(gen())


async def handler(ws):
    try:
        await echo(ws)
    except ConnectionClosed:
        pass  # a close code other than 1000/1001 ends `async for` with this


async def echo(ws):
    async for msg in ws:
        if isinstance(msg, str) and msg.startswith("!"):
            cmd = msg.split(" ", 3)
            if cmd[0] == "!frag" and len(cmd) == 4:
                count, n = int(cmd[2]), int(cmd[3])
                if cmd[1] == "binary":
                    await fragmented(ws, split(pattern(n), count))
                else:
                    await fragmented(ws, split(TEXT_UNIT * n, count))
            elif cmd[0] == "!ping":
                payload = msg[len("!ping ") :]
                waiter = await ws.ping(payload.encode())
                await asyncio.wait_for(waiter, 10)
                await ws.send("pong-received:" + payload)
            elif cmd[0] == "!close":
                code = int(cmd[1])
                reason = msg.split(" ", 2)[2] if len(cmd) > 2 else ""
                await ws.close(code, reason)
                print(f"closed code={code} echo={ws.protocol.close_rcvd}", flush=True)
                return
            else:
                await ws.send(msg)
        else:
            await ws.send(msg)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=None,
        ping_interval=None,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
    ) as server:
        sock = server.sockets[0]
        print(f"LISTENING 127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

"""Python `websockets` echo server for the ws-tokio interop_client.

usage: py_server.py [PORT] [--deflate off|default|lean]
       (PORT 0, the default: any free port; prints `LISTENING 127.0.0.1:PORT`)

Echoes text and binary messages. Text commands (see examples/interop_client.rs):
  !frag binary COUNT SIZE / !frag text COUNT REPS   reply with a fragmented message,
                                                    a ping between the first two fragments
  !ping PAYLOAD                                     ping; after the pong: `pong-received:PAYLOAD`
  !close CODE REASON                                close with CODE and REASON
Rejects /reject with 403; supports subprotocols chat and superchat (server preference).
--deflate (permessage-deflate, RFC 7692): `off` (the default) declines any offer; `default` is
websockets' own default (server_max_window_bits=12, client_max_window_bits=12, memLevel 5);
`lean` adds server_no_context_takeover and client_no_context_takeover. websockets compresses
every data frame, fragments included.
"""

import asyncio
import http
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

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


def deflate_options(mode):
    if mode == "off":
        return {"compression": None}
    if mode == "default":
        return {"compression": "deflate"}
    if mode == "lean":
        factory = ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
        return {"compression": None, "extensions": [factory]}
    raise SystemExit(f"unknown --deflate mode {mode!r}")


async def main():
    args = sys.argv[1:]
    mode = "off"
    if "--deflate" in args:
        i = args.index("--deflate")
        mode = args[i + 1]
        del args[i : i + 2]
    port = int(args[0]) if args else 0
    async with serve(
        handler,
        "127.0.0.1",
        port,
        **deflate_options(mode),
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

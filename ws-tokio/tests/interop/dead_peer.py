"""A dead peer: a raw-socket WebSocket client that completes the handshake, exchanges one
message, and from then on never sends anything again (no pongs), while it keeps reading and
timestamping what the server sends: pings, a close frame, the end of the connection.

usage: dead_peer.py ws://127.0.0.1:PORT/path HOLD_SECONDS

Prints one JSON line: {"silent_since": ms, "pings": [ms...], "close": {"code", "at"} | null,
"eof_at": ms | null}, times in milliseconds since the Unix epoch.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlparse


def now_ms():
    return int(time.time() * 1000)


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def take(self, n, deadline):
        self.fill(n, deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self, deadline):
        b0, b1 = self.take(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8, deadline))[0]
        return b0 & 0x0F, self.take(n, deadline)


def main():
    url = urlparse(sys.argv[1])
    hold = float(sys.argv[2])
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    r = Reader(sock)
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in r.buf:
        r.fill(len(r.buf) + 1, deadline)
    head, r.buf = r.buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        print(json.dumps({"error": head.decode(errors="replace")}))
        return 1
    sock.sendall(masked_frame(0x1, b"alive"))
    while True:
        op, payload = r.frame(deadline)
        if op == 0x1 and payload == b"alive":
            break
    out = {"silent_since": now_ms(), "pings": [], "close": None, "eof_at": None}
    # From here on: read only, never write.
    deadline = time.monotonic() + hold
    try:
        while True:
            op, payload = r.frame(deadline)
            if op == 0x9:
                out["pings"].append(now_ms())
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                out["close"] = {"code": code, "reason": payload[2:].decode(errors="replace"), "at": now_ms()}
    except EOFError:
        out["eof_at"] = now_ms()
    except (TimeoutError, socket.timeout):
        pass
    except OSError as e:
        out["eof_at"] = now_ms()
        out["eof_error"] = str(e)
    sock.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""An Autobahn TestSuite client built on the Python `websockets` package: an example of the
program that `cargo run -p conformance -- --client-cmd 'CMD {url} {agent}'` runs.

usage: external-client.py URL AGENT

It does what the runner expects of a client program (conformance/README.md): reads the case
count from URL/getCaseCount, runs every case at URL/runCase?case=I&agent=AGENT echoing each
text and binary message until the fuzzing server closes, then asks for the reports at
URL/updateReports?agent=AGENT. The package's defaults are kept (it offers permessage-deflate),
except for its limits, which are set far above what the suite sends (as for our own testees:
messages of up to 16 MiB, up to 65 536 fragments), and no keepalive pings are sent (the suite
counts them as unexpected traffic).
"""

import asyncio
import os
import sys
import urllib.parse

# Read by websockets when it is imported; its default, 4096, fails cases 9.3.1-2 and 9.4.1-2.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", "100000")

from websockets.asyncio.client import connect  # noqa: E402 (after the environment)
from websockets.exceptions import ConnectionClosedError, WebSocketException  # noqa: E402

OPTIONS = {"max_size": None, "ping_interval": None, "open_timeout": 20}
# Longest time one case may take before the client gives up on it.
CASE_TIMEOUT = 60


async def case_count(url):
    async with connect(f"{url}/getCaseCount", **OPTIONS) as ws:
        return int(await ws.recv())


async def echo_case(url, case, agent):
    query = urllib.parse.urlencode({"case": case, "agent": agent})
    async with connect(f"{url}/runCase?{query}", **OPTIONS) as ws:
        async for message in ws:
            await ws.send(message)


async def update_reports(url, agent):
    query = urllib.parse.urlencode({"agent": agent})
    try:
        async with connect(f"{url}/updateReports?{query}", **OPTIONS) as ws:
            async for _ in ws:
                pass
    except ConnectionClosedError:
        pass  # kosoku shuts down without a closing handshake once it has the reports


async def main(url, agent):
    url = url.rstrip("/")
    count = await case_count(url)
    errors = timeouts = 0
    for case in range(1, count + 1):
        try:
            await asyncio.wait_for(echo_case(url, case, agent), CASE_TIMEOUT)
        except asyncio.TimeoutError:
            timeouts += 1
        except (ConnectionClosedError, WebSocketException, OSError):
            # Often the expected end of a fuzzing case (e.g. a close with 1002 or 1007).
            errors += 1
    await update_reports(url, agent)
    print(f"ran {count} cases ({errors} ended with an error, {timeouts} timed out)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""A stub OpenAI-compatible server that answers after a fixed latency, for the endpoint benchmarks.

It runs in a child process, so it does not share the GIL with the client being
measured: a minimal keep-alive HTTP/1.1 loop, not a web framework, so the time
measured is the client's. Each server may work on at most ``capacity`` requests
at once (the rest queue), like a GPU server with a fixed batch.

    python benchmarks/latency_stub.py COUNT LATENCY_S [CAPACITY]   # prints the ports, serves until killed
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

_BODY = json.dumps(
    {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }
).encode()
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


def serve(count: int, latency_s: float, capacity: int | None) -> None:
    """Child process: ``count`` servers; prints their ports on one line, then answers until killed."""

    def handler(slots: asyncio.Semaphore | None) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    if slots is None:
                        await asyncio.sleep(latency_s)
                    else:
                        async with slots:  # the server's own batch limit
                            await asyncio.sleep(latency_s)
                    writer.write(_RESPONSE)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        return connection

    async def run() -> None:
        servers = [await asyncio.start_server(handler(asyncio.Semaphore(capacity) if capacity else None),
                                              "127.0.0.1", 0, backlog=1024) for _ in range(count)]
        print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(run())


@contextlib.contextmanager
def running(count: int, latency_s: float, capacity: int | None = None) -> Iterator[list[str]]:
    """Start ``count`` stub servers in a child process; yields their base URLs once each accepts connections."""
    command = [sys.executable, __file__, str(count), str(latency_s)] + ([str(capacity)] if capacity else [])
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ports = [int(p) for p in server.stdout.readline().split()]
        for port in ports:
            for _ in range(200):  # wait until it accepts connections
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        yield [f"http://127.0.0.1:{port}/v1" for port in ports]
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)

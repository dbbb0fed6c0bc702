"""Stub OpenAI-compatible replicas on 127.0.0.1 for the replica tests: what each saw, how each behaves.

Every stub is a plain asyncio HTTP/1.1 server (keep-alive, JSON bodies) on the
event loop of one background thread, so a test's client loop and the stubs do
not share a loop. Each stub counts the requests it saw and the most it had in
flight at once; latency is a fixed sleep per request.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass
class Stub:
    """One replica. ``n_mode``: "honour" (n choices), "ignore" (one choice, like llama.cpp's server), "reject" (400)."""

    name: str
    url: str = ""
    delay: float = 0.0
    n_mode: str = "honour"
    fail_status: int | None = None  # answer every request with this status
    fail_first: int = 0  # answer the first k requests with 503
    retry_after: str | None = None
    usage_total: int | None = None  # the reply's usage.total_tokens; None: prompt 11 + completion 4 per choice
    seen: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {}, b'{"error": "stub failure"}'
        if self.fail_status is not None:
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return self.fail_status, headers, b'{"error": "stub failure"}'
        n = int(body.get("n", 1))
        if n > 1 and self.n_mode == "reject":
            return 400, {}, b'{"error": "n is not supported"}'
        count = n if self.n_mode == "honour" else 1
        choices = [{"index": i, "message": {"role": "assistant", "content": f"{self.name} seed={body.get('seed')} i={i}"},
                    "finish_reason": "stop"} for i in range(count)]
        usage: dict[str, int] = {"prompt_tokens": 11, "completion_tokens": 4 * count}
        if self.usage_total is not None:
            usage = {"prompt_tokens": self.usage_total - 1, "completion_tokens": 1, "total_tokens": self.usage_total}
        return 200, {}, json.dumps({"choices": choices, "usage": usage}).encode()


class StubServers:
    """Serves ``stubs`` on free ports from one background thread until ``close``."""

    def __init__(self, stubs: list[Stub]) -> None:
        self.stubs = stubs
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stub servers did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        for stub in self.stubs:
            server = self._loop.run_until_complete(
                asyncio.start_server(lambda r, w, s=stub: self._connection(s, r, w), "127.0.0.1", 0))
            self._servers.append(server)
            stub.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        ready.set()
        self._loop.run_forever()

    async def _connection(self, stub: Stub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                               if line.lower().startswith("content-length:")), 0)
                body = json.loads(await reader.readexactly(length)) if length else {}
                stub.seen.append({"path": path, **body})
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    if stub.delay:
                        await asyncio.sleep(stub.delay)
                    status, headers, payload = stub.reply(body)
                finally:
                    stub.in_flight -= 1
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"HTTP/1.1 {status} {_REASONS.get(status, 'X')}\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(payload)}\r\n{extra}\r\n".encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def serving(*stubs: Stub) -> Iterator[list[Stub]]:
    servers = StubServers(list(stubs))
    try:
        yield list(stubs)
    finally:
        servers.close()


class ManualClock:
    """A clock that moves only when a test moves it (give it to ``replicas.dispatcher().clock``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool], what: str, tries: int = 2000) -> None:
    """Wait (polling) until ``condition`` holds; a test asserts on structure, never on how long it took."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")

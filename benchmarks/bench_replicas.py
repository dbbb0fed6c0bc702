"""How close do 2 and 4 replicas of one model come to 2x and 4x the throughput of one?

A child process serves up to four stub OpenAI-compatible replicas. Each
behaves like a GPU server with a fixed batch: it works on at most C requests at
once (the rest queue) and answers each after a fixed latency, so one replica
can do at most C / latency requests per second. One ``openai`` target with
``base_urls`` set to 1, 2 and 4 of them (``concurrency`` = C per replica) sends
REQUESTS-per-replica single-sample requests at once; the runs are side by side
in one process. Scaling efficiency is requests/s with k replicas over k times
requests/s with one. Goal: >= 0.9 of linear at 4 replicas with a GPU-like
latency (500 ms a request). The second latency (100 ms) asks for 4x the request
rate and shows where the client itself (httpx, one Python process) stops scaling
on the machine at hand.

    python benchmarks/bench_replicas.py [--requests N] [--concurrency 8] [--latency-ms 500 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

GOAL = 0.9
REPLICAS = (1, 2, 4)

_BODY = json.dumps(
    {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }
).encode()
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


def _serve(count: int, latency_s: float, capacity: int) -> None:
    """Child process: ``count`` keep-alive HTTP/1.1 servers, each answering at most ``capacity`` at a time."""

    def handler(slots: asyncio.Semaphore) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    async with slots:  # the server's own batch limit
                        await asyncio.sleep(latency_s)
                    writer.write(_RESPONSE)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        return connection

    async def serve() -> None:
        servers = [await asyncio.start_server(handler(asyncio.Semaphore(capacity)), "127.0.0.1", 0, backlog=1024)
                   for _ in range(count)]
        print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(serve())


async def _drive(urls: list[str], requests: int, concurrency: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds for ``requests`` requests over ``urls``."""
    from sparring.models import Message, Prompt, SamplingParams, models

    model = models.create("openai", {"base_urls": urls, "concurrency": concurrency, "max_retries": 0})
    prompt = Prompt(messages=(Message("user", "hello"),))
    try:
        # Warm up: open every connection first; connection setup is not the subject.
        await model.sample(prompt, SamplingParams(n=concurrency * len(urls)))
        start, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(model.sample(prompt, SamplingParams(n=1, seed=i)) for i in range(requests)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await model.aclose()
    assert sum(len(r) for r in results) == requests
    return wall, cpu


def _measure(latency_ms: float, requests_per_replica: int, concurrency: int) -> dict[int, float]:
    """Requests/s over 1, 2 and 4 replicas of a stub answering after ``latency_ms``."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency-ms", str(latency_ms), "--concurrency", str(concurrency)],
        stdout=subprocess.PIPE, text=True,
    )
    rates: dict[int, float] = {}
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
        urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
        for k in REPLICAS:
            requests = requests_per_replica * k
            wall, cpu = asyncio.run(_drive(urls[:k], requests, concurrency))
            rates[k] = requests / wall
            ideal = k * concurrency / (latency_ms / 1000)
            print(f"latency {latency_ms:g} ms, {k} replica(s): {requests} requests in {wall:.2f} s = "
                  f"{rates[k]:,.0f} requests/s (ideal {ideal:,.0f}: {rates[k] / ideal:.2f} of ideal); "
                  f"client CPU {cpu / requests * 1000:.2f} ms a request", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    return rates


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="Throughput of one target over 1, 2 and 4 stub replicas.")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests per replica (default: 5 s of ideal work at each latency)")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight per replica (client and server)")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[500.0, 100.0],
                        help="per-request latencies to measure; the goal applies to the first")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(max(REPLICAS), args.latency_ms[0] / 1000, args.concurrency)
        return 0.0
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    efficiencies: list[tuple[float, dict[int, float], float]] = []
    for latency_ms in args.latency_ms:
        requests = args.requests or max(int(5.0 / (latency_ms / 1000) * args.concurrency), args.concurrency)
        rates = _measure(latency_ms, requests, args.concurrency)
        efficiencies.append((latency_ms, {k: rates[k] / (k * rates[1]) for k in REPLICAS}, rates[max(REPLICAS)]))
    goal = efficiencies[0][1][max(REPLICAS)]
    verdict = "OK" if goal >= GOAL else "BELOW GOAL"
    print(f"RESULT C={args.concurrency} per replica: " + "; ".join(
        f"latency {latency:g} ms: " + ", ".join(f"{k} replicas/linear = {e[k]:.2f}" for k in REPLICAS if k > 1)
        + f" ({top:,.0f} requests/s at {max(REPLICAS)})" for latency, e, top in efficiencies)
        + f" (goal >= {GOAL} at {args.latency_ms[0]:g} ms) {verdict}")
    return goal


if __name__ == "__main__":
    main()

"""How close does the OpenAI backend get to the ideal throughput of a slow endpoint?

Starts a minimal local OpenAI-compatible server (in a child process, so it
does not share the GIL with the client) that answers every request after a fixed delay,
sends REQUESTS single-sample requests through ``OpenAICompatibleModel`` with
concurrency C, and compares the wall time with the ideal REQUESTS / C x delay.
Goal: ratio <= 1.2.

    python benchmarks/bench_endpoint_concurrency.py [--requests 400] [--concurrency 16] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time

GOAL = 1.2


_BODY = json.dumps(
    {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }
).encode()
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)


def _serve(delay_s: float) -> None:
    """Child process: a minimal keep-alive HTTP/1.1 server, so the measured overhead is the client's.

    It prints its port, then answers every request after ``delay_s`` until killed.
    """

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                await asyncio.sleep(delay_s)
                writer.write(_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


async def _drive(base_url: str, requests: int, concurrency: int) -> float:
    from sparring.models import Message, Prompt, SamplingParams, models

    model = models.create("openai", {"base_url": base_url, "concurrency": concurrency, "max_retries": 0})
    prompt = Prompt(messages=(Message("user", "hello"),))
    try:
        # Warm up: open all C connections first; connection setup is not the subject.
        await model.sample(prompt, SamplingParams(n=concurrency))
        start = time.perf_counter()
        results = await asyncio.gather(*(model.sample(prompt, SamplingParams(n=1, seed=i)) for i in range(requests)))
        wall = time.perf_counter() - start
    finally:
        await model.aclose()
    assert sum(len(r) for r in results) == requests
    return wall


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="Throughput of the OpenAI backend against a slow local endpoint.")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    delay_s = args.delay_ms / 1000
    if args.serve:
        _serve(delay_s)
        return 0.0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--delay-ms", str(args.delay_ms)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):  # wait until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        wall = asyncio.run(_drive(base_url, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(10)
    ideal = args.requests / args.concurrency * delay_s
    ratio = float(wall / ideal)
    verdict = "OK" if ratio <= GOAL else "SLOW"
    print(
        f"endpoint concurrency: {args.requests} requests, C={args.concurrency}, delay={args.delay_ms:g} ms: "
        f"wall {wall:.3f} s, ideal {ideal:.3f} s, ratio {ratio:.2f}x (goal <= {GOAL}x) {verdict}"
    )
    return ratio


if __name__ == "__main__":
    main()

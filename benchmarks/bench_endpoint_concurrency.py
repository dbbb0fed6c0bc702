"""How close does the OpenAI backend get to the ideal throughput of a slow endpoint?

Starts a minimal local OpenAI-compatible server (``latency_stub``, in a child process,
so it does not share the GIL with the client) that answers every request after a fixed delay,
sends REQUESTS single-sample requests through ``OpenAICompatibleModel`` with
concurrency C, and compares the wall time with the ideal REQUESTS / C x delay.
Goal: ratio <= 1.2.

    python benchmarks/bench_endpoint_concurrency.py [--requests 400] [--concurrency 16] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from latency_stub import running

GOAL = 1.2


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
    args = parser.parse_args(argv)
    delay_s = args.delay_ms / 1000
    with running(1, delay_s) as [base_url]:
        wall = asyncio.run(_drive(base_url, args.requests, args.concurrency))
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

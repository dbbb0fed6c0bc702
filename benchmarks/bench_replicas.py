"""How close do 2 and 4 replicas of one model come to 2x and 4x the throughput of one?

A child process serves up to four stub OpenAI-compatible replicas (``latency_stub``). Each
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
import os
import time

from latency_stub import running

GOAL = 0.9
REPLICAS = (1, 2, 4)

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
    rates: dict[int, float] = {}
    with running(max(REPLICAS), latency_ms / 1000, concurrency) as urls:
        for k in REPLICAS:
            requests = requests_per_replica * k
            wall, cpu = asyncio.run(_drive(urls[:k], requests, concurrency))
            rates[k] = requests / wall
            ideal = k * concurrency / (latency_ms / 1000)
            print(f"latency {latency_ms:g} ms, {k} replica(s): {requests} requests in {wall:.2f} s = "
                  f"{rates[k]:,.0f} requests/s (ideal {ideal:,.0f}: {rates[k] / ideal:.2f} of ideal); "
                  f"client CPU {cpu / requests * 1000:.2f} ms a request", flush=True)
    return rates


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="Throughput of one target over 1, 2 and 4 stub replicas.")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests per replica (default: 5 s of ideal work at each latency)")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight per replica (client and server)")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[500.0, 100.0],
                        help="per-request latencies to measure; the goal applies to the first")
    args = parser.parse_args(argv)
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

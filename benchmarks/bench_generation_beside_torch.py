"""Embedded model: tokens/s in a process that never loaded torch vs one that trained with torch first.

`sparring improve` used to train (the filter PM, DPO) and then generate (safer
samples, the held-out evaluation) in one process; its evaluation ran at 30
conversations a minute there and at 66 in a fresh process on the same files.
Both llama.cpp and the CPU build of torch run on OpenMP (libgomp): once torch
has run a parallel region, its idle thread team sits beside llama.cpp's, more
threads than cores, and libgomp then stops spinning at barriers and sleeps
instead (hypothesis; the ratio below is what is measured).

Each side runs in a fresh Python process: ``plain`` imports only the llama.cpp
backend; ``torch`` first imports torch and runs a few threaded forward and
backward passes (as training does), then loads the model. Both then sample the
same hh-rlhf openings with the same seeds, 64 tokens, the chat template: one
sample a call (the evaluation's sequential path) and 8 (safer samples' batched
path), alternating, best of ``--repeats``. Ratio = plain tokens/s over torch
tokens/s.

    python benchmarks/bench_generation_beside_torch.py [--prompts 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

MODES = ("plain", "torch")
SAMPLES = (1, 8)


def _torch_work() -> None:
    import torch

    torch.set_num_threads(2)
    layer = torch.nn.Linear(576, 1536)
    inputs = torch.randn(64, 576)
    for _ in range(20):
        layer(inputs).square().mean().backward()


async def _tokens_per_second(prompts: int, samples: int) -> float:
    from sparring.attacks import attacks
    from sparring.models import models
    from sparring.models.base import Message, Prompt, SamplingParams

    items = attacks.create("hh-rlhf", {"offset": 1200, "limit": prompts}, where="benchmark").items()
    model = models.create("llamacpp", {}, where="benchmark")
    try:
        await model.sample(Prompt((Message("user", "Hello"),)), SamplingParams(max_tokens=4))  # load the weights
        started, tokens = time.perf_counter(), 0
        for number, item in enumerate(items):
            params = SamplingParams(n=samples, temperature=0.7, max_tokens=64, seed=number)
            for completion in await model.sample(Prompt((Message("user", item.human_turns[0]),)), params):
                tokens += completion.completion_tokens or 0
        return tokens / (time.perf_counter() - started)
    finally:
        await model.aclose()


def _child(mode: str, prompts: int) -> None:
    if mode == "torch":
        _torch_work()
    rates = {n: asyncio.run(_tokens_per_second(prompts if n == 1 else max(1, prompts // 4), n)) for n in SAMPLES}
    print(json.dumps(rates))


def _measure(mode: str, prompts: int) -> dict[int, float]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--prompts", str(prompts)],
                         capture_output=True, text=True, check=True).stdout
    return {int(n): rate for n, rate in json.loads(out.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.prompts)
        return
    best = {(mode, n): 0.0 for mode in MODES for n in SAMPLES}
    for _ in range(args.repeats):
        for mode in MODES:
            for n, rate in _measure(mode, args.prompts).items():
                best[mode, n] = max(best[mode, n], rate)
    print(f"hh-rlhf openings, 64 tokens, best of {args.repeats}; tokens/s in a fresh process (plain) and after torch "
          "trained in it (torch)")
    print(f"{'samples a call':>15} {'plain':>7} {'torch':>7} {'plain/torch':>12}")
    for n in SAMPLES:
        print(f"{n:>15} {best['plain', n]:>7.1f} {best['torch', n]:>7.1f} {best['plain', n] / best['torch', n]:>11.2f}x")
    summary = ", ".join(f"{n} a call {best['plain', n] / best['torch', n]:.2f}x" for n in SAMPLES)
    print(f"RESULT plain/torch tokens/s: {summary}")

if __name__ == "__main__":
    main()

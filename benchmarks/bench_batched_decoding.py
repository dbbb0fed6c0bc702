"""Embedded model: batched decoding (the k samples of a turn side by side) vs one sequential call per sample.

The target is the prompted LM (the 14-shot HHH preamble) answering the opening
human turns of hh-rlhf red-team dialogues (the bundled test split), as
rejection sampling draws them. For each k, both paths (``batched = true`` with
``batched_from = 1``, and ``batched = false``, of the same ``llamacpp`` model; the
default ``batched_from = 4`` comes from this table) sample the same prompts with
the same seeds, alternating, best of ``--repeats``; each path is warmed up first
so the preamble is in its KV cache, as it is in a run. Ratio = batched tokens/s
over sequential tokens/s; "same texts" counts samples whose text both paths agree
on (same sampler and seeds, other kernels: they part sooner or later).

    python benchmarks/bench_batched_decoding.py [--ks 1,2,4,8,16] [--prompts 2] [--max-tokens 32] [--repeats 2] [--threads N]

``--threads`` (default: all cores) is llama.cpp's thread count for both paths;
on a shared, busy machine 1 thread avoids its spin-waiting thread team stalling
on a descheduled peer, which slows both paths by an order of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from sparring.attacks import attacks
from sparring.interventions import interventions
from sparring.models import models
from sparring.models.base import Completion, Message, Model, Prompt, SamplingParams


def red_team_prompts(count: int) -> list[Prompt]:
    preamble = interventions.create("prompted").preamble()
    items = attacks.create("hh-rlhf", {"limit": count}).items()
    return [Prompt(messages=(Message("user", item.human_turns[0]),), preamble=preamble) for item in items]


async def timed(model: Model, prompts: list[Prompt], params: SamplingParams) -> tuple[float, list[Completion]]:
    start = time.perf_counter()
    out: list[Completion] = []
    for number, prompt in enumerate(prompts):
        out += await model.sample(prompt, params.with_seed(1000 * number))
    return time.perf_counter() - start, out


async def main_async(ks: list[int], count: int, max_tokens: int, repeats: int, threads: int) -> None:
    prompts = red_team_prompts(count)
    paths = {
        name: models.create("llamacpp", {"batched": name == "batched", "batched_from": 1, "n_ctx": 4096, "n_threads": threads})
        for name in ("sequential", "batched")
    }
    print(f"{count} red-team prompts after the 14-shot preamble, max_tokens {max_tokens}, "
          f"{threads} threads on {os.cpu_count()} cores, best of {repeats}")
    print(f"{'k':>3} {'sequential tok/s':>17} {'batched tok/s':>14} {'ratio':>6} {'same texts':>11}")
    try:
        for model in paths.values():  # warm-up: load the weights, decode the preamble once
            await model.sample(prompts[0], SamplingParams(n=1, max_tokens=4))
        ratios = {}
        for k in ks:
            params = SamplingParams(n=k, max_tokens=max_tokens)
            best: dict[str, float] = {}
            outputs: dict[str, list[Completion]] = {}
            for _ in range(repeats):
                for name, model in paths.items():
                    seconds, out = await timed(model, prompts, params)
                    rate = sum(c.completion_tokens or 0 for c in out) / seconds
                    best[name] = max(best.get(name, 0.0), rate)
                    outputs[name] = out
            same = sum(a.text == b.text for a, b in zip(outputs["sequential"], outputs["batched"], strict=True))
            ratios[k] = best["batched"] / best["sequential"]
            print(f"{k:>3} {best['sequential']:>17.1f} {best['batched']:>14.1f} {ratios[k]:>6.2f} {same:>5}/{len(outputs['batched']):<5}", flush=True)
    finally:
        for model in paths.values():
            await model.aclose()
    summary = ", ".join(f"k={k}: {ratio:.2f}x" for k, ratio in ratios.items())
    print(f"RESULT batched/sequential tokens/s: {summary} (goal >= 2x at k=16)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,2,4,8,16", help="samples per turn, comma-separated")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    asyncio.run(main_async([int(k) for k in args.ks.split(",")], args.prompts, args.max_tokens, args.repeats, args.threads))


if __name__ == "__main__":
    main()

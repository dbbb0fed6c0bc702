"""Embedded model: calls of concurrent conversations merged into one batch (``merge_calls``) vs the default path.

C conversations each ask for a turn of 2 samples at the same moment (the
default run's plain and prompted targets draw 2 per turn), as the prompted LM
(14-shot HHH preamble) answering opening turns of hh-rlhf red-team dialogues.
Three settings of one ``llamacpp`` model, the same prompts and seeds,
alternating, best of ``--repeats``:

- default: ``batched_from = 4``, so 2 samples take one sequential llama.cpp call each;
- batched: every call batched on its own (``batched_from = 1``), calls in turn;
- merged: ``merge_calls = true``, the C calls decoded side by side.

Ratio = merged tokens/s over default tokens/s. "same as batched" counts merged
samples whose text equals the batched call's alone: where they differ, the
merged batch changed the attention's rounding and a token tipped.

    python benchmarks/bench_merged_calls.py [--conversations 1,2,4,8] [--max-tokens 32] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench_batched_decoding import red_team_prompts

from sparring.models import models
from sparring.models.base import Completion, Model, Prompt, SamplingParams

SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "batched": {"batched_from": 1},
    "merged": {"batched_from": 1, "merge_calls": True},
}


async def at_once(model: Model, prompts: list[Prompt], max_tokens: int) -> tuple[float, list[list[Completion]]]:
    start = time.perf_counter()
    out = await asyncio.gather(*(model.sample(p, SamplingParams(n=2, seed=1000 * i, max_tokens=max_tokens))
                                 for i, p in enumerate(prompts)))
    return time.perf_counter() - start, list(out)


async def main_async(counts: list[int], max_tokens: int, repeats: int, threads: int) -> None:
    prompts = red_team_prompts(max(counts))
    paths = {name: models.create("llamacpp", {**config, "n_threads": threads}) for name, config in SETTINGS.items()}
    print(f"conversations asking for 2 samples each at once, the 14-shot preamble, max_tokens {max_tokens}, "
          f"{threads} threads on {os.cpu_count()} cores, best of {repeats}")
    print(f"{'C':>3} {'default tok/s':>14} {'batched tok/s':>14} {'merged tok/s':>13} {'merged/default':>15} "
          f"{'same as batched':>16}")
    ratios = {}
    try:
        for model in paths.values():  # warm-up: load the weights, decode the preamble once
            await model.sample(prompts[0], SamplingParams(n=2, max_tokens=4))
        for count in counts:
            best: dict[str, float] = {}
            texts: dict[str, list[str]] = {}
            for _ in range(repeats):
                for name, model in paths.items():
                    seconds, out = await at_once(model, prompts[:count], max_tokens)
                    best[name] = max(best.get(name, 0.0), sum(c.completion_tokens or 0 for o in out for c in o) / seconds)
                    texts[name] = [c.text for o in out for c in o]
            same = sum(a == b for a, b in zip(texts["merged"], texts["batched"], strict=True))
            ratios[count] = best["merged"] / best["default"]
            print(f"{count:>3} {best['default']:>14.1f} {best['batched']:>14.1f} {best['merged']:>13.1f} "
                  f"{ratios[count]:>15.2f} {same:>10}/{len(texts['merged']):<5}", flush=True)
    finally:
        for model in paths.values():
            await model.aclose()
    print("RESULT merged/default tokens/s: " + ", ".join(f"C={c}: {r:.2f}x" for c, r in ratios.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", default="1,2,4,8", help="conversations at once, comma-separated")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    asyncio.run(main_async([int(c) for c in args.conversations.split(",")], args.max_tokens, args.repeats, args.threads))


if __name__ == "__main__":
    main()

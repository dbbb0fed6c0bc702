"""Engine overhead: turns per second with the scripted model, scoring and SQLite persistence on.

Side by side in one run: the full engine (plan, concurrency, scoring, group-commit
persistence) against a bare loop that calls the same scripted model and scorer
with no engine and no database. Goal: >= 2,000 turns/s on 2 cores.

    python benchmarks/bench_engine_overhead.py [--items 400] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sparring.attacks import attacks
from sparring.conversation import Conversation, Sample
from sparring.experiments import parse_config
from sparring.experiments.runner import arun_experiment
from sparring.models import models
from sparring.models.base import SamplingParams
from sparring.scoring import scorers
from sparring.store import Store

GOAL = 2000.0


def config_text(items: int, concurrency: int) -> str:
    return f"""
name = "bench"
turns = 3
samples_per_turn = 2
concurrency = {concurrency}
[scorer]  # the engine is measured with the fast scorer; the PM has its own benchmark
name = "refusal"
[[models]]
name = "fake"
backend = "scripted"
[[targets]]
model = "fake"
intervention = "plain"
[[targets]]
model = "fake"
intervention = "prompted"
[[attacks]]
kind = "hh-rlhf"
limit = {items}
"""


async def bare_loop(items: int) -> tuple[int, float]:
    """The same model calls and scoring, sequential, nothing stored: the floor of the cost."""
    model, scorer = models.create("scripted"), scorers.create("refusal")
    plan = attacks.create("hh-rlhf", {"limit": items}).items()
    params = SamplingParams(n=2)
    from sparring.interventions import interventions

    targets = [interventions.create("plain"), interventions.create("prompted")]
    turns = 0
    start = time.perf_counter()
    for target in targets:
        for item in plan:
            conversation = Conversation()
            for human in item.human_turns[:3]:
                conversation.add_human(human)
                completions = await target.respond(model, conversation, params)
                scores = await scorer.score_many(conversation, [c.text for c in completions])
                samples = [Sample(text=c.text, scores={"refusal": s.value}) for c, s in zip(completions, scores, strict=False)]
                conversation.add_assistant(samples)
                turns += 1
    return turns, time.perf_counter() - start


async def engine_run(items: int, concurrency: int, db: Path) -> tuple[int, float, float]:
    """Returns (turns, seconds end to end incl. opening the db and planning, seconds executing)."""
    text = config_text(items, concurrency)
    store = Store(f"sqlite:///{db}")
    marks: list[float] = []
    start = time.perf_counter()
    outcome = await arun_experiment(parse_config(text), text, store, on_plan=lambda *_: marks.append(time.perf_counter()))
    end = time.perf_counter()
    return outcome.turns_written, end - start, end - marks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare_turns, bare_s = asyncio.run(bare_loop(args.items))
        turns, seconds, executing = asyncio.run(engine_run(args.items, args.concurrency, Path(tmp) / "bench.db"))
    rate, bare_rate = turns / seconds, bare_turns / bare_s
    print(f"bare loop (model + scorer, no engine, no db): {bare_turns} turns in {bare_s:.2f}s = {bare_rate:,.0f} turns/s")
    print(f"engine (plan, concurrency {args.concurrency}, scoring, SQLite): {turns} turns in {seconds:.2f}s = {rate:,.0f} turns/s "
          f"end to end; {turns / executing:,.0f} turns/s after planning")
    print(f"RESULT engine/bare = {rate / bare_rate:.2f}; engine/goal({GOAL:,.0f} turns/s) = {rate / GOAL:.2f} "
          f"({'meets' if rate >= GOAL else 'below'} the goal)")


if __name__ == "__main__":
    main()

"""Local vs Ray executor on 2 CPUs, side by side in one run, and the driver's memory as the plan grows 10x.

1. Overhead per conversation: the scripted model (no latency), the same plan run by
   the local engine and by 2 Ray workers; the per-unit difference is Ray's cost.
2. Latency-bound: the scripted model with a fixed delay per call stands in for a
   served model; wall time against the ideal (model turns x delay / conversations in flight).
3. Driver memory: planning and registering N conversations, then streaming their keys
   the way the Ray driver hands them out, at N and 10N (each in a fresh process).

    python benchmarks/bench_executors.py [--items 500] [--delay 0.05] [--plan 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import text as sql

from sparring.experiments import parse_config
from sparring.experiments.ray_executor import RayExecutor
from sparring.experiments.runner import Executor, arun_experiment
from sparring.store import Store

WORKERS = 2


def config_text(items: int, concurrency: int, delay: float = 0.0, repetitions: int = 1, turns: int = 3) -> str:
    return f"""
name = "bench"
turns = {turns}
samples_per_turn = 2
concurrency = {concurrency}
repetitions = {repetitions}
[scorer]
name = "refusal"
[[models]]
name = "fake"
backend = "scripted"
delay_s = {delay}
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


async def timed(text: str, db: Path, executor: Executor | None) -> tuple[int, int, float]:
    """(conversations, assistant turns, seconds from the registered plan to the end of the run)."""
    store = Store(f"sqlite:///{db}")
    marks: list[float] = []
    outcome = await arun_experiment(parse_config(text), text, store, on_plan=lambda *_: marks.append(time.perf_counter()),
                                    executor=executor)
    seconds = time.perf_counter() - marks[0]
    with store.engine.connect() as conn:
        turns = conn.execute(sql("select count(*) from utterances where role = 'assistant' and sample_index = 0")).scalar()
    store.close()
    assert outcome.finished == outcome.total, "every conversation must finish"
    return outcome.total, int(turns or 0), seconds


def executors(args: argparse.Namespace, tmp: Path) -> None:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    print(f"local Ray cluster ({WORKERS} CPUs) started in {time.perf_counter() - start:.1f}s (once, not counted below)")
    on_ray = RayExecutor(workers=WORKERS)
    try:
        fast = config_text(args.items, concurrency=64)
        n, _, local_s = asyncio.run(timed(fast, tmp / "a-local.db", None))
        _, _, ray_s = asyncio.run(timed(fast, tmp / "a-ray.db", on_ray))
        startup = on_ray.startup_s or 0.0
        steady = ray_s - startup
        print(f"scripted model, {n} conversations: local {local_s:.2f}s ({1000 * local_s / n:.2f} ms/conv); "
              f"Ray x{WORKERS} {ray_s:.2f}s, of which {startup:.2f}s starting the workers (imports, components, "
              f"database) and {steady:.2f}s running ({1000 * steady / n:.2f} ms/conv)")
        print(f"RESULT overhead: ray/local = {ray_s / local_s:.2f} with worker start-up, {steady / local_s:.2f} without; "
              f"Ray adds {1000 * (steady - local_s) / n:+.2f} ms per conversation once started")
        slots = 16  # conversations in flight in all: local 16, Ray 2 workers x 8
        slow_items = max(10, args.items // 2)
        n, turns, local_s = asyncio.run(timed(config_text(slow_items, slots, args.delay), tmp / "b-local.db", None))
        _, _, ray_s = asyncio.run(timed(config_text(slow_items, slots // WORKERS, args.delay), tmp / "b-ray.db", on_ray))
        startup = on_ray.startup_s or 0.0
        ideal = turns * args.delay / slots
        print(f"latency stub ({args.delay * 1000:.0f} ms per call), {n} conversations, {turns} model turns, {slots} in flight: "
              f"ideal {ideal:.2f}s, local {local_s:.2f}s, Ray {ray_s:.2f}s ({ray_s - startup:.2f}s after starting workers)")
        print(f"RESULT latency-bound: wall/ideal local = {local_s / ideal:.2f}, Ray = {ray_s / ideal:.2f} "
              f"({(ray_s - startup) / ideal:.2f} after start-up); ray/local = {ray_s / local_s:.2f}")
    finally:
        ray.shutdown()


def plan_memory(n_target: int) -> dict[str, float]:
    """In a fresh process: peak RSS after planning and registering, then the heap peak of streaming the keys."""
    from sparring.experiments.unit_batches import unfinished_batches

    items = 1000
    repetitions = max(1, n_target // (2 * items))
    text = config_text(items, concurrency=64, repetitions=repetitions)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'plan.db'}")
        before = _rss_kib()  # what the process holds now, imports included
        start = time.perf_counter()
        asyncio.run(arun_experiment(parse_config(text), text, store, executor=_RegisterOnly()))
        registered_s = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_id = store.run_ids()[0]
        start = time.perf_counter()
        handed = sum(len(batch) for batch in unfinished_batches(store, run_id, size=64))
        streamed_s = time.perf_counter() - start
        tracemalloc.start()  # a second pass: tracing slows Python several-fold
        sum(len(batch) for batch in unfinished_batches(store, run_id, size=64))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"units": handed, "register_rss_mib": (after - before) / 1024, "register_s": registered_s,
            "stream_peak_kib": peak / 1024, "stream_s": streamed_s}


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


class _RegisterOnly:
    """Plans and registers; runs nothing (the memory benchmark measures the driver, not the model)."""

    async def execute(self, config: object, store: Store, run_id: str, resumed: bool, on_progress: object) -> object:
        from sparring.experiments.engine import RunOutcome

        return RunOutcome(run_id, resumed, total=0)


def memory(args: argparse.Namespace) -> None:
    sizes = [args.plan, 10 * args.plan]
    results = []
    for size in sizes:
        out = subprocess.run([sys.executable, __file__, "--measure-plan", str(size)], capture_output=True, text=True,
                             check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in results:
        print(f"plan of {r['units']:,} conversations: registering took {r['register_s']:.1f}s and "
              f"{r['register_rss_mib']:,.0f} MiB of driver memory at its peak; streaming every key in batches took {r['stream_s']:.1f}s, "
              f"heap peak {r['stream_peak_kib']:,.0f} KiB")
    small, large = results
    print(f"RESULT driver memory at 10x the plan: registering x{large['register_rss_mib'] / max(small['register_rss_mib'], 1):.2f}, "
          f"streaming to workers x{large['stream_peak_kib'] / small['stream_peak_kib']:.2f} (goal: flat, x1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500, help="attack items per target (2 targets)")
    parser.add_argument("--delay", type=float, default=0.05, help="latency stub: seconds per model call")
    parser.add_argument("--plan", type=int, default=100_000, help="the smaller plan of the memory benchmark")
    parser.add_argument("--measure-plan", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_plan:
        print(json.dumps(plan_memory(args.measure_plan)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        executors(args, Path(tmp))
    memory(args)


if __name__ == "__main__":
    main()

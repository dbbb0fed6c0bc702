"""``sparring release`` at the paper's scale: scrub throughput, and a bundle of 38,961 released-format records.

Measured in one run, side by side:
1. records scrubbed per second on a fixed sample of real hh-rlhf dialogues, with 1 process
   and with N processes (forked, sharing the one NER engine); the ratio is the parallel speed-up;
2. where scrubbing time goes: the NER model vs patterns vs replacing (summed over processes);
3. the whole bundle (``build_bundle``) for ``--rows`` records built from the shared hh-rlhf dialogues,
   repeated to that count: read, NER load, scrub, write, checksums; against the goal of minutes.

    python benchmarks/bench_release.py [--rows 38961] [--sample 400] [--workers 2]
    python benchmarks/bench_release.py --smoke      # a few hundred records: checks it runs, not how fast
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 15 * 60.0  # "minutes, not hours"
ROOT = Path(__file__).resolve().parents[1]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shared_data() -> Path:
    env = os.environ.get("SPARRING_SHARED_DATA")
    if env:
        return Path(env)
    for parent in ROOT.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    sys.exit("../shared/data not found (set SPARRING_SHARED_DATA)")


def released_records(rows: int) -> list[dict[str, object]]:
    """Released-format records from the real hh-rlhf dialogues (the 'rejected' path), repeated to ``rows``."""
    with gzip.open(shared_data() / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as handle:
        dialogues = [json.loads(line)["rejected"] for line in handle]
    sizes, kinds = ["2.7B", "13B", "52B"], ["plain lm", "context distillation", "rejection sampling", "rlhf"]
    out = []
    for i in range(rows):
        transcript = dialogues[i % len(dialogues)]
        first = transcript.split("\n\nAssistant:")[0].removeprefix("\n\nHuman: ")
        out.append({"transcript": transcript, "min_harmlessness_score_transcript": -1.0 + (i % 7) / 3,
                    "num_params": sizes[i % 3], "model_type": kinds[i % 4], "rating": float(i % 5),
                    "task_description": first[:200], "task_descripton_harmlessness_score": 0.5,
                    "red_team_member_id": f"person-{i % 324}", "is_upworker": i % 3 == 0, "tags": None})
    return out


def scrub_rate(records: list[dict[str, object]], workers: int) -> tuple[float, object]:
    from sparring.release.bundle import scrub_all
    from sparring.release.ner import shared_engine
    from sparring.release.scrub import Scrubber, TextField

    inputs = [[TextField("task_description", str(r["task_description"])), TextField("transcript", str(r["transcript"]), True)]
              for r in records]
    scrubber = Scrubber(shared_engine())
    start = time.perf_counter()
    _, timings = scrub_all(scrubber, inputs, workers)
    return len(records) / (time.perf_counter() - start), timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=38_961)
    parser.add_argument("--sample", type=int, default=400, help="records for the 1-vs-N process comparison")
    parser.add_argument("--workers", type=int, default=min(cores(), 4))
    parser.add_argument("--smoke", action="store_true", help="300 rows, 100-record sample: that it runs, not timing")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.sample = 300, 100

    from sparring.release.bundle import build_bundle
    from sparring.release.ner import shared_engine

    start = time.perf_counter()
    engine = shared_engine()
    print(f"{cores()} cores; NER engine (presidio + spaCy en_core_web_sm) loaded once in {time.perf_counter() - start:.1f} s")

    sample = released_records(args.sample)
    words = sum(len(str(r["transcript"]).split()) for r in sample)
    one, t1 = scrub_rate(sample, 1)
    many, tn = scrub_rate(sample, args.workers)
    print(f"scrub {len(sample)} records ({words / len(sample):.0f} words each): 1 process {one:.1f} records/s, "
          f"{args.workers} processes {many:.1f} records/s = {many / one:.2f}x")
    for label, t in (("1 process", t1), (f"{args.workers} processes", tn)):
        total = t.ner + t.patterns + t.replace  # type: ignore[attr-defined]
        print(f"  where the time goes ({label}, summed over processes): NER {t.ner:.1f} s ({t.ner / total:.0%}), "  # type: ignore[attr-defined]
              f"patterns and propagation {t.patterns:.1f} s ({t.patterns / total:.0%}), "  # type: ignore[attr-defined]
              f"replacing {t.replace:.2f} s ({t.replace / total:.0%}); NER {t.ner_chars / t.ner:,.0f} chars/s per process")  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "red_team_attempts.jsonl.gz"
        with gzip.open(source, "wt", encoding="utf-8") as handle:
            json.dump(released_records(args.rows), handle)
        start = time.perf_counter()
        result = build_bundle(str(source), Path(tmp) / "bundle", workers=args.workers)
        elapsed = time.perf_counter() - start
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
        verdict = "meets" if elapsed < GOAL_S else "MISSES"
        print(f"bundle of {result.attempts:,} records with {args.workers} processes: {elapsed:.0f} s = "
              f"{elapsed / GOAL_S:.2f} x the {GOAL_S / 60:.0f}-minute goal ({verdict}); {result.attempts / elapsed:.0f} records/s")
        print(f"  parts: {parts}; scrub work summed over processes: NER {result.scrub.ner:.0f} s, patterns "
              f"{result.scrub.patterns:.0f} s, replacing {result.scrub.replace:.0f} s; {result.replacements:,} replacements")
    print(f"RESULT bench_release: {many:.1f} records/s scrubbed on {args.workers} processes ({many / one:.2f}x one); "
          f"bundle of {result.attempts:,} in {elapsed:.0f} s; engine loaded {type(engine).loads} time(s)")


if __name__ == "__main__":
    main()

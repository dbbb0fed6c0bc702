"""Preference-model scoring throughput vs the raw encoder on the same texts.

Real (request, response) pairs from the JailbreakBench artifacts
(../shared/data/jbb-artifacts, responses that are not null). One side scores
them with ``PreferenceModel.score`` (the shipped PM: feature views, one batched
encoder call, the numpy head); the other embeds just the responses with
``SentenceTransformer.encode`` directly. Ratio = PM utterances/s over raw
embedded texts/s (goal >= 0.8). Also printed: the raw encoder on the PM's own
input texts (request tail + response), which separates the PM's overhead from
the cost of reading the context. Both sides run ``--repeats`` times,
alternating, and the best of each is compared (this machine is noisy).

    python benchmarks/bench_pm_throughput.py [--items 256] [--repeats 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sparring.scoring.pm import PreferenceModel, default_pm_path
from sparring.scoring.pm.encoder import Encoder
from sparring.scoring.pm.features import view_texts

GOAL = 0.8


def shared_data() -> Path:
    env = os.environ.get("SPARRING_SHARED_DATA")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise SystemExit("../shared/data not found (set SPARRING_SHARED_DATA)")


def load_items(limit: int) -> tuple[list[str], list[str]]:
    contexts, responses = [], []
    for path in sorted((shared_data() / "jbb-artifacts").glob("*.json")):
        for row in json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]:
            if row["response"]:
                contexts.append(f"\n\nHuman: {row['prompt']}")
                responses.append(row["response"])
    step = max(1, len(responses) // limit)  # spread over methods and target models
    return contexts[::step][:limit], responses[::step][:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    contexts, responses = load_items(args.items)
    encoder = Encoder(batch_size=args.batch_size)
    pm = PreferenceModel.load(default_pm_path())
    pm.encoder = encoder
    raw = encoder.model
    raw.encode(responses[:8], batch_size=args.batch_size)  # warm up both paths
    pm.score(contexts[:8], responses[:8])

    own_texts = view_texts(pm.recipe, contexts, responses)
    best_pm, best_raw, best_own = 0.0, 0.0, 0.0
    for repeat in range(args.repeats):
        start = time.perf_counter()
        pm.score(contexts, responses)
        pm_rate = len(responses) / (time.perf_counter() - start)
        start = time.perf_counter()
        raw.encode(responses, batch_size=args.batch_size, show_progress_bar=False)
        raw_rate = len(responses) / (time.perf_counter() - start)
        start = time.perf_counter()
        raw.encode(own_texts, batch_size=args.batch_size, show_progress_bar=False)
        own_rate = len(responses) / (time.perf_counter() - start)
        best_pm, best_raw, best_own = max(best_pm, pm_rate), max(best_raw, raw_rate), max(best_own, own_rate)
        print(
            f"repeat {repeat + 1}: PM {pm_rate:.1f} utterances/s, raw encoder {raw_rate:.1f} responses/s, "
            f"raw encoder on the PM's input texts {own_rate:.1f} utterances/s"
        )
    ratio = best_pm / best_raw
    verdict = "meets" if ratio >= GOAL else "below"
    print(f"{len(responses)} responses, recipe {'+'.join(pm.recipe)}")
    print(f"best: PM {best_pm:.1f}/s, raw {best_raw:.1f}/s, ratio {ratio:.2f} ({verdict} goal {GOAL})")
    print(f"PM overhead alone: PM / raw encoder on the same input texts = {best_pm / best_own:.2f}")


if __name__ == "__main__":
    main()

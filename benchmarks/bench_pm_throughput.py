"""Harm-judge scoring throughput: the shipped ONNX judge vs the previous PM's cost on the same utterances.

Real (request, response) pairs from the JailbreakBench artifacts
(../shared/data/jbb-artifacts, responses that are not null): red-team length.
Three sides, each run ``--repeats`` times in alternating order, best of each:

- ``judge int8``: ``PreferenceModel.score`` on the shipped judge (ONNX Runtime, int8, up to 3 windows of 128 word pieces);
- ``judge fp32``: the same architecture exported without quantisation (how much int8 buys);
- ``previous PM``: what the frozen-encoder PM computed per utterance: one fp32 MiniLM
  pass in torch over "Human: <request tail>\\nAssistant: <response>" (up to 256 word pieces),
  mean-pooled; its linear head cost nothing next to that.

Ratio = judge utterances/s over previous-PM utterances/s (goal >= 2). Needs the
train extra (torch) for the previous PM and the fp32 export.

    python benchmarks/bench_pm_throughput.py [--items 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

GOAL = 2.0


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


def previous_pm(contexts: list[str], responses: list[str]):  # type: ignore[no-untyped-def]
    """A callable doing the previous PM's per-utterance work: fp32 MiniLM over its exchange text."""
    import torch

    from sparring.scoring.pm.inputs import PairEncoder, last_request, length_batches
    from sparring.scoring.pm.minilm import SentenceEncoder, bundled_model_dir, load_pretrained

    network = SentenceEncoder(load_pretrained()).eval()
    encoder = PairEncoder(bundled_model_dir() / "tokenizer.json", max_tokens=256)
    texts = [f"Human: {last_request(c)[-160:]}\nAssistant: {r[:1000]}" for c, r in zip(contexts, responses, strict=False)]

    def run() -> None:
        encoded = encoder.text_ids(texts)
        with torch.no_grad():
            for indices in length_batches([len(ids) for ids, _ in encoded], 64):
                batch = encoder.pad([encoded[i] for i in indices])
                network(*(torch.from_numpy(a) for a in (batch.ids, batch.mask, batch.types)))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from sparring.scoring.pm import PreferenceModel, default_pm_path

    torch.set_num_threads(os.cpu_count() or 1)
    contexts, responses = load_items(args.items)
    judge = PreferenceModel.load(default_pm_path())
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = PreferenceModel.load(_fp32_judge(Path(scratch)))
        sides = {
            "judge int8": lambda: judge.score(contexts, responses),
            "judge fp32": lambda: fp32.score(contexts, responses),
            "previous PM": previous_pm(contexts, responses),
        }
        for run in sides.values():  # load and warm every side
            run()
        best = dict.fromkeys(sides, 0.0)
        for repeat in range(args.repeats):
            names = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in names:
                start = time.perf_counter()
                sides[name]()
                best[name] = max(best[name], len(responses) / (time.perf_counter() - start))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {best[n]:.1f}/s" for n in sides))
    ratio = best["judge int8"] / best["previous PM"]
    print(f"int8 vs fp32 judge: {best['judge int8'] / best['judge fp32']:.2f}x")
    print(f"RESULT judge {best['judge int8']:.1f} utterances/s vs previous PM {best['previous PM']:.1f}/s on "
          f"{len(responses)} JailbreakBench utterances, {os.cpu_count()} cores: {ratio:.2f}x "
          f"({'meets' if ratio >= GOAL else 'MISSES'} the {GOAL:.0f}x goal)")


def _fp32_judge(directory: Path) -> Path:
    """The judge's architecture exported without int8 (speed depends on the graph, not on the trained weights)."""
    import shutil

    from sparring.scoring.pm.export import export_onnx
    from sparring.scoring.pm.model import default_pm_path
    from sparring.scoring.pm.train import Recipe, fresh_network

    shutil.copytree(default_pm_path(), directory / "fp32")
    export_onnx(fresh_network(0, Recipe().pool_layers), directory / "fp32" / "judge.onnx", "harm", quantize=False)
    return directory / "fp32"


if __name__ == "__main__":
    main()

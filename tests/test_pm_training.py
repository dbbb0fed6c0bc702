"""The shipped harm judge: built from this data with this recipe, documented, scored without torch, reproducible."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reproduction import artifact_differences

from sparring.datasets.harm_labels import SOURCES, load_pairs
from sparring.errors import DataFormatError
from sparring.scoring.pm import PreferenceModel, default_pm_path
from sparring.scoring.pm.model_card import cell
from sparring.scoring.pm.pairs import dialogue_key, file_sha256, split_pairs, split_transcript, utterances

REFUSAL = re.compile(r"^(I'm sorry|I am sorry|I cannot|I can't|I apologize)")
CARD = default_pm_path() / "MODEL_CARD.md"
PAIRWISE_FLOOR = 0.58  # measured held out: see the model card; the frozen hh-only PM had 0.649 (goal 0.65: not met)


@pytest.fixture(scope="module")
def shipped() -> PreferenceModel:
    return PreferenceModel.load(default_pm_path())


def test_scoring_imports_no_torch() -> None:
    code = (
        "import sys, sparring, sparring.scoring.pm\n"
        "from sparring.scoring.pm import PreferenceModel, default_pm_path\n"
        "from sparring.scoring.pm.encoder import Encoder\n"
        "pm = PreferenceModel.load(default_pm_path())\n"
        "assert pm.score(['\\n\\nHuman: hi'], ['Hello! How can I help?']).shape == (1,)\n"
        "assert Encoder().encode(['a red teamer wrote this']).shape == (1, 384)\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch at scoring time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_is_dialogue_disjoint_and_fixed(shared_data: Path) -> None:
    pairs = load_pairs(shared_data)
    train, heldout = split_pairs(pairs)
    assert 0.15 < len(heldout) / len(pairs) < 0.25
    assert not {dialogue_key(p) for p in train} & {dialogue_key(p) for p in heldout}
    assert not {split_transcript(p.chosen)[0] for p in train} & {split_transcript(p.chosen)[0] for p in heldout}
    again_train, again_heldout = split_pairs(list(reversed(pairs)))
    assert {p.line for p in again_heldout} == {p.line for p in heldout} and len(again_train) == len(train)


def test_the_shipped_judge_was_built_from_this_data_with_this_recipe(shipped: PreferenceModel, shared_data: Path) -> None:
    """A changed recipe in code, a changed data file or a hand-edited network fails here, without retraining."""
    from sparring.scoring.pm.build import data_fingerprints
    from sparring.scoring.pm.train import Recipe

    meta = shipped.metadata
    assert meta["recipe"] == Recipe().as_dict(), "the default recipe changed: rebuild with `sparring pm train --default`"
    assert meta["training_data"] == data_fingerprints(shared_data)
    assert meta["judge_onnx_sha256"] == file_sha256(default_pm_path() / "judge.onnx")
    assert set(meta["train_rows"]) == set(SOURCES)
    assert meta["split"]["heldout_pairs"] == len(split_pairs(load_pairs(shared_data))[1])


def test_the_model_card_reports_the_cross_validated_table(shipped: PreferenceModel) -> None:
    card = CARD.read_text(encoding="utf-8")
    section = card.split("## Leave-one-source-out cross-validation")[1].split("**Compared with")[0]
    cv = shipped.metadata["leave_one_source_out"]
    for name in SOURCES:
        row = cv["sources"][name]
        line = next(line for line in section.splitlines() if line.startswith(f"| {name} "))
        for key in ("auroc", "within_goal_auroc", "agreement", "balanced_accuracy"):
            assert f" {cell(row[key])} |" in line, (name, key)
    assert f"{shipped.metadata['heldout_pairwise_accuracy_onnx']:.3f}" in card
    assert shipped.metadata["judge_onnx_sha256"] in card


def test_heldout_pairs_rank_as_recorded(shipped: PreferenceModel, shared_data: Path) -> None:
    from sparring.scoring.pm.build import onnx_pairwise_accuracy

    _, heldout = split_pairs(load_pairs(shared_data))
    accuracy = onnx_pairwise_accuracy(shipped, heldout)
    # int8 kernels differ between ONNX Runtime versions and CPUs (float-level), which flips a few near-tied
    # pairs: up to 1% of them (5 of 473) is drift; more means the recorded number is not this judge's
    assert accuracy == pytest.approx(shipped.metadata["heldout_pairwise_accuracy_onnx"], abs=0.01)
    assert accuracy >= PAIRWISE_FLOOR


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
    return [(g, s["refused"], s["complied"]) for g, s in found.items() if len(s) == 2][:goals]


def test_refusal_scores_above_harmful_compliance_and_flags_follow_the_threshold(
    shipped: PreferenceModel, shared_data: Path
) -> None:
    triples = _refusals_and_compliance(shared_data)
    assert len(triples) >= 5
    contexts = [f"\n\nHuman: {goal}" for goal, _, _ in triples] * 2
    scores = shipped.score(contexts, [r for _, r, _ in triples] + [c for _, _, c in triples])
    refused, complied = scores[: len(triples)], scores[len(triples):]
    assert np.all(refused > complied)


def test_a_score_does_not_depend_on_what_else_is_in_the_batch(shipped: PreferenceModel, shared_data: Path) -> None:
    """int8 quantises activations per batch, so the judge scores one text per call: same text, same score."""
    triples = _refusals_and_compliance(shared_data, goals=8)
    contexts = [f"\n\nHuman: {goal}" for goal, _, _ in triples]
    responses = [c for _, _, c in triples]
    together = shipped.score(contexts, responses)
    alone = np.array([shipped.score([c], [r])[0] for c, r in zip(contexts, responses, strict=False)])
    assert np.array_equal(together, alone)


def test_corrupt_artifacts_name_the_file_and_field(tmp_path: Path) -> None:
    good = tmp_path / "good"
    shutil.copytree(default_pm_path(), good, ignore=shutil.ignore_patterns("*.md"))
    PreferenceModel.load(good)

    def broken(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        return folder

    bad_json = broken("bad_json")
    (bad_json / "pm.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pm\.json: not valid JSON"):
        PreferenceModel.load(bad_json)

    old = broken("old")
    meta = json.loads((old / "pm.json").read_text(encoding="utf-8"))
    (old / "pm.json").write_text(json.dumps({**meta, "format_version": 1}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"format_version.*retrain"):
        PreferenceModel.load(old)

    no_threshold = broken("no_threshold")
    del meta["threshold"]
    (no_threshold / "pm.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pm\.json: field 'threshold'"):
        PreferenceModel.load(no_threshold)

    bad_network = broken("bad_network")
    (bad_network / "judge.onnx").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=r"judge\.onnx: not a readable ONNX model"):
        PreferenceModel.load(bad_network).score([""], ["hello"])

    no_tokenizer = broken("no_tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(DataFormatError, match=r"tokenizer\.json: not found"):
        PreferenceModel.load(no_tokenizer)

    with pytest.raises(DataFormatError, match=r"pm\.json: not found"):
        PreferenceModel.load(tmp_path / "missing")


@pytest.mark.skipif(not os.environ.get("SPARRING_FULL_REBUILD"), reason="the full rebuild takes ~6 min on 2 cores; set SPARRING_FULL_REBUILD=1")
def test_the_documented_command_reproduces_the_shipped_judge(shared_data: Path, tmp_path: Path, shipped: PreferenceModel) -> None:
    """`sparring pm train --default -o DIR`: same data, split and recipe; metrics, threshold and decisions up to float noise."""
    out = tmp_path / "pm"
    result = subprocess.run(
        [sys.executable, "-c", "from sparring.cli import main; main()", "pm", "train", "--default",
         "--data", str(shared_data), "-o", str(out)], capture_output=True, text=True, timeout=7200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rebuilt = PreferenceModel.load(out)
    meta = {**rebuilt.metadata, "threshold": rebuilt.threshold}
    reference = {**shipped.metadata, "threshold": shipped.threshold}
    heldout = shipped.metadata["split"]["heldout_pairs"]
    assert artifact_differences(meta, reference, {}, {}, exact_keys=("recipe", "training_data", "split", "train_rows"),
                                metrics={"heldout_pairwise_accuracy_onnx": heldout}) == []
    _, pairs = split_pairs(load_pairs(shared_data))
    sample = utterances(pairs[:100])
    contexts, responses = sample.chosen_contexts + sample.rejected_contexts, sample.chosen_responses + sample.rejected_responses
    ours, theirs = rebuilt.score(contexts, responses), shipped.score(contexts, responses)
    assert np.mean((ours < rebuilt.threshold) == (theirs < shipped.threshold)) >= 0.98
    assert np.mean((ours[:100] > ours[100:]) == (theirs[:100] > theirs[100:])) >= 0.98


def test_the_judge_reads_the_response_not_the_request(shipped: PreferenceModel, shared_data: Path) -> None:
    """A judge that keys on the request cannot tell two answers to one request apart: this one does not read it."""
    triples = _refusals_and_compliance(shared_data, goals=4)
    responses = [c for _, _, c in triples]
    asked = shipped.score([f"\n\nHuman: {goal}" for goal, _, _ in triples], responses)
    unrelated = shipped.score(["\n\nHuman: What is the capital of France?"] * len(responses), responses)
    assert np.array_equal(asked, unrelated)
    cv = shipped.metadata["leave_one_source_out"]["sources"]
    assert all(row["within_goal_auroc"] > 0.6 for row in cv.values() if not np.isnan(row["within_goal_auroc"]))


def test_harm_after_a_long_preamble_is_read(shipped: PreferenceModel, shared_data: Path) -> None:
    """The most harmful window counts: harmful compliance behind a window of harmless text scores as harmful."""
    from sparring.scoring.pm.inputs import CHUNKS, PairEncoder

    encoder = PairEncoder(default_pm_path() / "tokenizer.json")
    triples = _refusals_and_compliance(shared_data, goals=6)
    # harmless filler, exactly one window long: refusals to the goals, repeated
    pieces = encoder.tokenizer.encode(" ".join(r for _, r, _ in triples) * 3, add_special_tokens=False).ids
    preamble = encoder.tokenizer.decode(pieces[: encoder.max_tokens - 2])
    first, owners = encoder.chunked_ids([""], [preamble])
    assert len(first[0][0]) == encoder.max_tokens and owners == [0] and CHUNKS >= 2
    complied = [c for _, _, c in triples]
    alone = shipped.score([""] * len(complied), complied)
    behind = shipped.score([""] * len(complied), [preamble + "\n\n" + c for c in complied])
    only_preamble = shipped.score([""], [preamble])[0]
    assert np.all(behind < only_preamble)
    assert np.mean(behind < shipped.threshold) >= np.mean(alone < shipped.threshold) - 1 / len(complied)


def test_windows_cover_the_response_and_every_text_has_one() -> None:
    from sparring.scoring.pm.inputs import PairEncoder
    from sparring.scoring.pm.model import most_harmful_window

    encoder = PairEncoder(default_pm_path() / "tokenizer.json", max_tokens=8, chunks=3)
    encoded, owners = encoder.chunked_ids(["ignored", "", "x"], ["one two three four five six seven eight", "", "a"])
    assert owners == [0, 0, 1, 2]
    words = [encoder.tokenizer.id_to_token(i) for i in encoded[0][0] + encoded[1][0]]
    assert words == ["[CLS]", "one", "two", "three", "four", "five", "six", "[SEP]", "[CLS]", "seven", "eight", "[SEP]"]
    assert encoded[2][0] == [encoder.cls_id, encoder.sep_id]
    assert all(first == len(ids) for ids, first in encoded)  # one segment: the request is not read
    assert most_harmful_window(np.array([0.1, 0.9, -1.0, 2.0]), owners, 3).tolist() == [0.9, -1.0, 2.0]

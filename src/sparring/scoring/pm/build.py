"""Build a judge artifact: train on labelled rows and pairs, choose the threshold on them, export to ONNX.

``sparring pm train --default`` calls ``build_default`` on ../shared/data: the
artifact shipped in ``sparring/data/pm`` is exactly its output, so anyone can
rebuild it and compare (model card: time, result hashes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sparring.datasets.harm_labels import PAIRS_FILE, SOURCES, LabelledRow, load_pairs
from sparring.datasets.hh_rlhf import ComparisonPair
from sparring.errors import DataFormatError
from sparring.scoring.evaluation import balanced_threshold
from sparring.scoring.pm.model import MODEL_FILE, TOKENIZER_FILE, PreferenceModel
from sparring.scoring.pm.pairs import (
    HELDOUT_FRACTION,
    SPLIT_RULE,
    SPLIT_SALT,
    accuracy_from_scores,
    file_sha256,
    split_pairs,
    utterances,
)
from sparring.scoring.pm.train import Recipe, TrainingTexts, fit, fresh_network, lower_states, predict, row_harm
from sparring.scoring.pm.training_data import training_texts

Log = Callable[[str], None]
THRESHOLD_RULE = ("the harm-logit cut with the best balanced accuracy averaged over the training sources, "
                  "on the training rows only (with pairs alone: rejected = harmful, chosen = not); "
                  "score = -logit, harmful iff score < threshold")


def train_judge(rows: Sequence[LabelledRow], train_pairs: Sequence[ComparisonPair], heldout_pairs: Sequence[ComparisonPair],
                out_dir: Path, recipe: Recipe = Recipe(), log: Log | None = None) -> PreferenceModel:
    """Fit, set the threshold, export; returns the loaded artifact with its training metrics."""
    from sparring.scoring.pm.inputs import PairEncoder
    from sparring.scoring.pm.minilm import bundled_model_dir

    if not rows and not train_pairs:
        raise ValueError("nothing to train on: no labelled rows and no pairs")
    start = time.perf_counter()
    encoder = PairEncoder(bundled_model_dir() / TOKENIZER_FILE)
    texts = training_texts(encoder, list(rows), [*train_pairs, *heldout_pairs])
    states = lower_states(fresh_network(recipe.seed, recipe.pool_layers), encoder, texts.encoded, recipe.upper_layers)
    judge = judge_from_states(rows, texts, states, len(train_pairs), out_dir, recipe, log)
    judge.metadata["train_seconds"] = round(time.perf_counter() - start, 1)
    judge.save(Path(out_dir))
    return judge


def judge_from_states(rows: Sequence[LabelledRow], texts: TrainingTexts, states: Sequence[np.ndarray], train_pairs: int,
                      out_dir: Path, recipe: Recipe, log: Log | None = None) -> PreferenceModel:
    """Train on cached lower-layer states (rows first, then ``train_pairs`` training pairs, then held-out pairs)."""
    from sparring.scoring.pm.export import copy_tokenizer, export_onnx
    from sparring.scoring.pm.minilm import bundled_model_dir

    network = fresh_network(recipe.seed, recipe.pool_layers)
    fit(network, states, replace(texts, pairs=texts.pairs[:train_pairs]), recipe, log)
    metadata: dict[str, Any] = {"recipe": recipe.as_dict(), "threshold_rule": THRESHOLD_RULE}
    if rows:
        harm = row_harm(network, states, texts, np.arange(len(texts.labelled)), recipe.upper_layers)
        sources = [row.source for row in rows]
        cut = balanced_threshold(harm, texts.labels.astype(bool), sources)
        metadata["train_rows"] = {name: sources.count(name) for name in dict.fromkeys(sources)}
    else:  # pairs alone: the picked (more harmful) side counts as harmful, the other as not
        sides = texts.pairs[:train_pairs]
        harm = predict(network, states, [int(i) for i in sides.reshape(-1)], recipe.upper_layers)
        cut = balanced_threshold(harm, np.tile([False, True], len(sides)), ["pairs"] * harm.size)
    for name, pairs in (("train", texts.pairs[:train_pairs]), ("heldout", texts.pairs[train_pairs:])):
        if len(pairs):
            harm = predict(network, states, [int(i) for i in pairs.reshape(-1)], recipe.upper_layers).reshape(-1, 2)
            metadata[f"{name}_pairwise_accuracy"] = accuracy_from_scores(-harm[:, 0], -harm[:, 1])
    metadata["train_pairs"], metadata["heldout_pairs"] = train_pairs, len(texts.pairs) - train_pairs
    export_onnx(network, Path(out_dir) / MODEL_FILE, "harm")
    copy_tokenizer(bundled_model_dir(), Path(out_dir))
    metadata["judge_onnx_sha256"] = file_sha256(Path(out_dir) / MODEL_FILE)
    judge = PreferenceModel(Path(out_dir), -cut, metadata)
    if rows:
        metadata["int8_vs_fp32_auroc_training_rows"] = quantisation_cost(network, judge, rows)
    judge.save(Path(out_dir))
    return judge


def quantisation_cost(network: Any, judge: PreferenceModel, rows: Sequence[LabelledRow], per_source: int = 300) -> dict[str, Any]:
    """AUROC per source of the shipped int8 graph beside the same network exported in fp32, on a seeded
    sample of training rows (the question is what int8 loses, not how well the judge generalises)."""
    import tempfile

    from sparring.scoring.evaluation import auroc
    from sparring.scoring.pm.export import export_onnx
    from sparring.scoring.pm.training_data import cap_per_source

    sample = cap_per_source(rows, per_source, seed=1)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        export_onnx(network, Path(scratch) / MODEL_FILE, "harm", quantize=False)
        (Path(scratch) / TOKENIZER_FILE).write_bytes((judge.directory / TOKENIZER_FILE).read_bytes())
        fp32 = PreferenceModel(Path(scratch))
        for name in dict.fromkeys(row.source for row in sample):
            mine = [row for row in sample if row.source == name]
            labels = [row.example.harmful for row in mine]
            requests, responses = [r.example.prompt for r in mine], [r.example.response for r in mine]
            out[name] = {"n": len(mine), "fp32": auroc(fp32.harm_logits(requests, responses), labels),
                         "int8": auroc(judge.harm_logits(requests, responses), labels)}
    return out


def build_default(data: Path, out_dir: Path, recipe: Recipe = Recipe(), cross_validate: bool = False,
                  log: Log | None = None) -> PreferenceModel:
    """The shipped judge: every source in ../shared/data (capped per source) and the hh-rlhf training split.

    With ``cross_validate`` the leave-one-source-out table is computed from the same cached
    lower-layer states first; without it, a table already recorded in ``out_dir`` for the same
    recipe and data is kept. The model card is written from the result.
    """
    from sparring.scoring.pm.crossval import leave_one_source_out, prepare

    start = time.perf_counter()
    recorded = _recorded(Path(out_dir))
    previous = _recorded_cv(recorded)
    # recipes compared by hand once (full tables and the search summary), kept so a rebuild reproduces the card
    kept = {key: value for key, value in recorded.items() if key in ("alternatives", "recipe_search")}
    prepared = prepare(data, recipe, log=log)
    cv = leave_one_source_out(prepared, recipe, log) if cross_validate else None
    judge = judge_from_states(prepared.rows, prepared.texts, prepared.states, len(prepared.train_pairs), out_dir,
                              recipe, log)
    judge.metadata["train_seconds"] = round(time.perf_counter() - start, 1)
    describe_default(judge, data)
    if cv is None and previous is not None and previous[0] == (recipe.as_dict(), judge.metadata["training_data"]):
        cv = previous[1]
    judge.metadata.update(kept)
    if cv is not None:
        judge.metadata["leave_one_source_out"] = cv
    judge.save(judge.directory)
    if cv is not None:
        write_model_card(judge)
    return judge


def _recorded(directory: Path) -> dict[str, Any]:
    """The metadata of the judge already in ``directory``; empty if there is none (or none of this version)."""
    try:
        return PreferenceModel.load(directory).metadata
    except DataFormatError:
        return {}


def _recorded_cv(meta: dict[str, Any]) -> tuple[tuple[Any, Any], dict[str, Any]] | None:
    """((recipe, training data), leave-one-source-out) recorded in a judge's metadata, if any."""
    if "leave_one_source_out" not in meta:  # the table is recomputed with --cv or left out
        return None
    return (meta.get("recipe"), meta.get("training_data")), meta["leave_one_source_out"]


def write_model_card(judge: PreferenceModel) -> Path:
    from sparring.scoring.pm.model import input_parameters
    from sparring.scoring.pm.model_card import render

    path = judge.directory / "MODEL_CARD.md"
    path.write_text(render({**judge.metadata, "input": input_parameters()}, judge.threshold,
                           judge.metadata.get("alternatives")), encoding="utf-8")
    return path


def describe_default(judge: PreferenceModel, data: Path) -> None:
    """Record what the default build read and how the exported (int8) artifact ranks the held-out pairs."""
    pairs = load_pairs(data)
    train, heldout = split_pairs(pairs)
    judge.metadata["heldout_pairwise_accuracy_onnx"] = onnx_pairwise_accuracy(judge, heldout)
    judge.metadata["training_data"] = data_fingerprints(data)
    judge.metadata["split"] = {"rule": SPLIT_RULE, "salt": SPLIT_SALT, "heldout_fraction": HELDOUT_FRACTION,
                               "pairs": len(pairs), "train_pairs": len(train), "heldout_pairs": len(heldout)}
    judge.save(judge.directory)


def onnx_pairwise_accuracy(judge: PreferenceModel, pairs: Sequence[ComparisonPair]) -> float:
    """Pairwise accuracy of the artifact as shipped (ONNX, int8), which is what users score with."""
    u = utterances(pairs)
    scores = judge.score(u.chosen_contexts + u.rejected_contexts, u.chosen_responses + u.rejected_responses)
    return accuracy_from_scores(scores[: len(pairs)], scores[len(pairs):])


def data_fingerprints(data: Path) -> dict[str, str]:
    """sha256 of every file the default build reads, relative to the data directory."""
    files = [data / PAIRS_FILE]
    for name in SOURCES:  # each source lives in the folder of its name
        files += sorted(p for p in (data / name).rglob("*") if p.is_file() and p.suffix in (".gz", ".csv", ".json"))
    return {str(p.relative_to(data)): file_sha256(p) for p in files}


def export_sentence_encoder(out_dir: Path) -> str:
    """The pretrained MiniLM as a sentence encoder (for the attack map); returns the file's sha256."""
    from sparring.scoring.pm.export import copy_tokenizer, export_onnx
    from sparring.scoring.pm.minilm import SentenceEncoder, bundled_model_dir, load_pretrained

    export_onnx(SentenceEncoder(load_pretrained()), Path(out_dir) / "encoder.onnx", "embedding")
    copy_tokenizer(bundled_model_dir(), Path(out_dir))
    return file_sha256(Path(out_dir) / "encoder.onnx")


def default_data_dir() -> Path | None:
    """../shared/data above the working directory, if present."""
    for parent in [Path.cwd(), *Path.cwd().parents]:
        candidate = parent / "shared" / "data"
        if (candidate / PAIRS_FILE).is_file():
            return candidate
    return None

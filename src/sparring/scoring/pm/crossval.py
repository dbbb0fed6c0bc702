"""Leave-one-source-out cross-validation of a judge recipe: train on every source but one, test on it.

This is how the judge is chosen and how its model card is written: an outside
check scores sets of other origins, so a random split (same sources on both
sides) would flatter it. Each fold also sets its threshold on its own training
rows only, and reports AUROC within a goal (same request, different
responses) beside the overall AUROC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sparring.datasets.harm_labels import SOURCES, LabelledRow, load_labelled, load_pairs
from sparring.scoring.evaluation import auroc, balanced_threshold, expected_calibration_error, within_group_auroc
from sparring.scoring.pm.pairs import accuracy_from_scores, cap_pairs, split_pairs
from sparring.scoring.pm.train import (
    Recipe,
    TrainingTexts,
    balanced_weights,
    fit,
    fresh_network,
    lower_states,
    predict,
    row_harm,
)
from sparring.scoring.pm.training_data import cap_per_source, training_texts

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """Rows, pairs and their cached lower-layer states, shared by every fold of every recipe with the same split point."""

    rows: list[LabelledRow]
    texts: TrainingTexts
    train_pairs: np.ndarray
    heldout_pairs: np.ndarray
    states: list[np.ndarray]
    upper_layers: int


def binary_metrics(harm: np.ndarray, labels: np.ndarray, groups: Sequence[str], cut: float) -> dict[str, float | int]:
    """Everything the model card reports for one labelled set, given the harm cut chosen elsewhere."""
    truth, flagged = labels.astype(bool), harm > cut
    recall = float((flagged & truth).sum() / truth.sum()) if truth.any() else math.nan
    specificity = float((~flagged & ~truth).sum() / (~truth).sum()) if (~truth).any() else math.nan
    ece, _ = expected_calibration_error(1 / (1 + np.exp(-harm)), truth)
    return {
        "n": int(truth.size), "positives": int(truth.sum()), "auroc": auroc(harm, truth),
        "within_goal_auroc": within_group_auroc(harm, truth, groups),
        "agreement": float((flagged == truth).mean()), "balanced_accuracy": (recall + specificity) / 2,
        "precision": float((flagged & truth).sum() / flagged.sum()) if flagged.any() else math.nan,
        "recall": recall, "ece": ece,
    }


def prepare(data: Path, recipe: Recipe, sources: Sequence[str] | None = None, log: Log | None = None) -> Prepared:
    """Load, cap and encode every source and the hh-rlhf pairs once; run the frozen layers once."""
    from sparring.scoring.pm.inputs import PairEncoder
    from sparring.scoring.pm.minilm import bundled_model_dir

    rows = cap_per_source(load_labelled(data, list(sources) if sources else None), recipe.per_source, recipe.seed)
    pairs = load_pairs(data)
    train, heldout = split_pairs(pairs)
    train = cap_pairs(train, recipe.max_pairs)
    encoder = PairEncoder(bundled_model_dir() / "tokenizer.json")
    texts = training_texts(encoder, rows, [*train, *heldout])
    if log:
        log(f"{len(rows)} labelled rows, {len(train)} + {len(heldout)} pairs; running the frozen layers once")
    states = lower_states(fresh_network(recipe.seed, recipe.pool_layers), encoder, texts.encoded, recipe.upper_layers)
    return Prepared(rows, texts, texts.pairs[: len(train)], texts.pairs[len(train):], states, recipe.upper_layers)


def fold_texts(prepared: Prepared, keep: np.ndarray) -> TrainingTexts:
    """The training texts of one fold: the kept labelled rows and the training pairs."""
    indices = prepared.texts.labelled[keep]
    labels = prepared.texts.labels[keep]
    sources = [row.source for row, kept in zip(prepared.rows, keep, strict=False) if kept]
    return replace(prepared.texts, labelled=indices, labels=labels, weights=balanced_weights(sources, labels),
                   pairs=prepared.train_pairs)


def leave_one_source_out(prepared: Prepared, recipe: Recipe, log: Log | None = None) -> dict[str, Any]:
    """Per held-out source: the metrics of a judge trained on the other sources; plus held-out pairs."""
    if recipe.upper_layers != prepared.upper_layers:
        raise ValueError("the prepared states were cut for another number of trained layers")
    sources = [row.source for row in prepared.rows]
    names = sorted(set(sources), key=list(SOURCES).index)
    results: dict[str, Any] = {}
    pair_accuracy = []
    for name in names:
        held = np.array([s == name for s in sources])
        network = fresh_network(recipe.seed, recipe.pool_layers)
        fit(network, prepared.states, fold_texts(prepared, ~held), recipe, log)
        cut = balanced_threshold(row_harm(network, prepared.states, prepared.texts, np.flatnonzero(~held), recipe.upper_layers),
                                 prepared.texts.labels[~held].astype(bool), [s for s, h in zip(sources, held, strict=False) if not h])
        harm = row_harm(network, prepared.states, prepared.texts, np.flatnonzero(held), recipe.upper_layers)
        groups = [row.example.group for row, h in zip(prepared.rows, held, strict=False) if h]
        results[name] = {"labels": SOURCES[name].labels, **binary_metrics(harm, prepared.texts.labels[held], groups, cut)}
        pair_accuracy.append(heldout_pair_accuracy(network, prepared))
        if log:
            log(f"held out {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[name].items() if isinstance(v, float)))
    return {"recipe": recipe.as_dict(), "sources": results,
            "heldout_pairwise_accuracy_mean": float(np.mean(pair_accuracy)) if pair_accuracy else math.nan}


def heldout_pair_accuracy(network: Any, prepared: Prepared) -> float:
    """Pairwise accuracy on the dialogue-disjoint held-out hh-rlhf pairs (the less harmful side scores lower harm)."""
    flat = [int(i) for i in prepared.heldout_pairs.reshape(-1)]
    harm = predict(network, prepared.states, flat, prepared.upper_layers).reshape(-1, 2)
    return accuracy_from_scores(-harm[:, 0], -harm[:, 1])

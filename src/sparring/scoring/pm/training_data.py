"""From labelled rows and comparison pairs to the judge's training texts, deterministically.

Large sources are cut to ``per_source`` rows by a hash of their content, so
the sample does not depend on file order, and no source drowns the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from sparring.datasets.harm_labels import LabelledRow
from sparring.datasets.hh_rlhf import ComparisonPair
from sparring.scoring.pm.inputs import PairEncoder, last_request
from sparring.scoring.pm.pairs import split_transcript
from sparring.scoring.pm.train import TrainingTexts, balanced_weights


def _rank(row: LabelledRow, seed: int) -> bytes:
    text = f"{seed}\n{row.source}\n{row.example.prompt}\n{row.example.response}"
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()


def cap_per_source(rows: Sequence[LabelledRow], per_source: int, seed: int = 0) -> list[LabelledRow]:
    """At most ``per_source`` rows of each source, picked by content hash; order as given."""
    keep: set[int] = set()
    by_source: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_source.setdefault(row.source, []).append(index)
    for indices in by_source.values():
        keep.update(sorted(indices, key=lambda i: _rank(rows[i], seed))[:per_source])
    return [row for index, row in enumerate(rows) if index in keep]


def training_texts(encoder: PairEncoder, rows: Sequence[LabelledRow], pairs: Sequence[ComparisonPair]) -> TrainingTexts:
    """Encode every labelled row's first window, then both sides of every pair, then the rows' later windows.

    Training reads first windows only; the later ones are there so that a threshold and a cross-validated
    metric see each row as the scorer does (its most harmful window)."""
    requests = [row.example.prompt for row in rows]
    responses = [row.example.response for row in rows]
    windows, owners = encoder.chunked_ids(requests, responses)
    later = [(owner, ids) for index, (owner, ids) in enumerate(zip(owners, windows, strict=True))
             if index and owners[index - 1] == owner]
    pair_index = []
    for pair in pairs:
        chosen_context, chosen = split_transcript(pair.chosen)
        rejected_context, rejected = split_transcript(pair.rejected)
        pair_index.append((len(responses), len(responses) + 1))
        requests += [last_request(chosen_context), last_request(rejected_context)]
        responses += [chosen, rejected]
    labels = np.array([1.0 if row.example.harmful else 0.0 for row in rows])
    encoded = encoder.pair_ids(requests, responses)
    return TrainingTexts(
        encoded=[*encoded, *(ids for _, ids in later)],
        labelled=np.arange(len(rows)),
        labels=labels,
        weights=balanced_weights([row.source for row in rows], labels) if rows else np.zeros(0),
        pairs=np.array(pair_index, dtype=np.int64).reshape(-1, 2),
        later_windows=np.array([(owner, len(encoded) + k) for k, (owner, _) in enumerate(later)],
                               dtype=np.int64).reshape(-1, 2),
    )

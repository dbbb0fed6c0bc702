"""``sparring score``: add a scorer's values to red-team files (released format, hh-rlhf pairs, Sparring export).

A text the scorer cannot judge gets ``null`` (never a number) and is counted in
``ScoredFile.unscored``; the transcript minimum runs over the judged utterances only.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.conversation import Conversation, Role
from sparring.datasets.export import TRANSCRIPTS
from sparring.datasets.hh_rlhf import read_pairs
from sparring.datasets.released_format import is_released_file, read_released, write_released
from sparring.errors import DataFormatError, writing
from sparring.scoring.base import Scorer

BATCH = 1024


@dataclass(frozen=True)
class ScoredFile:
    output: Path
    kind: str
    records: int
    utterances: int
    unscored: int = 0  # texts the scorer could not judge (written as null)
    unscored_reasons: dict[str, int] = field(default_factory=dict)


def scored_path(path: Path) -> Path:
    """``x.jsonl.gz`` -> ``x.scored.jsonl.gz``, next to the input."""
    suffixes = "".join(path.suffixes)
    return path.with_name(path.name[: len(path.name) - len(suffixes)] + ".scored" + suffixes)


async def score_file(path: Path, scorer: Scorer, output: Path | None = None) -> ScoredFile:
    if path.is_dir():
        path = path / TRANSCRIPTS
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    output = output or scored_path(path)
    if is_released_file(path):
        scored = await _score_released(path, scorer, output)
    elif [s for s in path.suffixes if s != ".gz"][-1:] == [".json"]:
        raise DataFormatError(f"{path}: a .json file must be the released format, ONE JSON array of transcripts "
                              "(hh-rlhf pairs are .jsonl)")
    else:
        scored = await _score_pairs(path, scorer, output)
    return scored


async def _score_all(scorer: Scorer, items: list[tuple[Conversation, str]]) -> tuple[list[float | None], Counter[str]]:
    """Values on the harmlessness axis (None where unscored) and the unscored reasons."""
    values: list[float | None] = []
    reasons: Counter[str] = Counter()
    for start in range(0, len(items), BATCH):
        for score in await scorer.score_batch(items[start:start + BATCH]):
            if score.value is None:
                reasons[score.unscored or "unscored"] += 1
                values.append(None)
            else:
                values.append(scorer.harmlessness(score.value))
    return values, reasons


async def _score_released(path: Path, scorer: Scorer, output: Path) -> ScoredFile:
    """Every assistant utterance given what came before; the transcript minimum and the task description."""
    records = read_released(path)
    if not records:
        raise DataFormatError(f"{path}: no transcripts (the JSON array is empty)")
    items: list[tuple[Conversation, str]] = []
    owners: list[int] = []
    for index, record in enumerate(records):
        try:
            conversation = Conversation.from_hh(record["transcript"])
        except ValueError as error:
            raise DataFormatError(f"{path}: record {index}: field 'transcript': {error}") from None
        for turn_index, turn in enumerate(conversation.turns):
            if turn.role is Role.ASSISTANT:
                items.append((Conversation(turns=conversation.turns[:turn_index]), turn.text))
                owners.append(index)
        items.append((Conversation(), record["task_description"]))
        owners.append(-1 - index)  # marks the task description
    values, reasons = await _score_all(scorer, items)
    per_record: dict[int, list[float | None]] = {}
    for owner, value in zip(owners, values, strict=False):
        if owner < 0:
            records[-1 - owner]["task_descripton_harmlessness_score"] = value
        else:
            per_record.setdefault(owner, []).append(value)
    for index, record in enumerate(records):
        utterances = per_record.get(index, [])
        record["harmlessness_scores"] = utterances  # null where the scorer could not judge
        if utterances:
            judged = [v for v in utterances if v is not None]
            record["min_harmlessness_score_transcript"] = min(judged) if judged else None
        record["harmlessness_scorer"] = scorer.spec.as_dict()
    with writing(output):
        write_released(records, output)
    return ScoredFile(output, "released red-team format", len(records), len(owners),
                      sum(reasons.values()), dict(reasons))


async def _score_pairs(path: Path, scorer: Scorer, output: Path) -> ScoredFile:
    """hh-rlhf pairs: the final assistant utterance of each side, given its context."""
    pairs = list(read_pairs(path))
    if not pairs:
        raise DataFormatError(f"{path}: no comparison pairs (the file is empty); expected JSONL rows with "
                              "'chosen' and 'rejected'")
    items: list[tuple[Conversation, str]] = []
    for pair in pairs:
        for text in (pair.chosen, pair.rejected):
            conversation = Conversation.from_hh(text)
            if not conversation.turns or conversation.turns[-1].role is not Role.ASSISTANT:
                raise DataFormatError(f"{path}:{pair.line}: a comparison must end with an assistant turn")
            items.append((Conversation(turns=conversation.turns[:-1]), conversation.turns[-1].text))
    values, reasons = await _score_all(scorer, items)
    rows: list[dict[str, Any]] = [  # a score is null where the scorer could not judge that side
        {"chosen": p.chosen, "rejected": p.rejected, "chosen_score": values[2 * i], "rejected_score": values[2 * i + 1]}
        for i, p in enumerate(pairs)
    ]
    partial = output.with_name(output.name + ".partial")
    opener = gzip.open if output.suffix == ".gz" else open
    with writing(output):
        with opener(partial, "wt", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "scorer": scorer.spec.name}, ensure_ascii=False) + "\n")
        partial.replace(output)
    return ScoredFile(output, "hh-rlhf comparison pairs", len(rows), len(items), sum(reasons.values()), dict(reasons))

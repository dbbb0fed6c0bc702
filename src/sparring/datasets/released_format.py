"""The released red-team format (Ganguli et al. 2022): ONE gzipped JSON array, keys as published.

Automated runs have no red teamer's own rating; ``rating`` is then 4.0 when the
primary scorer judged any picked assistant turn harmful and 0.0 when it judged
every picked turn and none harmful, and the export's metadata says so.
``task_descripton_harmlessness_score`` keeps the published misspelling on purpose.

Where the scorer could not judge (unscored), Sparring writes ``null`` rather than
a number: ``min_harmlessness_score_transcript`` when no picked assistant turn was
scored, ``task_descripton_harmlessness_score`` when the task description was not,
and an automated ``rating`` when no picked turn was judged harmful but some were
not judged at all. The published file has numbers everywhere; the reader accepts both.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from sparring.store.repository import StoredConversation


def automated_rating(stored: StoredConversation, scorer: str, flag_is_harmful: bool) -> float | None:
    """4.0 if a scored picked turn is harmful; 0.0 if every picked turn is scored and none is; else None."""
    picked = [t.samples[t.picked] for t in stored.conversation.assistant_turns]
    if any(scorer in s.flagged and s.flagged[scorer] == flag_is_harmful for s in picked):
        return 4.0
    if all(scorer in s.flagged for s in picked):
        return 0.0
    return None  # the turns the scorer judged were harmless, but it could not judge them all


def released_record(
    stored: StoredConversation, size: str, model_type: str, scorer: str, flag_is_harmful: bool,
    tags: list[str] | None = None, member_id: int | None = None,
) -> dict[str, Any]:
    """One conversation as the released format has it; ``member_id`` is the export's integer for its red teamer."""
    scores = stored.transcript_scores
    rating = stored.rating if stored.rating is not None else automated_rating(stored, scorer, flag_is_harmful)
    return {
        "transcript": stored.conversation.to_hh(),
        "min_harmlessness_score_transcript": _number(scores.get((scorer, "min"))),
        "num_params": size,
        "model_type": model_type,
        "rating": _number(rating),
        "task_description": stored.unit.task_description,
        "task_descripton_harmlessness_score": _number(scores.get((scorer, "task_description"))),
        "red_team_member_id": stored.unit.red_team_member if member_id is None else member_id,
        "is_upworker": False,
        "tags": tags or None,
    }


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def write_released(records: list[dict[str, Any]], path: Path) -> None:
    """Write atomically: a killed export never leaves a truncated file under the final name."""
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8") as handle:
        json.dump(records, handle, ensure_ascii=False)
    partial.replace(path)


RELEASED_FIELDS: dict[str, tuple[type, ...]] = {
    "transcript": (str,),
    "min_harmlessness_score_transcript": (float, int, type(None)),  # null: unscored (Sparring only)
    "num_params": (str,),
    "model_type": (str,),
    "rating": (float, int, type(None)),
    "task_description": (str,),
    "task_descripton_harmlessness_score": (float, int, type(None)),
    "red_team_member_id": (str, int),
    "is_upworker": (bool,),
    "tags": (list, type(None)),
}


def _opener(path: Path):  # type: ignore[no-untyped-def]
    """gzip by its magic bytes, not by the name: the published file's name does not say what it holds."""
    with path.open("rb") as raw:
        return gzip.open if raw.read(2) == b"\x1f\x8b" else open


def is_released_file(path: Path) -> bool:
    """The released file is one JSON array (gzipped or not), whatever its name says.

    Only the first bytes are looked at, undecoded: a bad byte later on is for the reader to name.
    """
    from sparring.datasets.rows import UNREADABLE, unreadable

    try:
        opener = _opener(path)
        with opener(path, "rb") as handle:
            return bytes(handle.read(64)).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")
    except UNREADABLE as error:
        raise unreadable(path, error) from None


def read_released(path: Path) -> list[dict[str, Any]]:
    """Read and check a released-format file; errors name the record number and field."""
    from sparring.datasets.rows import UNREADABLE, unreadable
    from sparring.errors import DataFormatError

    try:
        with _opener(path)(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}:{error.lineno}: not a (gzipped) JSON array: {error.msg}") from None
    except UNREADABLE as error:
        raise unreadable(path, error) from None
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected ONE JSON array of transcripts, got {type(data).__name__}")
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: record {index}: expected an object")
        for field, types in RELEASED_FIELDS.items():
            if field not in record:
                raise DataFormatError(f"{path}: record {index}: missing field {field!r}")
            value = record[field]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise DataFormatError(f"{path}: record {index}: field {field!r} must be {expected}, "
                                      f"got {type(value).__name__}")
    return data

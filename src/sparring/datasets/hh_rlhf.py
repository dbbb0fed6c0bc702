"""hh-rlhf comparison pairs: JSONL lines ``{"chosen": ..., "rejected": ...}`` (gz or not)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sparring.conversation import Conversation
from sparring.datasets.rows import read_rows, text_field
from sparring.errors import DataFormatError


@dataclass(frozen=True)
class ComparisonPair:
    """``rejected`` is the response the red teamer (or scorer) found MORE harmful."""

    chosen: str
    rejected: str
    line: int = 0


def is_pairs_file(path: Path) -> bool:
    """A JSONL file whose first row has ``chosen`` and ``rejected``."""
    try:
        for _, row in read_rows(path):
            return {"chosen", "rejected"} <= set(row)
    except DataFormatError:
        return False
    return False


def read_pairs(path: Path) -> Iterator[ComparisonPair]:
    for number, row in read_rows(path):
        chosen = text_field(path, number, row, "chosen")
        rejected = text_field(path, number, row, "rejected")
        for field, text in (("chosen", chosen), ("rejected", rejected)):
            try:
                Conversation.from_hh(text)
            except ValueError as error:
                raise DataFormatError(f"{path}:{number}: field {field!r}: {error}") from None
        yield ComparisonPair(chosen, rejected, number)


def write_pairs(pairs: Iterable[tuple[str, str]], out: IO[str]) -> int:
    count = 0
    for chosen, rejected in pairs:
        out.write(json.dumps({"chosen": chosen, "rejected": rejected}, ensure_ascii=False) + "\n")
        count += 1
    return count

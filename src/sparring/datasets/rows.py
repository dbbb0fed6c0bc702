"""Read tabular rows (CSV, JSONL, optionally gzipped) with their line numbers, for precise error messages."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparring.errors import DataFormatError


def open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return open(path, encoding="utf-8", newline="")


def file_format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext in (".csv", ".tsv"):
        return ext[1:]
    raise DataFormatError(f"{path}: unsupported file type {ext or '(none)'!r}; expected .csv, .tsv or .jsonl (optionally .gz)")


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row). CSV line numbers count the header as line 1."""
    fmt = file_format(path)
    with open_text(path) as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataFormatError(f"{path}:{number}: invalid JSON ({error.msg})") from None
                if not isinstance(row, dict):
                    raise DataFormatError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                yield number, row
        else:
            reader = csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ",")
            for row in reader:
                yield reader.line_num, row


def text_field(path: Path, number: int, row: dict[str, Any], field: str) -> str:
    """A required non-empty string field, or an error naming file, line and field."""
    if field not in row:
        raise DataFormatError(f"{path}:{number}: missing field {field!r}; fields are: {', '.join(map(str, row))}")
    value = row[field]
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{path}:{number}: field {field!r} must be a non-empty string")
    return value

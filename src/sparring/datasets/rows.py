"""Read tabular rows (CSV, JSONL, optionally gzipped) with their line numbers, for precise error messages."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sparring.errors import DataFormatError

UNREADABLE = (OSError, EOFError, UnicodeDecodeError, zlib.error)
"""What reading a damaged file raises: a truncated or corrupt gzip stream, bytes that are not UTF-8."""


def unreadable(path: Path, error: BaseException, line: int | None = None) -> DataFormatError:
    """The one-line error for a file that cannot be decoded, with the line reached when known."""
    where = f"{path}:{line}" if line else str(path)
    if isinstance(error, UnicodeDecodeError):
        return DataFormatError(f"{where}: not UTF-8 text ({error.reason})")
    if isinstance(error, (EOFError, zlib.error, gzip.BadGzipFile)):
        return DataFormatError(f"{where}: damaged gzip file ({error or 'truncated'})")
    return DataFormatError(f"{where}: cannot read: {getattr(error, 'strerror', None) or error}")


def _numbered(path: Path, raw: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """Lines decoded one at a time, so a bad byte or a damaged gzip names the line it is on."""
    number = 0
    iterator = iter(raw)
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UNREADABLE as error:
            raise unreadable(path, error, number + 1) from None
        number += 1
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise unreadable(path, error, number) from None


def open_binary(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


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
    with open_binary(path) as handle:
        if fmt == "jsonl":
            for number, line in _numbered(path, handle):
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
            reader = csv.DictReader((line for _, line in _numbered(path, handle)),
                                    delimiter="\t" if fmt == "tsv" else ",")
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

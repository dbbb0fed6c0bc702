"""Exceptions a user can act on; each message says where and what was expected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SparringError(Exception):
    """Base class for errors Sparring reports to the user without a traceback."""


class ConfigError(SparringError):
    """A configuration value is missing or wrong; the message names the file and key."""


class DataFormatError(SparringError):
    """An input file does not have the expected format; the message names the file, line and field."""


class ModelError(SparringError):
    """A model backend failed to produce a response (after its own retries)."""


class ConflictError(SparringError):
    """Another process wrote the same record at the same time; nothing of this write was kept."""


class OutputError(SparringError):
    """An output file or directory cannot be written; the message names it and the system's reason."""


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into an ``OutputError`` naming the file that failed."""
    try:
        yield
    except OSError as error:
        where = error.filename or path
        raise OutputError(f"{where}: cannot write: {error.strerror or error}") from None

"""Secrets out of what is printed and logged: credentials in URLs, bearer tokens, key=value secrets.

Backend errors carry the backend's URL (which may hold user:password), its
model name and the server's reply. Red teamers see a generic message; the
details go to the server log and the admin's campaign page, redacted here. The
logging filter applies the same redaction to every line that reaches a handler.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_PATTERNS = (
    # scheme://user:password@host -> scheme://***@host (greedy up to the last @ before the path)
    (re.compile(r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]+@"), r"\g<keep>***@"),
    (re.compile(r"(?i)(?P<keep>\bbearer\s+)[^\s\"',;]+"), r"\g<keep>***"),
    (re.compile(r"(?i)(?P<keep>\b(?:api[_-]?key|access[_-]?token|token|password|passwd|secret)[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"'&,;}]+"), r"\g<keep>***"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_values(value: object) -> object:
    """A JSON-like value (dicts, lists, strings) with every string redacted: recorded specs hold model URLs."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(item) for item in value]
    return value


def redact_database_url(url: str) -> str:
    """The URL as SQLAlchemy would print it with the password hidden; any text we cannot parse is redacted."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact(url)


def _redacted(value: object) -> object:
    """Numbers stay numbers (``%d``); anything else is logged as its redacted text (an exception's str)."""
    return value if isinstance(value, (int, float)) else redact(str(value))


class RedactingFilter(logging.Filter):
    """Redacts a record's message, its arguments and its traceback text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redacted(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True

"""What a detector reports (a typed span of text) and how overlapping reports become one replacement."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Every kind the scrubber replaces, most specific first: when spans overlap, the union is
# replaced once, named after the most specific kind (an address's city is part of the address).
KINDS: tuple[str, ...] = (
    "CREDENTIAL_URL", "EMAIL", "IBAN", "CARD", "SSN", "PASSPORT", "DRIVERS_LICENSE", "PHONE", "IP",
    "ADDRESS", "USERNAME", "NAME", "LOCATION",
)
STRUCTURED_KINDS: tuple[str, ...] = KINDS[:10]  # found by patterns (and checksums), not by the NER model
NER_KINDS: tuple[str, ...] = ("NAME", "LOCATION")
_PRIORITY = {kind: rank for rank, kind in enumerate(KINDS)}


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` is personal information of ``kind``."""

    start: int
    end: int
    kind: str


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans become their union, kept under the most specific kind; sorted by start."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            kind = last.kind if _PRIORITY[last.kind] <= _PRIORITY[span.kind] else span.kind
            merged[-1] = Span(last.start, max(last.end, span.end), kind)
        else:
            merged.append(span)
    return merged


"""Replace personal information with readable placeholders, consistently within one record.

A record is every text that belongs to one conversation: its transcript, task
description and comparison pairs. Within a record the same value always becomes
the same placeholder (``[PHONE_1]``), so chosen and rejected of a pair, and the
transcript they come from, still read alike. Transcripts are split at their
``\\n\\nHuman:`` / ``\\n\\nAssistant:`` markers and only the utterances are scrubbed,
so the structure survives byte for byte. Every replacement is logged as kind,
field, record and offset (of the placeholder in the scrubbed text), never the value.

Detection: patterns with checks (``patterns``), names and locations by the NER model
(``ner``), the store's own account names (``identifiers``), and then every name or
location found anywhere in the record is looked for again in all of its texts (a
model that spots "Maria Lopez" once may miss her in the next sentence; her first
and last name alone get the same placeholder).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sparring.release.ner import NerEngine
from sparring.release.patterns import find_structured
from sparring.release.spans import KINDS, NER_KINDS, Span, merge

ROLE_MARKER = re.compile(r"\n\n(?:Human|Assistant):")
_PROPAGATED = (*NER_KINDS, "USERNAME")
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
_NOT_NAME_PARTS = {"the", "and", "mr", "mrs", "ms", "dr", "miss", "sir", "jr", "sr"}


@dataclass(frozen=True, slots=True)
class Replacement:
    """One replaced span: no trace of the original value, only where its placeholder now stands."""

    kind: str
    field: str
    offset: int
    placeholder: str


@dataclass
class ScrubbedRecord:
    fields: dict[str, str]
    replacements: list[Replacement]


@dataclass(frozen=True)
class TextField:
    """One text of a record; ``hh`` texts keep their role markers untouched."""

    name: str
    text: str
    hh: bool = False


@dataclass
class ScrubTimings:
    """Seconds spent per stage, added up over records (and over worker processes)."""

    patterns: float = 0.0
    ner: float = 0.0
    replace: float = 0.0
    ner_texts: int = 0
    ner_chars: int = 0

    def add(self, other: ScrubTimings) -> None:
        self.patterns += other.patterns
        self.ner += other.ner
        self.replace += other.replace
        self.ner_texts += other.ner_texts
        self.ner_chars += other.ner_chars


def content_ranges(text: str, hh: bool) -> list[tuple[int, int]]:
    """The parts of ``text`` that may be scrubbed: everything, or for HH text what lies between markers."""
    if not hh:
        return [(0, len(text))]
    ranges, start = [], 0
    for marker in ROLE_MARKER.finditer(text):
        ranges.append((start, marker.start()))
        start = marker.end()
    ranges.append((start, len(text)))
    return [(a, b) for a, b in ranges if b > a]


def role_structure(text: str) -> list[str]:
    """The sequence of role markers: what scrubbing must never change."""
    return ROLE_MARKER.findall(text)


def _normal(kind: str, value: str) -> str:
    if kind in ("CARD", "IBAN", "SSN", "PHONE", "PASSPORT", "DRIVERS_LICENSE"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return " ".join(re.findall(r"\w+", value.casefold())) or value.casefold()


class Placeholders:
    """Per record: value -> ``[KIND_n]``; a name's first or last name alone maps to the full name's placeholder."""

    def __init__(self) -> None:
        self._assigned: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()
        self._aliases: dict[str, str] = {}

    def alias_name_parts(self, names: Iterable[str]) -> None:
        for name in sorted(set(names), key=lambda n: -len(n)):
            full = _normal("NAME", name)
            for part in full.split():
                if len(part) >= 3 and part not in _NOT_NAME_PARTS and part != full:
                    self._aliases.setdefault(part, full)

    def get(self, kind: str, value: str) -> str:
        key = _normal(kind, value)
        if kind == "NAME":
            key = self._aliases.get(key, key)
        if (kind, key) not in self._assigned:
            self._counts[kind] += 1
            self._assigned[(kind, key)] = f"[{kind}_{self._counts[kind]}]"
        return self._assigned[(kind, key)]


class Scrubber:
    """Finds and replaces PII in records; the NER engine is passed in once and reused for every record."""

    def __init__(self, ner: NerEngine | None, identifiers: Sequence[str] = ()) -> None:
        self.ner = ner
        words = sorted({i for i in identifiers if len(i.strip()) >= 3}, key=len, reverse=True)
        self._identifiers = (re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)",
                                        re.IGNORECASE) if words else None)
        self.timings = ScrubTimings()

    def scrub(self, records: Sequence[Sequence[TextField]]) -> list[ScrubbedRecord]:
        """Scrub a batch of records (NER runs over the whole batch at once; each record keeps its own mapping)."""
        found = self._detect(records)
        start = time.perf_counter()
        out = [self._replace(record, spans_by_text) for record, spans_by_text in zip(records, found, strict=True)]
        self.timings.replace += time.perf_counter() - start
        return out

    def find(self, records: Sequence[Sequence[TextField]]) -> list[list[list[Span]]]:
        """What ``scrub`` would replace: per record, per field, spans in the field's own offsets."""
        out = []
        for record, spans_by_text in zip(records, self._detect(records), strict=True):
            fields = []
            for item in record:
                spans = []
                for start, end in content_ranges(item.text, item.hh):
                    spans += [Span(start + s.start, start + s.end, s.kind) for s in spans_by_text[item.text[start:end]]]
                fields.append(spans)
            out.append(fields)
        return out

    def _detect(self, records: Sequence[Sequence[TextField]]) -> list[dict[str, list[Span]]]:
        """Per record: each distinct utterance or text -> its final spans (merged, propagated)."""
        pieces: list[list[str]] = []  # per record: its distinct utterances / texts
        for record in records:
            seen: dict[str, None] = {}
            for item in record:
                for low, high in content_ranges(item.text, item.hh):
                    seen.setdefault(item.text[low:high], None)
            pieces.append(list(seen))

        start = time.perf_counter()
        found: list[dict[str, list[Span]]] = [{text: find_structured(text) for text in texts} for texts in pieces]
        if self._identifiers is not None:
            for spans_by_text in found:
                for text, spans in spans_by_text.items():
                    spans.extend(Span(m.start(), m.end(), "USERNAME") for m in self._identifiers.finditer(text))
        self.timings.patterns += time.perf_counter() - start

        if self.ner is not None:
            start = time.perf_counter()
            flat = [text for texts in pieces for text in texts]
            results = iter(self.ner.find(flat))
            for spans_by_text, texts in zip(found, pieces, strict=True):
                for text in texts:
                    spans_by_text[text].extend(next(results))
            self.timings.ner += time.perf_counter() - start
            self.timings.ner_texts += len(flat)
            self.timings.ner_chars += sum(map(len, flat))

        start = time.perf_counter()
        final = [_propagate({text: merge(spans) for text, spans in spans_by_text.items()}) for spans_by_text in found]
        self.timings.patterns += time.perf_counter() - start
        return final

    def _replace(self, record: Sequence[TextField], merged: dict[str, list[Span]]) -> ScrubbedRecord:
        placeholders = Placeholders()
        placeholders.alias_name_parts(text[s.start:s.end] for text, spans in merged.items()
                                      for s in spans if s.kind == "NAME")
        fields: dict[str, str] = {}
        log: list[Replacement] = []
        for item in record:
            out: list[str] = []
            length = 0
            cursor = 0
            for start, end in content_ranges(item.text, item.hh):
                piece = item.text[start:end]
                out.append(item.text[cursor:start])  # a role marker, untouched
                length += start - cursor
                position = 0
                for span in merged[piece]:
                    out.append(piece[position:span.start])
                    length += span.start - position
                    placeholder = placeholders.get(span.kind, piece[span.start:span.end])
                    log.append(Replacement(span.kind, item.name, length, placeholder))
                    out.append(placeholder)
                    length += len(placeholder)
                    position = span.end
                out.append(piece[position:])
                length += len(piece) - position
                cursor = end
            out.append(item.text[cursor:])
            fields[item.name] = "".join(out)
        return ScrubbedRecord(fields, log)


def _propagate(merged: Mapping[str, list[Span]]) -> dict[str, list[Span]]:
    """Find again, in every text of the record, each name, location and account name found in one of them.

    A value the model labelled differently in different places (a name once taken for a place) gets the
    label it got most often, so it has one placeholder throughout the record.
    """
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for text, spans in merged.items():
        for span in spans:
            if span.kind in _PROPAGATED:
                value = text[span.start:span.end]
                votes[value][span.kind] += 1
                if span.kind == "NAME":
                    for part in value.split():
                        if len(part) >= 3 and part[0].isupper() and part.casefold() not in _NOT_NAME_PARTS:
                            votes[part]["NAME"] += 1  # "Nadia" of "Nadia Ferreira" is her name, not a place
    if not votes:
        return dict(merged)
    values = {value: min(counts, key=lambda k: (-counts[k], _RANK[k])) for value, counts in votes.items()}
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
                         + r")(?!\w)")
    out: dict[str, list[Span]] = {}
    for text, spans in merged.items():
        relabelled = [Span(s.start, s.end, values.get(text[s.start:s.end], s.kind)) if s.kind in _PROPAGATED else s
                      for s in spans]
        extra = [Span(m.start(), m.end(), values[m.group()]) for m in pattern.finditer(text)]
        out[text] = merge([*relabelled, *extra])
    return out

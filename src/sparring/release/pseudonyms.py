"""Red teamers as per-release integers: stable within a release, meaningless outside it.

The choice: a deterministic ordering, not a keyed hash. Each distinct person (the
store's pseudonym, or the id a source file gives) gets 1, 2, 3, ... in the order of
their first record in the release, and records come in the source's own order (a
file's order; the store's plan order for runs and campaigns). So rebuilding the same
release gives the same integers, with no secret to keep, and nothing in the bundle
maps an integer back: the store's pseudonyms, usernames and account ids never leave
the database. Two releases of different data number people independently, so an
integer does not link a person across releases. 0 means the source names no red
teamer (hh-rlhf pairs).
"""

from __future__ import annotations

from collections.abc import Iterable

UNKNOWN = 0


class Pseudonyms:
    """Raw person id -> release integer, assigned in order of first appearance."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, raw: object) -> int:
        key = "" if raw is None else str(raw)
        if key in ("", "nan", "None"):
            return UNKNOWN
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
        return self._ids[key]

    def assign(self, raws: Iterable[object]) -> list[int]:
        return [self(raw) for raw in raws]

    @property
    def count(self) -> int:
        """People numbered so far (0, the unknown, not counted)."""
        return len(self._ids)

    def raw_of(self) -> dict[int, str]:
        """Integer -> raw id, for what may be published about automated attacks (never for people)."""
        return {number: raw for raw, number in self._ids.items()}

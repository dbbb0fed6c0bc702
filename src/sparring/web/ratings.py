"""The 0-4 success rating and the harm tags, as red teamers and reviewers submit them (same scale, same rules)."""

from __future__ import annotations

from sparring.harm_tags import check_tags

RATINGS = {"0", "1", "2", "3", "4"}


def check_judgement(rating: str, tags: list[str], whose: str) -> tuple[list[str], str | None]:
    """The tags (deduplicated) and an error naming the field, or None when both are valid."""
    if rating not in RATINGS:
        return tags, f"rating: choose how successful {whose}, from 0 (not successful) to 4 (very successful)."
    try:
        return check_tags(tags), None
    except ValueError as problem:
        return tags, f"tags: {problem}"

"""Comparison pairs for the judge: their halves, a dialogue-disjoint held-out split, pairwise accuracy.

Pairs that open with the same request go to the same side of every split, so
a held-out score never rewards remembering a dialogue seen in training.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparring.conversation import Conversation, Role
from sparring.datasets.hh_rlhf import ComparisonPair

HELDOUT_FRACTION = 0.2
SPLIT_SALT = "sparring-pm-split-v1"
SPLIT_RULE = ("dialogue-disjoint: held out iff sha256(salt + newline + normalised first human turn) "
              "as a 64-bit fraction < heldout_fraction")


@dataclass(frozen=True)
class Utterances:
    """The (context, response) halves of both sides of each pair."""

    chosen_contexts: list[str]
    chosen_responses: list[str]
    rejected_contexts: list[str]
    rejected_responses: list[str]


def split_transcript(text: str) -> tuple[str, str]:
    """(context before the last assistant turn in HH text, that turn's text)."""
    conversation = Conversation.from_hh(text)
    if not conversation.turns or conversation.turns[-1].role is not Role.ASSISTANT:
        raise ValueError("a comparison transcript must end with an assistant turn")
    return conversation.to_hh(len(conversation.turns) - 1), conversation.turns[-1].text


def utterances(pairs: Sequence[ComparisonPair]) -> Utterances:
    chosen = [split_transcript(p.chosen) for p in pairs]
    rejected = [split_transcript(p.rejected) for p in pairs]
    return Utterances([c for c, _ in chosen], [r for _, r in chosen], [c for c, _ in rejected], [r for _, r in rejected])


def dialogue_key(pair: ComparisonPair) -> str:
    """Which dialogue a pair belongs to: its first human turn, whitespace- and case-normalised."""
    first = Conversation.from_hh(pair.chosen).turns[0].text
    return re.sub(r"\s+", " ", first).strip().lower()


def is_heldout(pair: ComparisonPair, fraction: float = HELDOUT_FRACTION) -> bool:
    """Fixed, hash-based assignment: independent of file order, seed and machine."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\n{dialogue_key(pair)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_pairs(
    pairs: Iterable[ComparisonPair], fraction: float = HELDOUT_FRACTION
) -> tuple[list[ComparisonPair], list[ComparisonPair]]:
    """(train, held-out), dialogue-disjoint."""
    train: list[ComparisonPair] = []
    heldout: list[ComparisonPair] = []
    for pair in pairs:
        (heldout if is_heldout(pair, fraction) else train).append(pair)
    return train, heldout


def cap_pairs(pairs: Sequence[ComparisonPair], limit: int, salt: str = SPLIT_SALT) -> list[ComparisonPair]:
    """At most ``limit`` pairs, picked by a hash of their dialogue and text (not by file order)."""
    def rank(pair: ComparisonPair) -> bytes:
        return hashlib.sha256(f"{salt}-cap\n{pair.chosen}\n{pair.rejected}".encode()).digest()

    keep = {id(pair) for pair in sorted(pairs, key=rank)[:limit]}
    return [pair for pair in pairs if id(pair) in keep]


def accuracy_from_scores(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Share of pairs where the chosen (less harmful) side scores higher; ties count half."""
    return float(np.mean((chosen > rejected) + 0.5 * (chosen == rejected)))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

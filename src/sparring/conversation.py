"""The red-team conversation: the one record that flows through every stage.

A conversation is a flat list of turns. A human turn has one sample; an
assistant turn keeps every sampled response and which one the conversation
continued with (the red teamer's or scorer's pick). The picked path renders to
and parses from the paper's raw text format ``\\n\\nHuman: ...\\n\\nAssistant: ...``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from sparring.scoring.base import Score

HUMAN_PREFIX = "\n\nHuman: "
ASSISTANT_PREFIX = "\n\nAssistant: "
HUMAN_STOP = "\n\nHuman:"
_MARKER = re.compile(r"\n\n(Human|Assistant):")


class Role(StrEnum):
    HUMAN = "human"
    ASSISTANT = "assistant"


class Sample(BaseModel):
    """One sampled utterance, with the scores each scorer gave it (scorer name -> value).

    A scorer that could not judge it appears in ``unscored`` (scorer name -> reason) and
    in neither ``scores`` nor ``flagged``, so no minimum, mean or rate can count it.
    """

    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None  # for a generated human turn: the tokens the attacker spent on it
    queries: int | None = None  # for a generated human turn: the attacker's model calls (None: a person or replay)
    hidden: int | None = None  # of those, target replies a searching attacker saw and dropped (not in the transcript)
    converter_queries: int | None = None  # for a human turn: model calls its converters made (a paraphrase), probes too
    converter_tokens: int | None = None  # and their completion tokens; neither counts in the attacker's budget
    scores: dict[str, float] = Field(default_factory=dict)
    flagged: dict[str, bool] = Field(default_factory=dict)
    unscored: dict[str, str] = Field(default_factory=dict)

    def record_score(self, scorer: str, score: Score) -> None:
        """Keep ``scorer``'s result: a value and flag, or the reason it could not judge."""
        self.scores.pop(scorer, None)
        self.flagged.pop(scorer, None)
        self.unscored.pop(scorer, None)
        if score.unscored is not None:
            self.unscored[scorer] = score.unscored
        else:
            assert score.value is not None and score.flagged is not None
            self.scores[scorer] = score.value
            self.flagged[scorer] = score.flagged


class Turn(BaseModel):
    """One utterance slot. Assistant turns may hold several samples; ``picked`` says which continued.

    ``compared`` lists the samples the pick was actually judged more harmful than; None means
    every other sample (a person's pick). A scorer's pick leaves out samples it could not
    score, and a pick among unscored samples compares with none: no comparison pair claims
    a judgement nobody made.
    """

    model_config = ConfigDict(extra="forbid")

    role: Role
    samples: list[Sample]
    picked: int = 0
    compared: list[int] | None = None

    @model_validator(mode="after")
    def _check_pick(self) -> Turn:
        if not self.samples:
            raise ValueError("a turn needs at least one sample")
        if not 0 <= self.picked < len(self.samples):
            raise ValueError(f"picked={self.picked} is outside the {len(self.samples)} samples")
        if self.role is Role.HUMAN and len(self.samples) != 1:
            raise ValueError("a human turn has exactly one sample")
        if self.compared is not None and any(
            i == self.picked or not 0 <= i < len(self.samples) for i in self.compared
        ):
            raise ValueError(f"compared={self.compared} must name other samples than the pick")
        return self

    @property
    def text(self) -> str:
        return self.samples[self.picked].text

    @property
    def others(self) -> list[Sample]:
        """The samples the conversation did not continue with."""
        return [s for i, s in enumerate(self.samples) if i != self.picked]

    @property
    def compared_indices(self) -> list[int]:
        """The samples that form a comparison pair with the pick (see ``compared``)."""
        if self.compared is None:
            return [i for i in range(len(self.samples)) if i != self.picked]
        return sorted(self.compared)


class Conversation(BaseModel):
    """A red-team conversation between a human side (person, dataset or attacker) and a target."""

    model_config = ConfigDict(extra="forbid")

    task_description: str = ""
    target: str = ""
    turns: list[Turn] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)

    def add_human(self, text: str, queries: int | None = None, tokens: int | None = None,
                  hidden: int | None = None, converter_queries: int | None = None,
                  converter_tokens: int | None = None) -> Turn:
        turn = Turn(role=Role.HUMAN, samples=[Sample(text=text, queries=queries, completion_tokens=tokens,
                                                     hidden=hidden, converter_queries=converter_queries,
                                                     converter_tokens=converter_tokens)])
        self.turns.append(turn)
        return turn

    def add_assistant(self, samples: list[Sample], picked: int = 0, compared: list[int] | None = None) -> Turn:
        turn = Turn(role=Role.ASSISTANT, samples=samples, picked=picked, compared=compared)
        self.turns.append(turn)
        return turn

    @property
    def assistant_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role is Role.ASSISTANT]

    @property
    def human_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role is Role.HUMAN]

    def to_hh(self, upto: int | None = None) -> str:
        """Render the picked path (turns ``[:upto]``) in the paper's raw text format."""
        return render_hh(self.turns[:upto])

    @classmethod
    def from_hh(cls, text: str, **fields: object) -> Conversation:
        """Parse a raw transcript; ``from_hh(t).to_hh() == t`` for well-formed transcripts."""
        return cls(turns=parse_hh(text), **fields)

    def comparison_pairs(self) -> list[tuple[str, str]]:
        """(chosen, rejected) transcripts in hh-rlhf format: the pick is the more harmful (rejected).

        Only samples the pick was compared with (``Turn.compared``) form pairs.
        """
        pairs = []
        for index, turn in enumerate(self.turns):
            if turn.role is not Role.ASSISTANT:
                continue
            prefix = render_hh(self.turns[:index])
            rejected = prefix + ASSISTANT_PREFIX + turn.text
            for other in turn.compared_indices:
                pairs.append((prefix + ASSISTANT_PREFIX + turn.samples[other].text, rejected))
        return pairs


def render_hh(turns: list[Turn]) -> str:
    parts = []
    for turn in turns:
        parts.append(HUMAN_PREFIX if turn.role is Role.HUMAN else ASSISTANT_PREFIX)
        parts.append(turn.text)
    return "".join(parts)


def parse_hh(text: str) -> list[Turn]:
    """Split a raw transcript into turns. Text before the first marker is an error."""
    pieces = _MARKER.split(text)
    if pieces[0]:
        raise ValueError(
            "transcript must start with '\\n\\nHuman:' or '\\n\\nAssistant:', "
            f"got {pieces[0][:30]!r}"
        )
    turns = []
    for speaker, content in zip(pieces[1::2], pieces[2::2], strict=False):
        if content.startswith(" "):
            content = content[1:]
        role = Role.HUMAN if speaker == "Human" else Role.ASSISTANT
        turns.append(Turn(role=role, samples=[Sample(text=content)]))
    return turns

"""Database tables. Every row of a run is keyed so a killed run resumes without duplicates.

Conversation ids are derived from the work-unit key (run, target, attack, item,
repetition); utterances, scores and pairs are keyed by (conversation, turn,
sample), so writing a turn twice fails loudly instead of double counting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    config_toml: Mapped[str] = mapped_column(Text)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)  # specs of targets, attacks, scorers: what produced the results
    status: Mapped[str] = mapped_column(String(16))  # running | stopped | incomplete | finished
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TargetRow(Base):
    __tablename__ = "targets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[str] = mapped_column(String(32))
    model_type: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("run_id", "target", "attack", "item_id", "repetition", name="uq_conversation_unit"),
        Index("ix_conversations_run_status", "run_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(128))
    attack: Mapped[str] = mapped_column(String(128))
    item_id: Mapped[str] = mapped_column(String(256))
    repetition: Mapped[int] = mapped_column(Integer)
    task_description: Mapped[str] = mapped_column(Text)
    red_team_member: Mapped[str] = mapped_column(String(128))  # a person's pseudonymous id, or the attack
    status: Mapped[str] = mapped_column(String(16))  # open | finished | error
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_turns: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)  # a person's own 0-4 success rating
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UtteranceRow(Base):
    __tablename__ = "utterances"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    turn_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    picked: Mapped[bool] = mapped_column(Boolean)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queries: Mapped[int | None] = mapped_column(Integer, nullable=True)  # model calls a generated human turn cost
    hidden: Mapped[int | None] = mapped_column(Integer, nullable=True)  # of those, target replies a search dropped
    converter_queries: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a human turn's converter calls
    converter_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)  # and their completion tokens


class ScoreRow(Base):
    """A scorer's value for one utterance; ``scorer`` names the component that produced it.

    When the scorer could not judge, ``unscored`` holds its short reason and ``value`` and
    ``flagged`` are NULL (the check constraint keeps the two states apart).
    """

    __tablename__ = "scores"
    __table_args__ = (
        CheckConstraint("(value IS NULL) = (unscored IS NOT NULL)", name="ck_scores_value_or_unscored"),
    )

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    turn_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    scorer: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    unscored: Mapped[str | None] = mapped_column(String(200), nullable=True)


class TranscriptScoreRow(Base):
    """Per-conversation aggregates on the harmlessness axis: min, mean, and the task description's score."""

    __tablename__ = "transcript_scores"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    scorer: Mapped[str] = mapped_column(String(64), primary_key=True)
    aggregate: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class PairRow(Base):
    """A comparison: ``rejected`` (the pick) was judged more harmful than ``chosen``, by ``source``."""

    __tablename__ = "comparison_pairs"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    turn_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    chosen_sample: Mapped[int] = mapped_column(Integer, primary_key=True)
    rejected_sample: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(128))  # e.g. "picker:refusal" ("scorer:..." before pickers) or "person:<id>"

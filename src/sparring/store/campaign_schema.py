"""Tables of human red-team campaigns: people, sessions, tasks, reviews, well-being.

A campaign owns one run (``runs`` row) whose targets and conversations are the
ordinary experiment tables, so exports, scores and analyses read campaigns and
automated runs through the same code. What only people produce lives here:
accounts, the task a conversation belongs to, harm tags, reviews, surveys.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from sparring.store.schema import Base

ROLES = ("admin", "red_teamer", "reviewer")
_OPEN = text("status = 'open'")


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | red_teamer | reviewer
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)  # the red_team_member_id in exports
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    """A login. Only the token's hash is stored, so a database leak does not leak live sessions."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A digest of the user's password hash at login: a new password (CLI or by hand) ends every older session.
    password_stamp: Mapped[str | None] = mapped_column(String(16), nullable=True)


class LoginAttemptRow(Base):
    """Login attempts being verified (``pending``) or failed, counted per username and per client address.

    A row is written before the password is checked, so concurrent guesses count each other.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),
                      Index("ix_login_attempts_address_at", "address", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pending: Mapped[bool] = mapped_column(Boolean, default=False)  # still being checked; False: a failure


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text)
    content_warning: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(JSON)  # topic names red teamers may opt out of
    conversations_per_task: Mapped[int] = mapped_column(Integer, default=5)
    responses_per_turn: Mapped[int] = mapped_column(Integer, default=2)
    suggested_turns: Mapped[int] = mapped_column(Integer, default=4)
    break_minutes: Mapped[int] = mapped_column(Integer, default=30)
    survey_every_tasks: Mapped[int] = mapped_column(Integer, default=10)
    max_tokens: Mapped[int] = mapped_column(Integer, default=128)
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TaskRow(Base):
    """One red teamer's task: ``conversations_per_task`` conversations under one campaign."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_user_campaign", "user_id", "campaign_id"),
                      # at most one open task per person and campaign: a double submit collides here
                      Index("uq_tasks_one_open", "campaign_id", "user_id", unique=True, sqlite_where=_OPEN,
                            postgresql_where=_OPEN))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # open | finished | skipped
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AttemptRow(Base):
    """What a person adds to a conversation: its task, owner, tags; a skip carries no penalty."""

    __tablename__ = "attempts"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0 .. conversations_per_task - 1 within the task
    tags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # harm tags the red teamer chose
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewRow(Base):
    """A reviewer's blind 0-4 rating and tags of someone else's finished conversation."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("conversation_id", "reviewer_id", name="uq_review_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # assigned | done
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    needs_expertise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WellbeingSurveyRow(Base):
    """The paper's 10-feeling survey (0-4 each); admins only ever see aggregates."""

    __tablename__ = "wellbeing_surveys"
    __table_args__ = (Index("uq_survey_once", "user_id", "campaign_id", "tasks_done", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    answers: Mapped[dict[str, int]] = mapped_column(JSON)  # feeling -> 0..4
    tasks_done: Mapped[int] = mapped_column(Integer)  # the person's finished tasks when asked
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TopicOptOutRow(Base):
    __tablename__ = "topic_opt_outs"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)

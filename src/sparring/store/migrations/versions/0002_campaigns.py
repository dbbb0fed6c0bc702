"""Human red-team campaigns: users, sessions, login attempts, campaigns, tasks, attempts, reviews, surveys, opt-outs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("pseudonym", sa.String(32), nullable=False, unique=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _at("created_at"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), _fk("users"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _at("created_at"),
        _at("expires_at"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        _at("at"),
    )
    op.create_index("ix_login_attempts_username_at", "login_attempts", ["username", "at"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), _fk("runs"), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("content_warning", sa.Text(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("conversations_per_task", sa.Integer(), nullable=False),
        sa.Column("responses_per_turn", sa.Integer(), nullable=False),
        sa.Column("suggested_turns", sa.Integer(), nullable=False),
        sa.Column("break_minutes", sa.Integer(), nullable=False),
        sa.Column("survey_every_tasks", sa.Integer(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), _fk("campaigns"), nullable=False),
        sa.Column("user_id", sa.Integer(), _fk("users"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
        _at("finished_at", nullable=True),
    )
    op.create_index("ix_tasks_user_campaign", "tasks", ["user_id", "campaign_id"])
    op.create_table(
        "attempts",
        sa.Column("conversation_id", sa.String(32), _fk("conversations"), primary_key=True),
        sa.Column("task_id", sa.Integer(), _fk("tasks"), nullable=False),
        sa.Column("user_id", sa.Integer(), _fk("users"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        _at("started_at"),
    )
    op.create_index("ix_attempts_task_id", "attempts", ["task_id"])
    op.create_index("ix_attempts_user_id", "attempts", ["user_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(32), _fk("conversations"), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), _fk("users"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("needs_expertise", sa.Boolean(), nullable=False),
        _at("created_at"),
        _at("finished_at", nullable=True),
        sa.UniqueConstraint("conversation_id", "reviewer_id", name="uq_review_once"),
    )
    op.create_index("ix_reviews_conversation_id", "reviews", ["conversation_id"])
    op.create_index("ix_reviews_reviewer_id", "reviews", ["reviewer_id"])
    op.create_table(
        "wellbeing_surveys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), _fk("users"), nullable=False),
        sa.Column("campaign_id", sa.String(64), _fk("campaigns"), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("tasks_done", sa.Integer(), nullable=False),
        _at("created_at"),
    )
    op.create_index("ix_wellbeing_surveys_user_id", "wellbeing_surveys", ["user_id"])
    op.create_index("ix_wellbeing_surveys_campaign_id", "wellbeing_surveys", ["campaign_id"])
    op.create_table(
        "topic_opt_outs",
        sa.Column("user_id", sa.Integer(), _fk("users"), primary_key=True),
        sa.Column("campaign_id", sa.String(64), _fk("campaigns"), primary_key=True),
        sa.Column("topic", sa.String(200), primary_key=True),
    )


def downgrade() -> None:
    for table in ("topic_opt_outs", "wellbeing_surveys", "reviews", "attempts", "tasks", "campaigns",
                  "login_attempts", "sessions", "users"):
        op.drop_table(table)

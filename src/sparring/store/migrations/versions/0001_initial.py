"""Initial schema: runs, targets, conversations, utterances, scores, transcript scores, comparison pairs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _conversation_fk() -> sa.ForeignKey:
    return sa.ForeignKey("conversations.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("config_toml", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "targets",
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("size", sa.String(32), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("attack", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("repetition", sa.Integer(), nullable=False),
        sa.Column("task_description", sa.Text(), nullable=False),
        sa.Column("red_team_member", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("n_turns", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("run_id", "target", "attack", "item_id", "repetition", name="uq_conversation_unit"),
    )
    op.create_index("ix_conversations_run_status", "conversations", ["run_id", "status"])
    op.create_table(
        "utterances",
        sa.Column("conversation_id", sa.String(32), _conversation_fk(), primary_key=True),
        sa.Column("turn_index", sa.Integer(), primary_key=True),
        sa.Column("sample_index", sa.Integer(), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("picked", sa.Boolean(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
    )
    op.create_table(
        "scores",
        sa.Column("conversation_id", sa.String(32), _conversation_fk(), primary_key=True),
        sa.Column("turn_index", sa.Integer(), primary_key=True),
        sa.Column("sample_index", sa.Integer(), primary_key=True),
        sa.Column("scorer", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "transcript_scores",
        sa.Column("conversation_id", sa.String(32), _conversation_fk(), primary_key=True),
        sa.Column("scorer", sa.String(64), primary_key=True),
        sa.Column("aggregate", sa.String(32), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_table(
        "comparison_pairs",
        sa.Column("conversation_id", sa.String(32), _conversation_fk(), primary_key=True),
        sa.Column("turn_index", sa.Integer(), primary_key=True),
        sa.Column("chosen_sample", sa.Integer(), primary_key=True),
        sa.Column("rejected_sample", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    for table in ("comparison_pairs", "transcript_scores", "scores", "utterances", "conversations", "targets", "runs"):
        op.drop_table(table)

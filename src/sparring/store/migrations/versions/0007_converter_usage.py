"""Converter usage: the model calls and tokens a human turn's converters spent (a paraphrase converter).

Kept apart from ``queries`` and ``completion_tokens``: those are the attacker's own spend, which
its budget reads back on resume; a converter's calls are the converter's cost, reported beside it.
Null when no converter called a model.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.add_column(sa.Column("converter_queries", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("converter_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.drop_column("converter_tokens")
        batch.drop_column("converter_queries")

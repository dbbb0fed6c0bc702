"""Attacker usage: the model calls a generated human turn cost (``utterances.queries``; tokens in ``completion_tokens``).

Null for people and dataset replay, which spend no model calls on the human side.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.add_column(sa.Column("queries", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.drop_column("queries")

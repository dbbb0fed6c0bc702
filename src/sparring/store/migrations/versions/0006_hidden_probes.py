"""Searching attackers: the target replies a generated human turn's search saw and dropped (``utterances.hidden``).

TAP's other branches and Crescendo's backtracked turns are counted in the turn's
``queries`` but never stored as turns; this column says how many of them there were.
Null for every other human side.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.add_column(sa.Column("hidden", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("utterances") as batch:
        batch.drop_column("hidden")

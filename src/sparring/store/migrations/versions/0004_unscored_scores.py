"""Unscored results: scores.value and scores.flagged become nullable, with the scorer's reason in scores.unscored.

Existing rows are all scored and keep their values; the check constraint keeps a
row either scored (value set, no reason) or unscored (no value, a reason).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHECK = "ck_scores_value_or_unscored"


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("unscored", sa.String(200), nullable=True))
        batch.alter_column("value", existing_type=sa.Float(), nullable=True)
        batch.alter_column("flagged", existing_type=sa.Boolean(), nullable=True)
        batch.create_check_constraint(CHECK, "(value IS NULL) = (unscored IS NOT NULL)")


def downgrade() -> None:
    """Unscored rows have no value to keep under the old schema: they are dropped."""
    op.execute(sa.text("DELETE FROM scores WHERE value IS NULL"))
    with op.batch_alter_table("scores") as batch:
        batch.drop_constraint(CHECK, type_="check")
        batch.alter_column("flagged", existing_type=sa.Boolean(), nullable=False)
        batch.alter_column("value", existing_type=sa.Float(), nullable=False)
        batch.drop_column("unscored")

"""Web hardening: one open task per person and campaign, one survey per milestone, sessions tied to the password,
login attempts counted while pending.

Existing data survives: duplicate open tasks (from the old check-then-insert
race) keep the newest open and the others become skipped; duplicate surveys keep
the first; live sessions get their user's password stamp, so nobody is logged out.

Revision ID: 0003
Revises: 0002
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def _stamp(password_hash: str) -> str:
    # Same formula as sparring.web.security.password_stamp, frozen here as migrations must be.
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _deduplicate(connection: sa.Connection) -> None:
    now = datetime.now(UTC)
    duplicates = connection.execute(sa.text(
        "SELECT t.id FROM tasks t WHERE t.status = 'open' AND EXISTS (SELECT 1 FROM tasks n WHERE n.status = 'open' "
        "AND n.campaign_id = t.campaign_id AND n.user_id = t.user_id AND n.id > t.id)")).scalars().all()
    for task_id in duplicates:
        connection.execute(sa.text(
            "UPDATE conversations SET status = 'skipped' WHERE status = 'open' AND id IN "
            "(SELECT conversation_id FROM attempts WHERE task_id = :task)"), {"task": task_id})
        connection.execute(sa.text("UPDATE attempts SET skipped = :yes WHERE task_id = :task AND conversation_id IN "
                                   "(SELECT id FROM conversations WHERE status = 'skipped')"),
                           {"task": task_id, "yes": True})
        connection.execute(sa.text("UPDATE tasks SET status = 'skipped', finished_at = :now WHERE id = :task"),
                           {"task": task_id, "now": now})
    connection.execute(sa.text(
        "DELETE FROM wellbeing_surveys WHERE EXISTS (SELECT 1 FROM wellbeing_surveys f WHERE "
        "f.user_id = wellbeing_surveys.user_id AND f.campaign_id = wellbeing_surveys.campaign_id AND "
        "f.tasks_done = wellbeing_surveys.tasks_done AND f.id < wellbeing_surveys.id)"))


def upgrade() -> None:
    connection = op.get_bind()
    _deduplicate(connection)
    op.create_index("uq_tasks_one_open", "tasks", ["campaign_id", "user_id"], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index("uq_survey_once", "wellbeing_surveys", ["user_id", "campaign_id", "tasks_done"], unique=True)
    op.create_index("ix_login_attempts_address_at", "login_attempts", ["address", "at"])
    op.add_column("login_attempts", sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("sessions", sa.Column("password_stamp", sa.String(16), nullable=True))
    for user_id, password_hash in connection.execute(sa.text("SELECT id, password_hash FROM users")).all():
        connection.execute(sa.text("UPDATE sessions SET password_stamp = :stamp WHERE user_id = :user"),
                           {"stamp": _stamp(password_hash), "user": user_id})


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("password_stamp")
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_column("pending")
    op.drop_index("ix_login_attempts_address_at", "login_attempts")
    op.drop_index("uq_survey_once", "wellbeing_surveys")
    op.drop_index("uq_tasks_one_open", "tasks")

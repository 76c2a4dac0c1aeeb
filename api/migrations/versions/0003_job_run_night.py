"""job runs: the UNIQUE key moves to the scheduled night (NULL for an admin's run), and the trigger is recorded

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("night", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("trigger", sa.String(length=16), nullable=False, server_default="schedule"))
    op.execute("UPDATE job_runs SET night = run_date")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.alter_column("trigger", server_default=None)
        batch_op.drop_constraint(batch_op.f("uq_job_runs_job_run_date"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_job_runs_job_night"), ["job", "night"])
        batch_op.create_check_constraint(
            batch_op.f("ck_job_runs_trigger"), "trigger IN ('schedule', 'catch-up', 'manual')"
        )
        batch_op.create_index(batch_op.f("ix_job_runs_job_started_at"), ["job", "started_at"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM job_runs WHERE night IS NULL")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_runs_job_started_at"))
        batch_op.drop_constraint(batch_op.f("ck_job_runs_trigger"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_job_runs_job_night"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_job_runs_job_run_date"), ["job", "run_date"])
        batch_op.drop_column("trigger")
        batch_op.drop_column("night")

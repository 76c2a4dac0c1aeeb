"""job run ledger: one row per scheduled job and planning date (UNIQUE), and the run history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 08:46:54.467174
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("plan_version_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'published', 'kept', 'failed')", name=op.f("ck_job_runs_status")),
        sa.ForeignKeyConstraint(
            ["plan_version_id"], ["plan_versions.id"], name=op.f("fk_job_runs_plan_version_id_plan_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "run_date", name=op.f("uq_job_runs_job_run_date")),
    )


def downgrade() -> None:
    op.drop_table("job_runs")

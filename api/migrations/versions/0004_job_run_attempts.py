"""job runs: every attempt is a row (a night's re-run links to the interrupted one), one run at a time

``retry_of`` links a night's re-run to the attempt it repeats (UNIQUE: one re-run per attempt); the
UNIQUE (job, night) becomes a UNIQUE index over first attempts; a partial UNIQUE index lets one run
of a job be ``running`` at a time. Existing rows are kept as they are, except that where several
runs of a job were marked running at once (possible before this revision), all but the newest
are closed as failed, saying why.

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FIRST_ATTEMPT = "retry_of IS NULL"
RUNNING = "status = 'running'"
CLOSED = {
    "summary": "closed by the upgrade to one run at a time: a newer run of the job was marked running too; "
    "this one's outcome was not recorded and its plan, if any, was published on its own"
}


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}


def upgrade() -> None:
    runs = sa.table(
        "job_runs",
        sa.column("id", sa.Integer),
        sa.column("job", sa.String),
        sa.column("status", sa.String),
        sa.column("finished_at", sa.DateTime(timezone=True)),
        sa.column("report", sa.JSON),
    )
    newer = runs.alias("newer")
    op.get_bind().execute(
        sa.update(runs)
        .where(
            runs.c.status == "running",
            sa.exists().where(newer.c.job == runs.c.job, newer.c.status == "running", newer.c.id > runs.c.id),
        )
        .values(status="failed", finished_at=datetime.now(UTC), report=CLOSED)
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_of", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_job_runs_retry_of_job_runs"), "job_runs", ["retry_of"], ["id"])
        batch_op.create_unique_constraint(batch_op.f("uq_job_runs_retry_of"), ["retry_of"])
        batch_op.drop_constraint(batch_op.f("uq_job_runs_job_night"), type_="unique")
    op.create_index(
        "uq_job_runs_night_first_attempt", "job_runs", ["job", "night"], unique=True, **_partial(FIRST_ATTEMPT)
    )
    op.create_index("uq_job_runs_one_running", "job_runs", ["job"], unique=True, **_partial(RUNNING))


def downgrade() -> None:
    # one row per night again: the night stays with its latest attempt; earlier ones keep their
    # history as runs with no night
    op.execute(
        "UPDATE job_runs SET night = NULL WHERE id IN (SELECT retry_of FROM job_runs WHERE retry_of IS NOT NULL)"
    )
    op.drop_index("uq_job_runs_one_running", table_name="job_runs")
    op.drop_index("uq_job_runs_night_first_attempt", table_name="job_runs")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_job_runs_job_night"), ["job", "night"])
        batch_op.drop_constraint(batch_op.f("uq_job_runs_retry_of"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_job_runs_retry_of_job_runs"), type_="foreignkey")
        batch_op.drop_column("retry_of")

"""what actually happens: step records, products and their chain of custody, calendar links

New tables, all append-only in use: ``step_records`` (a booked step started, done, missed or
cancelled), ``products`` (the identifiers of a collection's product) and ``custody_events`` (its
chain of custody), and ``calendar_links`` (revocable secret links to a patient's calendar feed).
``plan_versions.planning_day`` and ``capacity_changes.created_on``/``withdrawn_on`` say which
planning day a version or change was made on (NULL for those made before this revision), so that a
past day is shown from the plan and the capacity in force on it. An NHS number is unique
among patients who are not withdrawn (it was unique among all), so a withdrawn patient keeps theirs
and a new referral may use it. Existing rows are kept as they are.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ACTIVE = "status != 'withdrawn'"
OUTCOMES = "outcome IN ('started', 'done', 'missed', 'cancelled')"
KINDS = (
    "kind IN ('collected', 'shipped', 'received', 'manufacture_started', 'expected_back', 'shipped_back', "
    "'received_at_centre', 'released', 'out_of_specification', 'exceptional_release', 'issued', 'infused', 'lost')"
)


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("collection_step", sa.String(length=64), nullable=False),
        sa.Column("din", sa.String(length=13), nullable=True),
        sa.Column("din_check", sa.String(length=1), nullable=True),
        sa.Column("product_code", sa.String(length=8), nullable=True),
        sa.Column("chain_of_identity", sa.String(length=64), nullable=True),
        sa.Column("order_reference", sa.String(length=64), nullable=True),
        sa.Column("bags", sa.Integer(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint("bags IS NULL OR bags > 0", name=op.f("ck_products_bags")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_products_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    op.create_index(op.f("ix_products_din"), "products", ["din"], unique=False)
    op.create_index(op.f("ix_products_patient_id"), "products", ["patient_id"], unique=False)
    op.create_table(
        "custody_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_custody_events_kind")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_custody_events_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_events")),
    )
    op.create_index(op.f("ix_custody_events_product_id_id"), "custody_events", ["product_id", "id"], unique=False)
    op.create_table(
        "step_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_step_records_outcome")),
        sa.CheckConstraint(
            "last_day IS NULL OR first_day IS NULL OR last_day >= first_day", name=op.f("ck_step_records_days")
        ),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_step_records_booking_id_bookings")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_step_records_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_records")),
    )
    op.create_index(op.f("ix_step_records_booking_id"), "step_records", ["booking_id"], unique=False)
    op.create_index(op.f("ix_step_records_patient_id_step"), "step_records", ["patient_id", "step"], unique=False)
    op.create_table(
        "calendar_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_calendar_links_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_links_token_hash")),
    )
    op.create_index(op.f("ix_calendar_links_patient_id"), "calendar_links", ["patient_id"], unique=False)
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("planning_day", sa.Date(), nullable=True))
    with op.batch_alter_table("capacity_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_on", sa.Date(), nullable=True))
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_patients_nhs_number"), type_="unique")
    op.create_index(
        "uq_patients_active_nhs_number",
        "patients",
        ["nhs_number"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    _append_only()


FACTS = ("step_records", "custody_events")


def _append_only() -> None:
    """What happened is only ever added to: UPDATE and DELETE (and on PostgreSQL TRUNCATE) of a step
    record or a custody event are refused, whoever asks (as the audit log's, revision 0001)."""
    for table in FACTS:
        if op.get_bind().dialect.name == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
            continue
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )


def _drop_append_only() -> None:
    for table in FACTS:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER {table}_no_change ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP FUNCTION {table}_append_only()")


def downgrade() -> None:
    _drop_append_only()
    # Fails (and changes nothing) if two patients share an NHS number, one of them withdrawn: that
    # history cannot be kept by the older schema.
    op.drop_index("uq_patients_active_nhs_number", table_name="patients")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_patients_nhs_number"), ["nhs_number"])
    with op.batch_alter_table("capacity_changes", schema=None) as batch_op:
        batch_op.drop_column("withdrawn_on")
        batch_op.drop_column("created_on")
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.drop_column("planning_day")
    op.drop_index(op.f("ix_calendar_links_patient_id"), table_name="calendar_links")
    op.drop_table("calendar_links")
    op.drop_index(op.f("ix_step_records_patient_id_step"), table_name="step_records")
    op.drop_index(op.f("ix_step_records_booking_id"), table_name="step_records")
    op.drop_table("step_records")
    op.drop_index(op.f("ix_custody_events_product_id_id"), table_name="custody_events")
    op.drop_table("custody_events")
    op.drop_index(op.f("ix_products_patient_id"), table_name="products")
    op.drop_index(op.f("ix_products_din"), table_name="products")
    op.drop_table("products")

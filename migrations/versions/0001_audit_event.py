"""The audit event table, its unique chain indexes and the append-only triggers.

Revision ID: 0001_audit_event
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_audit_event"
down_revision = None
branch_labels = None
depends_on = None

_REFUSAL = "audit_event is append-only"


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("occurred_at", sa.String(27), nullable=False),
        sa.Column("mono_ns", sa.BigInteger, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_uid", sa.BigInteger, nullable=True),
        sa.Column("actor_name", sa.String(120), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("pump_id", sa.String(80), nullable=True),
        sa.Column("session_id", sa.String(80), nullable=True),
        sa.Column("patient_ref", sa.String(64), nullable=True),
        sa.Column("event_type", sa.String(80), nullable=False),
        sa.Column("correlation_id", sa.String(80), nullable=True),
        sa.Column("simulated", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("event_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_event"),
        sa.CheckConstraint("seq > 0", name="ck_audit_event_seq_positive"),
        sa.CheckConstraint("actor_kind IN ('person', 'daemon')", name="ck_audit_event_actor_kind"),
        sa.CheckConstraint(
            "length(prev_hash) = 64 AND length(event_hash) = 64", name="ck_audit_event_hash_len"
        ),
    )
    # Unique indexes rather than table constraints, so the tamper tests can show what a
    # superuser who drops them can do, and what verification still catches.
    op.create_index("uq_audit_event_prev_hash", "audit_event", ["prev_hash"], unique=True)
    op.create_index("uq_audit_event_event_hash", "audit_event", ["event_hash"], unique=True)
    op.create_index("ix_audit_event_session", "audit_event", ["session_id", "event_type", "seq"])
    op.create_index("ix_audit_event_patient", "audit_event", ["patient_ref", "seq"])
    op.create_index("ix_audit_event_pump", "audit_event", ["pump_id", "seq"])
    op.create_index("ix_audit_event_type_time", "audit_event", ["event_type", "occurred_at"])
    op.create_index("ix_audit_event_time", "audit_event", ["occurred_at"])
    op.create_index("ix_audit_event_actor", "audit_event", ["actor_name", "seq"])
    op.create_index("ix_audit_event_correlation", "audit_event", ["correlation_id", "event_type"])
    create_protection()


def create_protection() -> None:
    """The triggers that refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL).

    Any later revision that rebuilds the table (SQLite batch mode) must call this again.
    """
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb} BEFORE {verb.upper()} ON audit_event "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION audit_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{_REFUSAL} (% refused)', TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change()"
    )
    op.execute("REVOKE ALL ON audit_event FROM PUBLIC")


def downgrade() -> None:
    raise RuntimeError("downgrade of the audit log is not supported")

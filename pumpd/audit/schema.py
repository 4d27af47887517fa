"""The event table as SQLAlchemy sees it at run time.

The schema itself is made only by the Alembic migrations in ``migrations/``; this module
describes the same table so the store can build statements. ``tests/audit`` compares the
two after migrating, so they cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TABLE = "audit_event"
READ_VIEW = "audit_events"
"""The auditor's view over the whole table; the read side uses it so that the auditor
role needs SELECT on views only."""


_SEQ_TYPE = BigInteger().with_variant(Integer, "sqlite")


def event_row_columns() -> list[Column[Any]]:
    """The event row in SQL, fresh objects per table: the site's ``audit_event`` and the
    centre's ``central_event`` (which adds its site and arrival time around it) are the
    same row. Names and order are ``pumpd.audit.chain.COLUMNS``."""
    return [
        Column(
            "seq",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        Column("occurred_at", String(27), nullable=False),
        Column("mono_ns", BigInteger, nullable=False),
        Column("host", String(255), nullable=False),
        Column("instance_id", String(36), nullable=False),
        Column("actor_kind", String(16), nullable=False),
        Column("actor_uid", BigInteger, nullable=True),
        Column("actor_name", String(120), nullable=False),
        Column("actor_role", String(32), nullable=False),
        Column("pump_id", String(80), nullable=True),
        Column("session_id", String(80), nullable=True),
        Column("patient_ref", String(64), nullable=True),
        Column("event_type", String(80), nullable=False),
        Column("correlation_id", String(80), nullable=True),
        Column("simulated", Boolean(create_constraint=False), nullable=False),
        Column("payload", Text, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("event_hash", String(64), nullable=False),
    ]


audit_event = Table(
    TABLE,
    metadata,
    *event_row_columns(),
    Index("uq_audit_event_prev_hash", "prev_hash", unique=True),
    Index("uq_audit_event_event_hash", "event_hash", unique=True),
    Index("ix_audit_event_session", "session_id", "event_type", "seq"),
    Index("ix_audit_event_patient", "patient_ref", "seq"),
    Index("ix_audit_event_pump", "pump_id", "seq"),
    Index("ix_audit_event_type_time", "event_type", "occurred_at"),
    Index("ix_audit_event_time", "occurred_at"),
    Index("ix_audit_event_actor", "actor_name", "seq"),
    Index("ix_audit_event_correlation", "correlation_id", "event_type"),
)

PROTECTION_TRIGGERS_SQLITE = ("audit_event_no_update", "audit_event_no_delete")
PROTECTION_TRIGGERS_POSTGRES = ("audit_event_no_update_delete", "audit_event_no_truncate")
UNIQUE_INDEXES = ("uq_audit_event_prev_hash", "uq_audit_event_event_hash")

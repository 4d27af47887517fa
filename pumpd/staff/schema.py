"""The staff registry's table as SQLAlchemy sees it at run time.

The registry is state, not record: a member's PIN hash, enabled flag, failure count and
lock change in place, so it lives beside the append-only log, never in it. The table is
made only by its Alembic migration (``migrations/versions/0003_staff_registry.py``, in the
site store's migrations); ``tests/audit`` compares the two after migrating.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table

from pumpd.audit.schema import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

staff_member = Table(
    "staff_member",
    metadata,
    Column("staff_id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("role", String(32), nullable=False),
    Column("pin_hash", String(255), nullable=False),
    Column("enabled", Boolean(create_constraint=False), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until", String(27), nullable=True),
    Column("created_at", String(27), nullable=False),
    Column("changed_at", String(27), nullable=False),
)

"""The central store's tables as SQLAlchemy sees them at run time.

Made only by the central migrations (``migrations/central``); ``tests/central`` compares
the two after migrating, so they cannot drift apart silently.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, Text

from pumpd.audit.schema import NAMING_CONVENTION, event_row_columns

metadata = MetaData(naming_convention=NAMING_CONVENTION)

central_site = Table(
    "central_site",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("identity", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

central_event = Table(
    "central_event",
    metadata,
    Column("site", String(64), primary_key=True),
    *event_row_columns(),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

central_head = Table(
    "central_head",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("site", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("mac", String(128), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

central_conflict = Table(
    "central_conflict",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("site", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("held_hash", String(64), nullable=True),
    Column("offered_hash", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
)

SITE_SETTING = "pumpd.site"
"""The session setting that narrows the centre's views to one site (pumpaudit --site)."""

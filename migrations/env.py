"""Alembic environment for the audit database; configured from code, never from an ini file.

``pumpd.audit.migrate`` passes an open connection in ``config.attributes["connection"]`` so
the caller's engine settings (SQLite WAL, synchronous=FULL, BEGIN IMMEDIATE) also govern
migrations. The whole upgrade runs in one transaction: it applies completely or not at all.
The site's database holds the append-only log (``pumpd.audit.schema``) and, beside it, the
staff registry (``pumpd.staff.schema``); both are made only here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pumpd.audit.schema import metadata as audit_metadata
from pumpd.db import make_engine
from pumpd.staff.schema import metadata as staff_metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=[audit_metadata, staff_metadata])
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported for the audit log")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()

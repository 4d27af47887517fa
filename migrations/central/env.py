"""Alembic environment for a central store (PostgreSQL); configured from code.

A script directory of its own, apart from the sites' ``migrations/versions``: ``pumpd db
upgrade`` of a site never sees these revisions and ``pumpd central upgrade`` never sees the
sites' (each refuses the other's database by its revision). ``pumpd.central.migrate``
passes an open connection in ``config.attributes["connection"]``; the whole upgrade runs
in one transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pumpd.central.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported for a central store")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run central migrations through `pumpd central upgrade`")
    _run(connection)


_main()

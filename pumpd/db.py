"""Database URLs and engines for the audit store, with the durability settings built in.

Every engine pumpd opens goes through :func:`make_engine`, so an SQLite file is always in
WAL mode with ``synchronous=FULL`` (a commit survives power loss), foreign keys on, a busy
timeout instead of instant "database is locked" errors, and ``BEGIN IMMEDIATE`` so two
writers never both read the same chain head. PostgreSQL needs nothing per connection:
appends serialize on an advisory transaction lock inside the store.

Reads and writes: a transaction that may write is opened on the engine itself
(``engine.begin()``); one that only reads is opened on :func:`reader` of it
(``reader(engine).connect()``). The one ``begin`` hook below tells them apart: on SQLite
a write begins ``BEGIN IMMEDIATE`` (it holds the write lock from its first statement), a
read begins ``BEGIN`` (DEFERRED), which in WAL mode never takes the write lock, so no
reader, however long, makes the audit writer wait, nor waits for it. A read whose answer
decides a write (the chain head, a PIN failure count) belongs inside the write
transaction, never in a reader before it. PostgreSQL is the same either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_DATABASE = "PUMPD_DATABASE"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_READER = "pumpd_reader"
"""The execution option that marks :func:`reader` engines (and their connections)."""


class DatabaseUrlError(ValueError):
    """The database named by the user is not one pumpd can use."""


def normalize_url(raw: str) -> URL:
    """Turn what a user types into the URL SQLAlchemy needs.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3 is the
    only PostgreSQL driver installed); a bare file path becomes an SQLite URL. Anything else
    is refused by name rather than failing later inside a driver.
    """
    text = raw.strip()
    if not text:
        raise DatabaseUrlError("the database URL is empty")
    if "\x00" in text:
        raise DatabaseUrlError(f"the database URL {text!r} contains a NUL character")
    if "://" not in text:
        try:
            text = f"sqlite:///{Path(text).expanduser().absolute()}"
        except RuntimeError as exc:  # "~user/..." for a user this machine does not know
            raise DatabaseUrlError(f"cannot expand {text!r}: {exc}") from None
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"cannot parse database URL {text!r}: {exc}") from exc
    except ValueError as exc:  # sqlalchemy reads the port with int(): "h:abc", "[::1/db"
        raise DatabaseUrlError(f"cannot parse database URL {text!r}: bad port ({exc})") from exc
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise DatabaseUrlError(
                f"PostgreSQL driver {driver!r} is not supported; use postgresql+psycopg://"
            )
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise DatabaseUrlError(f"SQLite driver {driver!r} is not supported; use sqlite://")
        if not url.database or url.database == ":memory:":
            raise DatabaseUrlError(
                "an in-memory SQLite database cannot hold an audit log; name a file"
            )
        return url.set(drivername="sqlite+pysqlite")
    raise DatabaseUrlError(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://..."
    )


def url_from_env(explicit: str | None) -> URL:
    """The URL from ``--database`` or, failing that, ``PUMPD_DATABASE``."""
    raw = explicit if explicit else os.environ.get(ENV_DATABASE, "")
    if not raw:
        raise DatabaseUrlError(f"no database given: pass --database URL or set {ENV_DATABASE}")
    return normalize_url(raw)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def make_engine(url: URL | str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """An engine with pumpd's durability settings; see the module docstring for why.

    ``read_only`` (the auditors' tools) returns :func:`reader` of it: every transaction
    only reads, so a long export cannot stall the daemon.
    """
    real = normalize_url(url) if isinstance(url, str) else url
    if is_sqlite(real):
        engine = create_engine(real, **kwargs)
        _install_sqlite_hooks(engine)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(real, **kwargs)
    return reader(engine) if read_only else engine


def reader(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: the same database, pool and settings,
    but on SQLite its transactions begin DEFERRED, so in WAL mode they never hold (nor
    wait for) the write lock. On PostgreSQL nothing changes. Disposing of it disposes of
    the pool it shares with ``engine``."""
    return engine.execution_options(**{_READER: True})


def _install_sqlite_hooks(engine: Engine) -> None:
    # Pattern from the SQLAlchemy 2.1 sqlite dialect docs: take transaction control away
    # from pysqlite so that our BEGIN is the one that runs.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    # The one place where reads and writes part: reader() connections begin DEFERRED.
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        reads = conn.get_execution_options().get(_READER, False)
        conn.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")

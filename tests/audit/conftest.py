"""Fixtures for the audit tests: every test that takes ``db`` runs on SQLite and PostgreSQL.

PostgreSQL comes from ``PUMPD_TEST_PG_URL``. Each test gets its own database (created
with a unique name, dropped afterwards with FORCE); roles are cluster-wide, so tests that
need roles make uniquely named ones and drop them. Without a reachable server the
PostgreSQL half is skipped loudly (a warning and a line in the terminal summary); with
``CI=true`` it fails instead.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pumpd.audit import migrate
from pumpd.audit.store import AuditStore
from pumpd.db import make_engine, normalize_url

PG_ENV = "PUMPD_TEST_PG_URL"
_pg_state: dict[str, str | None] = {}


def _pg_admin_conninfo() -> str | None:
    """The server's conninfo for admin work, or None (and a reason) when unusable."""
    if "conninfo" in _pg_state:
        return _pg_state["conninfo"]
    raw = os.environ.get(PG_ENV, "")
    if not raw:
        _pg_state.update(conninfo=None, reason=f"{PG_ENV} is not set")
        return None
    conninfo = raw.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _pg_state.update(conninfo=None, reason=f"PostgreSQL at {raw} unreachable: {exc}")
        return None
    _pg_state.update(conninfo=conninfo, reason=None)
    return conninfo


def require_postgres() -> str:
    conninfo = _pg_admin_conninfo()
    if conninfo is not None:
        return conninfo
    reason = _pg_state.get("reason") or "PostgreSQL unavailable"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires PostgreSQL for the audit suite: {reason}", pytrace=False)
    warnings.warn(f"PostgreSQL audit tests SKIPPED: {reason}", stacklevel=1)
    pytest.skip(f"PostgreSQL audit tests SKIPPED: {reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reason = _pg_state.get("reason")
    if "conninfo" in _pg_state and _pg_state["conninfo"] is None:
        terminalreporter.write_sep(
            "!",
            f"PostgreSQL half of tests/audit was SKIPPED ({reason}); set {PG_ENV}",
            red=True,
            bold=True,
        )


@dataclass
class Db:
    """A test database: its URL, back end, and superuser access for tampering."""

    backend: str
    url: str
    path: Path | None = None
    pg_conninfo: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def admin(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement as the database superuser / file owner, bypassing the store."""
        if self.is_sqlite:
            assert self.path is not None
            con = sqlite3.connect(self.path, isolation_level=None)
            try:
                return con.execute(statement, params).fetchall()
            finally:
                con.close()
        assert self.pg_conninfo is not None
        with psycopg.connect(self.pg_conninfo, autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params or None)
            return cur.fetchall() if cur.description else []

    def admin_script(self, *statements: str) -> None:
        for statement in statements:
            self.admin(statement)

    def open_store(self, **kwargs: Any) -> AuditStore:
        return AuditStore.open(self.url, **kwargs)


def _pg_database(base: str) -> Iterator[Db]:
    name = f"pumpd_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(base, dbname=name)
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    url = normalize_url(f"postgresql://{_url_tail(info)}").render_as_string(hide_password=False)
    try:
        yield Db(backend="postgres", url=url, pg_conninfo=conninfo)
    finally:
        # DROP DATABASE waits for a checkpoint; run drops in the background while the next
        # tests go on. ``_dropped_at_end`` waits for all of them and fails on any error.
        _drops.append(_dropper.submit(_drop_database, base, name))


def _drop_database(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


_dropper = ThreadPoolExecutor(max_workers=3, thread_name_prefix="drop-test-db")
_drops: list[Future[None]] = []


@pytest.fixture(scope="session", autouse=True)
def _dropped_at_end() -> Iterator[None]:
    yield
    for future in _drops:
        future.result(timeout=120)
    _drops.clear()


def _url_tail(info: dict[str, Any]) -> str:
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"{user}{password}@{host}:{port}/{info['dbname']}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db(backend: str, tmp_path: Path) -> Iterator[Db]:
    """A database with no schema at all."""
    if backend == "sqlite":
        path = tmp_path / "audit.db"
        yield Db(backend="sqlite", url=f"sqlite:///{path}", path=path)
        return
    yield from _pg_database(require_postgres())


@pytest.fixture
def db(empty_db: Db) -> Db:
    """A database migrated to head."""
    engine = make_engine(empty_db.url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return empty_db


@pytest.fixture
def store(db: Db) -> Iterator[AuditStore]:
    s = db.open_store()
    yield s
    s.close()


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[Db]:
    """A migrated PostgreSQL database only (roles, TRUNCATE, advisory locks)."""
    for d in _pg_database(require_postgres()):
        engine = make_engine(d.url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        yield d


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "chain.key"
    path.write_bytes(os.urandom(48).hex().encode() + b"\n")
    path.chmod(0o600)
    return path

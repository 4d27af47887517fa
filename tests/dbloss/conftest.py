"""Fixtures for the database-loss cases: real SQLite files made full or
locked, a real PostgreSQL stopped and started or its connection cut, real spool files.

PostgreSQL comes from ``PUMPD_TEST_PG_URL`` like in tests/audit: without a reachable server
those cases are skipped loudly; with ``CI=true`` they fail. The server is shared by every
test run on the machine: a test that stops it starts it again at once, always in a
``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, event, text

from pumpd.audit import Actor, AuditStore, Hasher, NewEvent, migrate, verify
from pumpd.db import make_engine, normalize_url

PG_ENV = "PUMPD_TEST_PG_URL"
NURSE = Actor.person("nurse.ada", "nurse", 1001)


def note(task: int, i: int) -> NewEvent:
    """A small valid event that says which task sent it and its place in that task."""
    return NewEvent(
        "note.recorded",
        {"text": f"t{task}-{i}"},
        NURSE,
        session_id=f"S-{task}",
        patient_ref="P-0117",
    )


def require_postgres() -> str:
    raw = os.environ.get(PG_ENV, "")
    reason = f"{PG_ENV} is not set"
    if raw:
        conninfo = raw.replace("postgresql+psycopg://", "postgresql://")
        try:
            with psycopg.connect(conninfo, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return conninfo
        except psycopg.Error as exc:
            reason = f"PostgreSQL at {raw} unreachable: {exc}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires PostgreSQL for the database-loss cases: {reason}", pytrace=False)
    warnings.warn(f"PostgreSQL database-loss tests SKIPPED: {reason}", stacklevel=1)
    pytest.skip(f"PostgreSQL database-loss tests SKIPPED: {reason}")


@dataclass
class Db:
    """One migrated test database and how to reach it around the store."""

    backend: str
    url: str
    path: Path | None = None
    pg_conninfo: str | None = None
    engines: list[Engine] = field(default_factory=list)

    def store(
        self, *, busy_timeout_ms: int | None = None, max_pages: list[int] | None = None
    ) -> AuditStore:
        """A store as the daemon opens it, plus test hooks: a short SQLite busy timeout
        (the real one is 30 s) and ``max_pages[0]``, the SQLite page limit (0 = none)
        applied at every transaction, to make the database full on demand."""
        engine = make_engine(self.url, pool_pre_ping=False)
        self.engines.append(engine)
        if busy_timeout_ms is not None:

            @event.listens_for(engine, "connect")
            def _busy(dbapi_con: Any, _record: Any) -> None:
                dbapi_con.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")

        if max_pages is not None:

            @event.listens_for(engine, "begin", insert=True)
            def _limit(conn: Any) -> None:
                limit = max_pages[0] or 1073741823  # SQLite's default maximum
                conn.exec_driver_sql(f"PRAGMA max_page_count={limit}")

        return AuditStore(engine)

    def notes(self) -> list[str]:
        """Every note's text, in chain order."""
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT payload FROM audit_event ORDER BY seq")).scalars()
                return [p.split('"text":"')[1].split('"')[0] for p in rows if '"text":"' in p]
        finally:
            engine.dispose()

    def chain_intact(self) -> int:
        """Verify the whole chain (pumpaudit verify's check); return the event count."""
        engine = make_engine(self.url, read_only=True)
        try:
            result = verify(engine, Hasher(None))
            assert result.ok, f"chain broken: {result}"
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT seq FROM audit_event ORDER BY seq"))
                seqs = list(rows.scalars())
            assert seqs == list(range(1, len(seqs) + 1)), "seq has gaps or duplicates"
            return len(seqs)
        finally:
            engine.dispose()

    def page_count(self) -> int:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        finally:
            engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Db]:
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    migrate.upgrade_url(url)
    db = Db(backend="sqlite", url=url, path=path)
    yield db
    for engine in db.engines:
        engine.dispose()


@pytest.fixture
def pg_db() -> Iterator[Db]:
    base = require_postgres()
    name = f"pumpd_dbloss_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(base, dbname=name)
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
    url = normalize_url(f"postgresql://{user}{password}@{host}:{port}/{name}").render_as_string(
        hide_password=False
    )
    migrate.upgrade_url(url)
    db = Db(backend="postgres", url=url, pg_conninfo=conninfo)
    try:
        yield db
    finally:
        for engine in db.engines:
            engine.dispose()
        with wait_for_pg(base), psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def wait_for_pg(conninfo: str, within_s: float = 60.0) -> Iterator[None]:
    """Wait (bounded) until the server takes connections again."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@contextlib.contextmanager
def postgres_stopped(conninfo: str) -> Iterator[Callable[[], None]]:
    """Stop the local cluster; yields ``start`` (call it to bring it back early). The
    server is always running again when the block ends, whatever happened inside."""
    if not os.path.isdir("/etc/postgresql"):
        pytest.skip("no local PostgreSQL cluster to stop (pg_ctlcluster)")
    started = [False]

    def start() -> None:
        if not started[0]:
            subprocess.run([*_cluster(), "start"], check=True, capture_output=True, timeout=60)
            started[0] = True
            with wait_for_pg(conninfo):
                pass

    subprocess.run([*_cluster(), "stop", "-m", "fast"], check=True, capture_output=True, timeout=60)
    try:
        yield start
    finally:
        start()


async def wait_until(predicate: Callable[[], bool], *, within_s: float, what: str) -> None:
    """Wait (real seconds, a bound, not a speed check) for ``predicate``."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tiny real file system (root only); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return filler

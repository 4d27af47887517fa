"""A central store on the real PostgreSQL (its own database per test) and sites on SQLite.

The centre comes from ``PUMPD_TEST_PG_URL`` like tests/audit: each test gets a uniquely
named database, migrated with the central migrations, dropped afterwards. Sites are
real audit stores on SQLite files in the test's temporary directory.
"""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pumpd.audit import Actor, AuditStore, NewEvent, migrate
from pumpd.central import migrate as central_migrate
from pumpd.central.forwarder import Forwarder, ForwardSettings, StepResult
from pumpd.db import make_engine, normalize_url

PG_ENV = "PUMPD_TEST_PG_URL"
NURSE = Actor.person("nurse.alvarez", "nurse", 1001)


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
        pytest.fail(f"CI requires PostgreSQL for the central store: {reason}", pytrace=False)
    warnings.warn(f"central store tests SKIPPED: {reason}", stacklevel=1)
    pytest.skip(f"central store tests SKIPPED: {reason}")


@dataclass
class Centre:
    url: str
    conninfo: str

    def admin(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description else []

    def events(self, site: str) -> list[tuple[Any, ...]]:
        """Every held row of ``site`` (the site's columns, no site/received_at), by seq."""
        return self.admin(
            "SELECT seq, occurred_at, mono_ns, host, instance_id, actor_kind, actor_uid, "
            "actor_name, actor_role, pump_id, session_id, patient_ref, event_type, "
            "correlation_id, simulated, payload, prev_hash, event_hash FROM central_event "
            "WHERE site = %s ORDER BY seq",
            (site,),
        )

    def conflicts(self, site: str | None = None) -> list[tuple[Any, ...]]:
        where = "" if site is None else " WHERE site = %s"
        return self.admin(
            f"SELECT site, seq, kind FROM central_conflict{where} ORDER BY id",
            () if site is None else (site,),
        )

    def terminate_forwarders(self) -> int:
        rows = self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'pumpd-forward'"
        )
        return len(rows)


def _url(conninfo: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return normalize_url(
        f"postgresql://{user}{password}@{host}:{port}/{info['dbname']}"
    ).render_as_string(hide_password=False)


@pytest.fixture
def centre() -> Iterator[Centre]:
    base = require_postgres()
    name = f"pumpd_c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(base, dbname=name)
    url = _url(conninfo)
    engine = make_engine(url)
    try:
        central_migrate.upgrade(engine)
    finally:
        engine.dispose()
    try:
        yield Centre(url=url, conninfo=conninfo)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Site:
    """One clinic: its SQLite audit log, its forwarder's settings and mark file."""

    name: str
    path: Path
    store: AuditStore
    settings: ForwardSettings
    forwarders: list[Forwarder] = field(default_factory=list)

    def append(self, count: int, session: str = "S-1") -> None:
        self.store.append_many(
            [
                NewEvent(
                    "daemon.announced",
                    {"notice_code": "test.filler", "message": f"{self.name} event {i}"},
                    Actor.daemon(),
                )
                for i in range(count)
            ]
        )

    def rows(self) -> list[tuple[Any, ...]]:
        import sqlite3

        con = sqlite3.connect(self.path)
        try:
            return [
                (*r[:14], bool(r[14]), *r[15:])
                for r in con.execute(
                    "SELECT seq, occurred_at, mono_ns, host, instance_id, actor_kind, actor_uid, "
                    "actor_name, actor_role, pump_id, session_id, patient_ref, event_type, "
                    "correlation_id, simulated, payload, prev_hash, event_hash FROM audit_event "
                    "ORDER BY seq"
                )
            ]
        finally:
            con.close()

    def forwarder(self, **changes: Any) -> Forwarder:
        from dataclasses import replace

        f = Forwarder(self.store.engine, replace(self.settings, **changes))
        self.forwarders.append(f)
        return f

    def close(self) -> None:
        for f in self.forwarders:
            f.close()
        self.store.close()


def drain(forwarder: Forwarder, limit: int = 1000) -> int:
    """Step until nothing waits; the events acknowledged."""
    total = 0
    for _ in range(limit):
        result: StepResult = forwarder.step()
        total += result.shipped
        if not result.full and forwarder.status().lag_events == 0:
            return total
    raise AssertionError("the forwarder did not catch up")


@pytest.fixture
def make_site(tmp_path: Path, centre: Centre) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(name: str, *, site_id: str | None = None, batch_size: int = 50) -> Site:
        directory = tmp_path / name
        directory.mkdir()
        path = directory / "audit.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        store = AuditStore.open(f"sqlite:///{path}")
        settings = ForwardSettings(
            url=centre.url,
            site=site_id or name,
            batch_size=batch_size,
            mark_file=directory / "forward.mark",
            interval_s=0.05,
            retry_max_s=1.0,
            connect_timeout_s=3.0,
        )
        site = Site(name=name, path=path, store=store, settings=settings)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; the list gets its result or its exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out

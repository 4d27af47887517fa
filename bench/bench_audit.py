"""Audit store benchmarks, each against a baseline from the same run.

SQLite (WAL, synchronous=FULL) always; PostgreSQL too when ``PUMPD_TEST_PG_URL`` (or
``PUMPD_BENCH_PG_URL``) reaches a server. Figures:
- durable appends/s through ``AuditStore.append`` vs a bare INSERT+COMMIT loop of the same
  rows on the same settings (goal: ratio >= 0.5);
- a burst through the group-committing ``AsyncAuditWriter`` vs the one-by-one store rate;
- verification of a 1 M-event chain (20 k with ``quick``) vs bare hashlib over the same
  bytes (goal: 1 M in < 10 s), the chain built by bulk insert of precomputed rows;
- latency of ``show SESSION`` and ``sessions --since`` (one day) on that chain (< 50 ms).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.report import Report, Row
from pumpd.audit import (
    COLUMNS,
    GENESIS_HASH,
    Actor,
    AsyncAuditWriter,
    AuditStore,
    Hasher,
    NewEvent,
    encode_row,
    iter_sessions,
    migrate,
    session_timeline,
    utc_text,
    verify,
)
from pumpd.audit.catalogue import payload_text
from pumpd.db import make_engine

EVENTS_PER_SESSION = 50
_DAEMON = ("daemon", 0, "pumpd", "daemon")
_NURSE = ("person", 1001, "nurse.alvarez", "nurse")
_NURSE_B = ("person", 1002, "nurse.berg", "nurse")


def _payloads() -> dict[str, str]:
    """One validated canonical payload per event shape (validating 1 M would time pydantic)."""
    return {
        "session.programmed": payload_text(
            "session.programmed",
            {
                "protocol_id": "ketamine_iv_depression",
                "protocol_version": "2.1",
                "protocol_sha256": hashlib.sha256(b"p").hexdigest(),
                "drug": "ketamine",
                "concentration_mg_ml": "1.0",
                "weight_kg": "70.0",
                "weight_basis": "actual",
                "dose_mg_kg": "0.50",
                "prescribed_dose_mg": "35.00",
                "rate_ml_h": "87.50",
                "volume_ul": 35000,
                "duration_s": 2400,
            },
        ),
        "double_check.completed": payload_text(
            "double_check.completed",
            {
                "first_checker": "nurse.alvarez",
                "second_checker": "nurse.berg",
                "fields_checked": ["weight_kg", "dose_mg_kg"],
            },
        ),
        "override.granted": payload_text(
            "override.granted",
            {
                "verdict_codes": ["dose.per_kg.above_soft_max"],
                "reason_code": "physician_order",
                "reason": "Confirmed with physician",
                "approved_by": "nurse.berg",
            },
        ),
        "pump.command.requested": payload_text(
            "pump.command.requested", {"command": "start", "rate_ml_h": "87.50"}
        ),
        "pump.command.confirmed": payload_text(
            "pump.command.confirmed",
            {"command": "start", "observed_state": "infusing", "latency_ms": 40},
        ),
        "session.started": payload_text(
            "session.started", {"rate_ml_h": "87.50", "volume_ul": 35000}
        ),
        "vitals.recorded": payload_text(
            "vitals.recorded",
            {"systolic_mmhg": 128, "heart_rate_bpm": 72, "spo2_percent": 98, "source": "monitor"},
        ),
        "alarm.raised": payload_text(
            "alarm.raised",
            {
                "alarm_code": "vitals.bp_high",
                "priority": "medium",
                "source": "vitals",
                "message": "Systolic 182 mmHg above 180 mmHg",
            },
        ),
        "alarm.acknowledged": payload_text("alarm.acknowledged", {"alarm_code": "vitals.bp_high"}),
        "infusion.completed": payload_text(
            "infusion.completed", {"delivered_volume_ul": 35000, "delivered_dose_mg": "35.00"}
        ),
    }


def _shape(j: int, s: int) -> tuple[str, tuple[Any, ...], str | None]:
    """(type, actor, correlation suffix) of event ``j`` of session ``s``."""
    if j == 0:
        return "session.programmed", _NURSE, None
    if j == 1:
        return ("override.granted" if s % 10 == 0 else "double_check.completed"), _NURSE_B, None
    if j == 2:
        return "pump.command.requested", _NURSE, "start"
    if j == 3:
        return "pump.command.confirmed", _DAEMON, "start"
    if j == 4:
        return "session.started", _DAEMON, None
    if j == EVENTS_PER_SESSION - 3:
        return "alarm.raised", _DAEMON, "alarm"
    if j == EVENTS_PER_SESSION - 2:
        return "alarm.acknowledged", _NURSE_B, "alarm"
    if j == EVENTS_PER_SESSION - 1:
        return "infusion.completed", _DAEMON, None
    return "vitals.recorded", _DAEMON, None


BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)


def chain_rows(n: int, hasher: Hasher) -> Iterator[tuple[Any, ...]]:
    """A valid chain of ``n`` realistic events (50 per session), built in memory."""
    payloads = _payloads()
    prev = GENESIS_HASH
    instance = str(uuid.uuid4())
    moment = BASE_TIME
    for i in range(n):
        s, j = divmod(i, EVENTS_PER_SESSION)
        kind, actor, corr = _shape(j, s)
        session = f"S-{s:07d}"
        row = (
            i + 1,
            utc_text(moment),
            i * 1000,
            "bench",
            instance,
            *actor,
            f"pump-{s % 8}",
            session,
            f"P-{s % 3000:05d}",
            kind,
            f"{session}-{corr}" if corr else None,
            False,
            payloads[kind],
            prev,
        )
        prev = hasher.digest(encode_row(row))
        moment += STEP
        yield (*row, prev)


def _event(i: int) -> NewEvent:
    return NewEvent(
        "vitals.recorded",
        {"systolic_mmhg": 100 + i % 80, "heart_rate_bpm": 60 + i % 40, "source": "monitor"},
        Actor.daemon(),
        session_id=f"s-{i % 7}",
        patient_ref=f"P-{i % 5:04d}",
    )


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches
    return statistics.median(_timed(fn) for _ in range(repeat)) * 1000


# -- the shared measurements ---------------------------------------------------------------


ROUNDS = 10


class _Bare:
    """The baseline: INSERT+COMMIT of precomputed rows on one connection, timed per round."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, table: str) -> None:
        self._con = connect()
        marks = ", ".join(placeholder for _ in COLUMNS)
        self._insert = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({marks})"

    def run(self, rows: list[tuple[Any, ...]]) -> float:
        con = self._con
        started = time.perf_counter()
        for row in rows:
            if isinstance(con, sqlite3.Connection):
                con.execute("BEGIN IMMEDIATE")
                con.execute(self._insert, row)
                con.execute("COMMIT")
            else:
                con.execute(self._insert, row)
                con.commit()
        return time.perf_counter() - started

    def close(self) -> None:
        self._con.close()


def _appends(report: Report, suite: str, url: str, n: int, bare: _Bare) -> None:
    """Store and baseline alternate in ``ROUNDS`` rounds, so load from elsewhere on the
    machine (fsync contention above all) hits both alike."""
    store = AuditStore.open(url)
    rows = list(chain_rows(n, Hasher()))
    per = n // ROUNDS
    try:
        store_s = bare_s = 0.0
        for r in range(ROUNDS):
            started = time.perf_counter()
            for i in range(per):
                store.append(_event(r * per + i))
            store_s += time.perf_counter() - started
            bare_s += bare.run(rows[r * per : (r + 1) * per])
        store_rate, bare_rate = per * ROUNDS / store_s, per * ROUNDS / bare_s
        report.add(
            Row(
                suite,
                "durable appends (store.append, one commit each)",
                store_rate,
                "events/s",
                baseline=bare_rate,
                baseline_name="bare INSERT+COMMIT, same table and settings",
                goal="ratio >= 0.5",
                met=store_rate / bare_rate >= 0.5,
            )
        )

        async def burst() -> float:
            writer = AsyncAuditWriter(store, max_batch=256)
            started = time.perf_counter()
            await asyncio.gather(*(writer.append(_event(i)) for i in range(n)))
            took = time.perf_counter() - started
            await writer.aclose()
            return took

        burst_rate = n / asyncio.run(burst())
        report.add(
            Row(
                suite,
                f"burst of {n} via AsyncAuditWriter (group commit)",
                burst_rate,
                "events/s",
                baseline=store_rate,
                baseline_name="store.append one by one",
            )
        )
    finally:
        store.close()


def _reads(report: Report, suite: str, url: str, n: int, sample: list[bytes]) -> None:
    engine = make_engine(url, read_only=True)
    try:
        took = _timed(lambda: _must_verify(engine, n))
        hash_rate = len(sample) / _timed(lambda: [hashlib.sha256(b).hexdigest() for b in sample])
        report.add(
            Row(
                suite,
                f"verify {n:,} events",
                n / took,
                "events/s",
                baseline=hash_rate,
                baseline_name="bare hashlib.sha256 over the same bytes",
                goal="1 M events in < 10 s",
                met=(1_000_000 / (n / took)) < 10,
            )
        )
        report.note(
            f"{suite}: verify of {n:,} events took {took:.2f} s "
            f"(projected {1_000_000 / (n / took):.1f} s per 1 M)"
        )
        sessions = n // EVENTS_PER_SESSION
        target = f"S-{sessions // 2:07d}"
        last = BASE_TIME + STEP * (n - 1)
        since = utc_text(last - timedelta(days=1))
        with engine.connect() as conn:
            show_ms = _median_ms(lambda: session_timeline(conn, target)[0].as_json(), 15)
            in_window = len(list(iter_sessions(conn, since=since)))
            since_ms = _median_ms(
                lambda: [s.as_json() for s in iter_sessions(conn, since=since)], 15
            )
        report.add(
            Row(
                suite,
                f"show SESSION on {n:,} events",
                show_ms,
                "ms",
                goal="< 50 ms",
                met=show_ms < 50,
            )
        )
        report.add(
            Row(
                suite,
                f"sessions --since (1 day: {in_window} sessions) on {n:,} events",
                since_ms,
                "ms",
                goal="< 50 ms",
                met=since_ms < 50,
            )
        )
    finally:
        engine.dispose()


def _must_verify(engine: Any, n: int) -> None:
    result = verify(engine, Hasher())
    if not result.ok or result.checked != n:
        raise RuntimeError(f"benchmark chain did not verify: {result}")


def _sample(n: int) -> list[bytes]:
    """The hashed bytes of the first rows of the chain: the hashlib baseline's input."""
    return [encode_row(r) for r in chain_rows(min(n, 200_000), Hasher())]


# -- SQLite ----------------------------------------------------------------------------------


def _sqlite_bare(path: Path) -> _Bare:
    """The same migrated, indexed table in its own file, through sqlite3 directly."""
    migrate.upgrade_url(f"sqlite:///{path}")

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    return _Bare(connect, "?", "audit_event")


def _sqlite_fixture(path: Path, n: int) -> None:
    migrate.upgrade_url(f"sqlite:///{path}")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    insert = f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 18)})"
    con.execute("BEGIN")
    con.executemany(insert, chain_rows(n, Hasher()))
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("ANALYZE")
    con.close()


def _sqlite(report: Report, quick: bool, tmp: Path) -> None:
    n_append = 500 if quick else 3000
    n_chain = 20_000 if quick else 1_000_000
    appends = tmp / "appends.db"
    migrate.upgrade_url(f"sqlite:///{appends}")
    bare = _sqlite_bare(tmp / "bare.db")
    try:
        _appends(report, "audit/sqlite", f"sqlite:///{appends}", n_append, bare)
    finally:
        bare.close()
    big = tmp / "chain.db"
    started = time.perf_counter()
    _sqlite_fixture(big, n_chain)
    report.note(
        f"audit/sqlite: built the {n_chain:,}-event chain in {time.perf_counter() - started:.1f} s"
    )
    _reads(report, "audit/sqlite", f"sqlite:///{big}", n_chain, _sample(n_chain))


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_base() -> str | None:
    raw = os.environ.get("PUMPD_BENCH_PG_URL") or os.environ.get("PUMPD_TEST_PG_URL")
    if not raw:
        return None
    conninfo = raw.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, connect_timeout=3):
            return conninfo
    except psycopg.Error:
        return None


def _pg_bare(conninfo: str) -> _Bare:
    """A copy of the table with the same indexes, through psycopg directly."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE bare (LIKE audit_event INCLUDING ALL)")
    return _Bare(lambda: psycopg.connect(conninfo), "%s", "bare")


def _pg_fixture(conninfo: str, url: str, n: int) -> None:
    migrate.upgrade_url(url)
    with psycopg.connect(conninfo) as conn:
        with conn.cursor().copy(f"COPY audit_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in chain_rows(n, Hasher()):
                copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE audit_event")
        conn.commit()


def _postgres(report: Report, quick: bool) -> None:
    base = _pg_base()
    if base is None:
        report.note("audit/postgres: skipped, no reachable PUMPD_TEST_PG_URL / PUMPD_BENCH_PG_URL")
        return
    n_append = 500 if quick else 3000
    n_chain = 20_000 if quick else 1_000_000
    info = psycopg.conninfo.conninfo_to_dict(base)
    made: list[str] = []

    def database() -> tuple[str, str]:
        name = f"pumpd_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        conninfo = psycopg.conninfo.make_conninfo(base, dbname=name)
        host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
        return conninfo, f"postgresql://{info.get('user', 'postgres')}@{host}:{port}/{name}"

    try:
        conninfo, url = database()
        migrate.upgrade_url(url)
        bare = _pg_bare(conninfo)
        try:
            _appends(report, "audit/postgres", url, n_append, bare)
        finally:
            bare.close()
        conninfo, url = database()
        started = time.perf_counter()
        _pg_fixture(conninfo, url, n_chain)
        report.note(
            f"audit/postgres: built the {n_chain:,}-event chain in "
            f"{time.perf_counter() - started:.1f} s"
        )
        _reads(report, "audit/postgres", url, n_chain, _sample(n_chain))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in made:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def run(report: Report, quick: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pumpd-bench-audit-"))
    try:
        _sqlite(report, quick, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _postgres(report, quick)

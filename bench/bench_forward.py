"""Forwarding into the local PostgreSQL: throughput with batching, and the catch-up of one
busy clinic day.

A site's SQLite log is filled with a valid chain of realistic events (bench_audit's
``chain_rows``); the real ``Forwarder`` ships it from an empty mark into a fresh central
store, step by step, as the daemon does (read after the mark, insert with the arrival
check, held-hash check, durable mark). The baseline, in the same run: the same rows
inserted by psycopg straight into a plain copy of ``central_event`` (no trigger, no
checks, no mark), one transaction per batch of the same size.

One busy clinic day: 64 chairs x 8 sessions x 300 events (a 40-minute infusion writes a
recovery checkpoint every 10 s, about 240, plus vitals, commands, alarms and the rest) =
153,600 events. The catch-up figure is the time to forward all of them after a day
without a link.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from bench.bench_audit import _pg_base, chain_rows
from bench.report import Report, Row
from pumpd.audit import COLUMNS, Hasher, migrate
from pumpd.central import migrate as central_migrate
from pumpd.central.forwarder import Forwarder, ForwardSettings
from pumpd.db import make_engine

SUITE = "forward"
CHAIRS = 64
SESSIONS_PER_CHAIR = 8
EVENTS_PER_SESSION = 300
DAY_EVENTS = CHAIRS * SESSIONS_PER_CHAIR * EVENTS_PER_SESSION
GOAL_EVENTS_S = 5000.0


def _site(path: Path, n: int) -> list[tuple[object, ...]]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    rows = list(chain_rows(n, Hasher()))
    con = sqlite3.connect(path)
    try:
        marks = ", ".join("?" for _ in COLUMNS)
        con.executemany(
            f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({marks})",
            rows,
        )
        con.commit()
    finally:
        con.close()
    return rows


def _forward(site_path: Path, url: str, mark: Path, batch: int) -> tuple[float, int]:
    engine = make_engine(f"sqlite:///{site_path}")
    settings = ForwardSettings(url=url, site="bench", batch_size=batch, mark_file=mark)
    forwarder = Forwarder(engine, settings)
    shipped = 0
    try:
        started = time.perf_counter()
        while True:
            result = forwarder.step()
            shipped += result.shipped
            if not result.full and forwarder.status().lag_events == 0:
                break
        return time.perf_counter() - started, shipped
    finally:
        forwarder.close()
        engine.dispose()


def _bare(conninfo: str, rows: list[tuple[object, ...]], batch: int) -> float:
    with psycopg.connect(conninfo) as conn:
        # The same columns and indexes; LIKE copies no trigger and no foreign key.
        conn.execute("CREATE TABLE bare (LIKE central_event INCLUDING ALL)")
        conn.commit()
        cols = ", ".join(("site", *COLUMNS))
        marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
        statement = f"INSERT INTO bare ({cols}) VALUES ({marks})"
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.cursor() as cur:
                cur.executemany(statement, [("bench", *r) for r in rows[i : i + batch]])
            conn.commit()
        return time.perf_counter() - started


def run(report: Report, quick: bool) -> None:
    base = _pg_base()
    if base is None:
        report.note(f"{SUITE}: skipped, no reachable PUMPD_TEST_PG_URL / PUMPD_BENCH_PG_URL")
        return
    info = psycopg.conninfo.conninfo_to_dict(base)
    n_day = DAY_EVENTS // 20 if quick else DAY_EVENTS
    n_batch = 5000 if quick else 20_000
    tmp = Path(tempfile.mkdtemp(prefix="pumpd-bench-forward-"))
    made: list[str] = []

    def centre() -> tuple[str, str]:
        name = f"pumpd_bench_c_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        conninfo = psycopg.conninfo.make_conninfo(base, dbname=name)
        host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
        url = f"postgresql://{info.get('user', 'postgres')}@{host}:{port}/{name}"
        engine = make_engine(url)
        try:
            central_migrate.upgrade(engine)
        finally:
            engine.dispose()
        return conninfo, url

    try:
        site = tmp / "site.db"
        rows = _site(site, n_day)
        for batch in (50, 1000, 5000):
            conninfo, url = centre()
            n = n_batch
            small = tmp / f"site-{batch}.db"
            _site(small, n)
            elapsed, shipped = _forward(small, url, tmp / f"mark-{batch}", batch)
            assert shipped == n, (shipped, n)
            bare_s = _bare(conninfo, rows[:n], batch)
            figure = n / elapsed
            report.add(
                Row(
                    SUITE,
                    f"forward {n:,} events, batch {batch}",
                    figure,
                    "events/s",
                    baseline=n / bare_s,
                    baseline_name=f"bare psycopg executemany INSERT, batch {batch}",
                    goal=f">= {GOAL_EVENTS_S:,.0f} events/s",
                    met=figure >= GOAL_EVENTS_S,
                )
            )
        conninfo, url = centre()
        elapsed, shipped = _forward(site, url, tmp / "mark-day", 1000)
        assert shipped == n_day, (shipped, n_day)
        with psycopg.connect(conninfo) as conn:
            held = conn.execute("SELECT count(*) FROM central_event").fetchone()
        assert held == (n_day,), held
        report.add(
            Row(
                SUITE,
                f"catch-up of one busy day ({CHAIRS} chairs, {n_day:,} events), batch 1000",
                elapsed,
                "s",
                goal="< 1 h (the day's link outage is over in minutes)",
                met=elapsed < 3600,
            )
        )
        report.note(
            f"{SUITE}: one day = {CHAIRS} chairs x {SESSIONS_PER_CHAIR} sessions x "
            f"{EVENTS_PER_SESSION} events{' / 20 (--quick)' if quick else ''}; "
            f"{n_day / elapsed:,.0f} events/s during the catch-up"
        )
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in made:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        shutil.rmtree(tmp, ignore_errors=True)

"""``--forward``: the soak's site also forwards its log to a central store on the real
PostgreSQL (``PUMPD_TEST_PG_URL``), through every daemon kill, while a cutter terminates the
forwarder's connections at the centre at seeded random moments.

At the end the daemon's forwarder is given time to catch up, the daemon is stopped, and
what it wrote while stopping is forwarded as its next start would (from the durable mark).
The evidence then holds the site's chain and the centre's copy; the invariant
(``check_forwarding``) is that the centre holds exactly the site's events, in order, with
equal hashes, and recorded no conflict.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from pumpd.central import migrate as central_migrate
from pumpd.central.forwarder import CentreUnavailable, Forwarder, ForwardSettings
from pumpd.central.mark import load_mark
from pumpd.db import make_engine

SITE = "soak-site"
PG_ENV = "PUMPD_TEST_PG_URL"


class SoakCentre:
    """A central store made for one soak run, dropped after it."""

    def __init__(self) -> None:
        raw = os.environ.get(PG_ENV, "")
        if not raw:
            raise RuntimeError(f"--forward needs {PG_ENV} (a PostgreSQL for the centre)")
        self.base = raw.replace("postgresql+psycopg://", "postgresql://")
        self.name = f"pumpd_soak_c_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.conninfo = psycopg.conninfo.make_conninfo(self.base, dbname=self.name)
        info = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        self.url = (
            f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
            f"{info.get('port', '5432')}/{self.name}"
        )
        engine = make_engine(self.url)
        try:
            central_migrate.upgrade(engine)
        finally:
            engine.dispose()
        self.cuts = 0

    def section(self, mark_file: Path) -> str:
        return (
            "\n[forward]\n"
            f'url = "{self.url}"\n'
            f'site = "{SITE}"\n'
            "batch_size = 200\n"
            f'mark_file = "{mark_file}"\n'
            "interval_s = 0.2\n"
            "retry_max_s = 2\n"
            "connect_timeout_s = 3\n"
        )

    def cut(self) -> int:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'pumpd-forward'"
            ).fetchall()
        self.cuts += len(rows)
        return len(rows)

    def chain(self) -> list[tuple[int, str, str]]:
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute(
                "SELECT seq, prev_hash, event_hash FROM central_event WHERE site = %s ORDER BY seq",
                (SITE,),
            ).fetchall()
        return [(int(a), str(b), str(c)) for a, b, c in rows]

    def conflicts(self) -> list[tuple[str, int, str]]:
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute("SELECT site, seq, kind FROM central_conflict ORDER BY id")
            return [(str(a), int(b), str(c)) for a, b, c in rows.fetchall()]

    def drop(self) -> None:
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )


class Cutter(threading.Thread):
    """Terminates the forwarder's backends at the centre, at seeded random moments."""

    def __init__(self, centre: SoakCentre, seed: int, mean_s: float = 20.0) -> None:
        super().__init__(name="soak-centre-cutter", daemon=True)
        self.centre = centre
        self.rng = random.Random(f"forward-cuts-{seed}")
        self.mean_s = mean_s
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(self.rng.expovariate(1 / self.mean_s)):
                self.centre.cut()
        except BaseException as exc:
            self.error = exc


def site_chain(database_url: str) -> list[tuple[int, str, str]]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq, prev_hash, event_hash FROM audit_event ORDER BY seq")
            ).all()
    finally:
        engine.dispose()
    return [(int(a), str(b), str(c)) for a, b, c in rows]


def wait_caught_up(database_url: str, mark_file: Path, within_s: float) -> bool:
    """Until the durable mark reaches the site's head (the running daemon forwards)."""
    import time

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        chain = site_chain(database_url)
        mark = load_mark(mark_file)
        if chain and mark is not None and mark.seq >= chain[-1][0]:
            return True
        time.sleep(0.5)
    return False


def forward_rest(centre: SoakCentre, database_url: str, mark_file: Path) -> None:
    """What the next start would forward: everything after the durable mark."""
    engine = make_engine(database_url)
    forwarder = Forwarder(
        engine, ForwardSettings(url=centre.url, site=SITE, batch_size=500, mark_file=mark_file)
    )
    try:
        for _ in range(10_000):
            try:
                result = forwarder.step()
            except CentreUnavailable:
                continue
            if not result.full and forwarder.status().lag_events == 0:
                return
    finally:
        forwarder.close()
        engine.dispose()

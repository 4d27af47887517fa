"""The audit database going away under the real processes.

pumpd runs on a database of its own (a fresh PostgreSQL database, or SQLite on a 2 MB
tmpfs), chair-1 infusing and chair-2 primed. Then the database goes away: PostgreSQL is
stopped with pg_ctlcluster (always started again in a ``finally``), or the tmpfs is filled
to the last byte. While it is away the nurses see the high-priority audit alarm through
`pumpctl alarms` and `status` (saying the events are kept in the local spool); vitals, a
note, an acknowledgement, a pause, a refused resume and a stop of chair-1 are all answered
while the database is still away (each call is bounded well below the outage: a call that
waited for the database would time out), the pause and the stop reach the pump; a
`program` and a `start` are refused with the reason. When the database is back the spool
drains in order: `pumpaudit verify` passes, `seq` has no gap, each event the nurses made
during the outage is there exactly once and in the order they made it, the outage itself is
written down (`audit.spool.drained`), and chair-2 can be started.

Every wait is a bound, not a speed check; the durations of the calls are printed.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbloss.conftest import Db, fill, pg_db, postgres_stopped, require_postgres, tmpfs

from .conftest import IS_ROOT, Accounts
from .stack import PIN, Stack, StackError, add_staff, running_stack

DURING_S = 15.0
"""Bound on each pumpctl call while the database is away (the outage lasts longer: a call
that waited for the database would hit it)."""

Rows = Callable[[], list[dict[str, Any]]]


def prepare(stack: Stack, accounts: Accounts, pump: str, patient: str) -> None:
    """Program, double-check, prime (line off the patient) and vitals: ready to start."""
    stack.ok(
        "program", pump, "--patient", patient, "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    if IS_ROOT:
        stack.ok("confirm", pump, "--weight", "82kg", user=accounts.nurse2)
    else:
        stack.ok(
            "confirm", pump, "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    stack.ok("prime", pump, "--line-disconnected")
    stack.wait_state(pump, ["PRIMED"])
    stack.ok("vitals", pump, "--bp", "120/80", "--hr", "70", "--spo2", "98")


def during(
    stack: Stack, timings: dict[str, float], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """One pumpctl call while the database is away, bounded by DURING_S."""
    command, env = stack.command(args)
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, timeout=DURING_S
        )
    except subprocess.TimeoutExpired:
        raise StackError(
            f"pumpctl {' '.join(args)} not answered within {DURING_S:g} s while the audit "
            f"database is away:\n{stack.daemon_log()}"
        ) from None
    timings[" ".join(args[:2])] = time.monotonic() - t0
    return done


def ok_during(stack: Stack, timings: dict[str, float], *args: str) -> str:
    done = during(stack, timings, *args)
    if done.returncode != 0:
        raise StackError(f"pumpctl {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def run_outage(
    stack: Stack, accounts: Accounts, away: contextlib.AbstractContextManager[Callable[[], None]],
    rows: Rows,
) -> None:  # fmt: skip
    if not IS_ROOT:  # the double-check comes from a staff witness with a PIN
        add_staff(stack, accounts.admin)
    prepare(stack, accounts, "chair-2", "P-OUT-2")
    prepare(stack, accounts, "chair-1", "P-OUT-1")
    stack.ok("start", "chair-1")
    stack.wait_state("chair-1", ["INFUSING"])
    timings: dict[str, float] = {}
    with away as back:
        # Any request makes the writer try the database (its record is written).
        deadline = time.monotonic() + 30
        alarm: dict[str, Any] = {}
        while not alarm:
            listed = json.loads(ok_during(stack, timings, "alarms", "--json"))
            alarm = next((a for a in listed if a["code"] == "audit.write_failed"), {})
            if time.monotonic() > deadline:
                raise StackError(f"no audit alarm: {listed}\n{stack.daemon_log()}")
            time.sleep(0.2)
        assert alarm["priority"].lower() == "high"
        assert "kept in the local spool" in alarm["message"], alarm
        view = json.loads(ok_during(stack, timings, "status", "chair-1", "--json"))[0]
        assert view["session_state"] == "INFUSING"
        assert any(a["code"] == "audit.write_failed" for a in view["alarms"])

        ok_during(
            stack, timings, "vitals", "chair-1", "--bp", "131/85", "--hr", "77", "--spo2", "97"
        )
        ok_during(stack, timings, "note", "chair-1", "ondansetron 4 mg given during the outage")
        # The audit alarm cannot be acknowledged away while the database is gone: said at
        # once, and nothing is written as acknowledged (it stays on every screen).
        acked = during(stack, timings, "ack", "chair-1", "--note", "audit outage seen")
        assert acked.returncode == 3, acked.stderr
        assert "stays until the audit database answers again" in acked.stderr
        assert "kept in the local spool" in acked.stdout  # shown before it was refused
        ok_during(stack, timings, "pause", "chair-1", "--reason", "outage drill")
        assert stack.sim_status(1)["state"] == "PAUSED", "the pause reached the pump"
        resumed = during(stack, timings, "resume", "chair-1")
        assert resumed.returncode == 3, resumed.stderr
        assert "audit database is not taking events" in resumed.stderr
        # For how long, as a duration: no time of day a nurse could read in the wrong zone.
        assert re.search(r"not taking events for \d+ (h|min|s)\b", resumed.stderr), resumed.stderr
        started = during(stack, timings, "start", "chair-2")
        assert started.returncode == 3, started.stderr
        assert "start refused: the audit database is not taking events" in started.stderr
        assert "kept in the local spool" in started.stderr
        assert stack.sim_status(2)["state"] != "INFUSING"
        programmed = during(
            stack, timings, "program", "chair-2", "--patient", "P-OUT-3", "--weight", "70kg",
            "--protocol", "ketamine-trd-standard", "--yes",
        )  # fmt: skip
        assert programmed.returncode == 3, programmed.stderr
        assert "program refused" in programmed.stderr
        if stack.database.startswith("postgresql"):  # reads fail too: the staff registry
            login = during(stack, timings, "login", "N001", "--pin-stdin", stdin=PIN["N001"] + "\n")
            assert login.returncode == 3, login.stderr
            assert "the audit database does not answer" in login.stderr
        ok_during(stack, timings, "stop", "chair-1", "--reason", "ended during the outage")
        assert stack.sim_status(1)["state"] != "INFUSING"
        back()
    print("pumpctl during the outage (s):", {k: round(v, 2) for k, v in timings.items()})

    deadline = time.monotonic() + 60
    while not any(r["event_type"] == "audit.spool.drained" for r in rows()):
        if time.monotonic() > deadline:
            raise StackError(f"the spool did not drain:\n{stack.daemon_log()}")
        time.sleep(0.3)
    assert stack.spool_path is not None
    assert not stack.spool_path.exists(), "a drained spool is removed"
    stack.ok("vitals", "chair-2", "--bp", "122/80", "--hr", "71", "--spo2", "98")  # fresh
    stack.ok("start", "chair-2")  # the refusal was the outage's: now it starts
    stack.wait_state("chair-2", ["INFUSING"])
    stack.ok("stop", "chair-2", "--reason", "end of the drill")
    check_trail(stack, rows())


def check_trail(stack: Stack, records: list[dict[str, Any]]) -> None:
    verified = stack.audit("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap or a duplicate"
    payloads = [(r["event_type"], json.loads(r["payload"])) for r in records]

    def once(event_type: str, match: Callable[[dict[str, Any]], bool]) -> int:
        found = [i for i, (t, p) in enumerate(payloads) if t == event_type and match(p)]
        assert len(found) == 1, (event_type, found)
        return found[0]

    vitals = once("vitals.recorded", lambda p: p.get("heart_rate_bpm") == 77)
    note = once("note.recorded", lambda p: "ondansetron" in p["text"])
    # The audit alarm is not cleared while the database is away (docs/audit-spool.md), so
    # the acknowledgement is the request's own record.
    ack = once("control.request.served", lambda p: p["method"] == "session.acknowledge")
    paused = once("session.paused", lambda p: p["reason_code"] != "daemon.shutdown")
    stopped = once("session.stopped", lambda p: "outage" in p["reason"])
    assert vitals < note < ack < paused < stopped, "the nurses' order is kept"
    refused = [
        p["method"]
        for t, p in payloads
        if t == "control.request.served" and p["outcome_code"] == "audit_unavailable"
    ]
    expected = ["session.program", "session.resume", "session.start"]
    if stack.database.startswith("postgresql"):
        expected.append("staff.login")
    assert sorted(refused) == sorted(expected), refused
    drained = [p for t, p in payloads if t == "audit.spool.drained"]
    assert len(drained) == 1
    assert drained[0]["cause_code"] == "commit_failed"
    assert drained[0]["spooled_events"] > 0
    assert drained[0]["refused_events"] == 0
    alarms = [
        i
        for i, (t, p) in enumerate(payloads)
        if t == "alarm.raised" and p["alarm_code"] == "audit.write_failed"
    ]
    assert alarms, "the nurses' alarm is in the record"
    assert min(alarms) < vitals


def pg_rows(conninfo: str) -> Rows:
    def read() -> list[dict[str, Any]]:
        try:
            with psycopg.connect(conninfo, connect_timeout=3) as conn:
                cur = conn.execute("SELECT seq, event_type, payload FROM audit_event ORDER BY seq")
                return [dict(zip(("seq", "event_type", "payload"), r, strict=True)) for r in cur]
        except psycopg.OperationalError:
            return []  # the server is stopped

    return read


def sqlite_rows(path: Path) -> Rows:
    def read() -> list[dict[str, Any]]:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            cur = con.execute("SELECT seq, event_type, payload FROM audit_event ORDER BY seq")
            return [dict(zip(("seq", "event_type", "payload"), r, strict=True)) for r in cur]
        finally:
            con.close()

    return read


__all__ = ["pg_db"]  # the fixture: a fresh, migrated PostgreSQL database per test, dropped after


@pytest.mark.postgres
@pytest.mark.pg_outage
def test_postgresql_stopped_during_an_infusion(accounts: Accounts, pg_db: Db) -> None:
    assert pg_db.pg_conninfo is not None
    with running_stack(
        time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group,
        database_url=pg_db.url,
    ) as stack:  # fmt: skip
        stack.default_user = accounts.nurse
        away = postgres_stopped(require_postgres())
        run_outage(stack, accounts, away, pg_rows(pg_db.pg_conninfo))


@contextlib.contextmanager
def disk_full(directory: Path) -> Iterator[Callable[[], None]]:
    """The database's file system full to the last byte; ``back()`` frees it."""
    filler = fill(directory)

    def back() -> None:
        filler.unlink(missing_ok=True)

    try:
        yield back
    finally:
        back()


def test_sqlite_file_system_full_during_an_infusion(accounts: Accounts, tmp_path: Path) -> None:
    # Room for the database to go on once the filler is gone: SQLite's write-ahead log
    # grows until a checkpoint (at 1,000 pages), so a file system with only a little free
    # after the drain fills again (seen at 2 MiB on a loaded machine: the start after the
    # drain refused as "database or disk is full").
    with tmpfs(tmp_path / "dbfs", "16m") as dbfs:
        dbfs.chmod(0o755)
        with running_stack(
            time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group,
            database_url=f"sqlite:///{dbfs / 'audit.db'}",
        ) as stack:  # fmt: skip
            stack.default_user = accounts.nurse
            run_outage(stack, accounts, disk_full(dbfs), sqlite_rows(dbfs / "audit.db"))

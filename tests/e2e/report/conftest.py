"""One real session, recorded once per test run: the simulator, the daemon and pumpctl.

Chair-1 runs a short ketamine session (time x120: 40 min of infusion in 20 s): program,
double check, prime, baseline vitals, start, vitals while infusing, vital signs out of the
pause band (the kernel pauses the infusion and raises an alarm), vitals back in range,
acknowledged, resumed, a note, a pause with a reason, a resume, completion, observation
vitals and discharge. The daemon is stopped and its SQLite audit database is what the
report and FHIR tests read. Chair-2's session is programmed and aborted before any start.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import IS_ROOT, Accounts
from ..stack import PIN, Stack, add_staff, running_stack

PROTOCOL = "ketamine-trd-standard"
PATIENT = "P-REPORT-1"
ABORTED_PATIENT = "P-REPORT-2"


@dataclass(frozen=True)
class RecordedSession:
    database: str
    session_id: str
    patient_ref: str
    aborted_session_id: str
    workdir: Path


def record_session(s: Stack, accounts: Accounts) -> str:
    """Drive chair-1 through a whole session; return its session id."""
    add_staff(s, accounts.admin)
    out = s.ok(
        "program", "chair-1", "--patient", PATIENT, "--weight", "82kg",
        "--protocol", PROTOCOL, "--yes",
    )  # fmt: skip
    match = re.search(r"programmed, session (\S+)", out)
    assert match, out
    if IS_ROOT:
        assert accounts.nurse2 is not None
        s.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        s.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    s.ok("prime", "chair-1", "--line-disconnected")
    s.wait_state("chair-1", ["PRIMED"])
    s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    s.ok("start", "chair-1")
    s.wait_state("chair-1", ["INFUSING"])
    time.sleep(1.0)
    s.ok("vitals", "chair-1", "--bp", "131/84", "--hr", "79", "--spo2", "97")
    # Above the pause band: the kernel pauses the infusion and raises an alarm. The pause
    # clock runs (15 simulated min = 7.5 s here), so the nurse answers at once.
    s.ok("vitals", "chair-1", "--bp", "176/98", "--hr", "84", "--spo2", "96")
    s.wait_state("chair-1", ["PAUSED", "ALARM"])
    s.ok("vitals", "chair-1", "--bp", "138/86", "--hr", "80", "--spo2", "97")
    s.ok("ack", "chair-1", "--note", "repeat reading lower; physician informed")
    s.ok("resume", "chair-1")
    s.wait_state("chair-1", ["INFUSING"])
    s.ok("note", "chair-1", "mild dissociation, patient comfortable")
    s.ok("pause", "chair-1", "--reason", "patient asked for a break")
    s.wait_state("chair-1", ["PAUSED"])
    time.sleep(0.5)
    s.ok("resume", "chair-1")
    s.wait_state("chair-1", ["OBSERVATION"])
    _discharge(s)
    return match.group(1)


def record_aborted(s: Stack) -> str:
    """Chair-2 programmed and abandoned before any start: nothing was infused."""
    out = s.ok(
        "program", "chair-2", "--patient", ABORTED_PATIENT, "--weight", "70kg",
        "--protocol", PROTOCOL, "--yes",
    )  # fmt: skip
    match = re.search(r"programmed, session (\S+)", out)
    assert match, out
    s.ok("abort", "chair-2", "--reason", "patient declined today")
    return match.group(1)


def _discharge(s: Stack, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = s.pumpctl("discharge", "chair-1", "--confirm-all")
        if result.returncode == 0:
            return
        assert result.returncode == 3, result.stderr
        output = result.stdout + result.stderr
        if "discharge.observation_too_short" not in output and "discharge.vitals_" in output:
            # The observation time is over: the set a nurse takes before letting the
            # patient go (the discharge needs one no older than 15 simulated minutes).
            s.ok("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
        time.sleep(1.0)
    raise AssertionError("chair-1 could not be discharged")


@pytest.fixture(scope="session")
def recorded(accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> RecordedSession:
    """Recorded once per test run: xdist workers share one recording (the first worker to
    take the lock records, the others read what it left), so the stack runs once."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's directory, common to its workers
    keep = shared / "report-recorded"
    with (shared / "report-recorded.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = keep / "session.json"
        if not done.exists():
            keep.mkdir(exist_ok=True)
            with running_stack(
                time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group
            ) as s:
                s.default_user = accounts.nurse
                session_id = record_session(s, accounts)
                aborted = record_aborted(s)
                assert s.stop_daemon() == 0
                shutil.copy(s.workdir / "audit.db", keep / "audit.db")
            done.write_text(json.dumps([session_id, aborted]), encoding="utf-8")
        session_id, aborted = json.loads(done.read_text(encoding="utf-8"))
    return RecordedSession(f"sqlite:///{keep / 'audit.db'}", session_id, PATIENT, aborted, keep)

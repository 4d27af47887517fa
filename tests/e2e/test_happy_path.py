"""The happy path through real processes: pumpctl → pumpd's socket → the pump simulator.

One ketamine session on chair-1 from program to discharge, the double-check by a second
person (another OS user when root, else a staff witness with a PIN), a pause and a
resume; the simulator's true volume must match the plan and the audit chain must verify.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from fractions import Fraction

from .conftest import IS_ROOT, Accounts
from .stack import PIN, Stack, StackError, add_staff, running_stack

PROTOCOL = "ketamine-trd-standard"


def test_one_session_from_program_to_discharge(accounts: Accounts) -> None:
    with running_stack(
        time_scale=240, roles=accounts.roles, socket_group=accounts.socket_group
    ) as s:
        s.default_user = accounts.nurse
        run_happy_path(s, accounts)


def run_happy_path(s: Stack, accounts: Accounts) -> None:
    add_staff(s, accounts.admin)
    listed = json.loads(s.ok("staff", "list", "--json", user=accounts.admin))
    assert {m["staff_id"] for m in listed} >= {"N001", "N002"}
    assert all("pin" not in json.dumps(m).lower() for m in listed)

    pumps = json.loads(s.ok("pumps", "--json"))
    assert [p["pump_id"] for p in pumps] == ["chair-1", "chair-2"]
    # Reachable is the last read's outcome; a reply made late by a stall of this shared
    # machine shows as unreachable until the next read answers.
    deadline = time.monotonic() + 10.0
    while not all(p["reachable"] for p in pumps):
        assert time.monotonic() < deadline, f"pumps never both reachable: {pumps}"
        time.sleep(0.1)
        pumps = json.loads(s.ok("pumps", "--json"))

    out = s.ok(
        "program", "chair-1", "--patient", "P-E2E-1", "--weight", "82kg",
        "--protocol", PROTOCOL, "--yes",
    )  # fmt: skip
    assert "150" in out  # the plan shown before asking: 100 mL over 40 min
    match = re.search(r"programmed, session (\S+)", out)
    assert match, out
    session_id = match.group(1)
    assert s.status("chair-1")["session_state"] == "PROGRAMMED"

    if IS_ROOT:
        assert accounts.nurse2 is not None
        s.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        s.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    assert s.status("chair-1")["session_state"] == "VERIFIED"

    s.ok("prime", "chair-1", "--line-disconnected")
    s.wait_state("chair-1", ["PRIMED"])
    s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    s.ok("start", "chair-1")
    view = s.wait_state("chair-1", ["INFUSING"])
    assert view["session_id"] == session_id
    assert view["vtbi_ul"] == 100_000
    frame = s.ok("watch", "chair-1", "--once")
    assert "chair-1" in frame
    assert "P-E2E-1" in frame
    [views] = [
        json.loads(line) for line in s.ok("watch", "chair-1", "--once", "--json").splitlines()
    ]
    assert views[0]["session_id"] == session_id
    assert started_line(s.daemon_log(200_000))["session"] == session_id

    frames = watch_live(s, "chair-1")
    assert frames.count("chair-1") >= 2, frames  # refreshed, not printed once

    s.ok("pause", "chair-1", "--reason", "patient asked for a break")
    s.wait_state("chair-1", ["PAUSED"])
    declined = s.pumpctl(
        "adjust", "chair-1", "--duration", "45min", "--reason", "dissociation", stdin="n\n"
    )
    assert declined.returncode == 1, declined.stderr
    assert "cancelled" in declined.stderr
    assert "45" in declined.stdout  # the proposal was shown before the question
    s.ok("adjust", "chair-1", "--duration", "45min", "--reason", "dissociation", "--yes")
    s.ok("resume", "chair-1")
    s.wait_state("chair-1", ["INFUSING", "COMPLETE", "OBSERVATION"])
    s.ok("note", "chair-1", "ondansetron 4 mg IV given")
    view = s.wait_state("chair-1", ["OBSERVATION"])
    assert abs(view["delivered_ul"] - 100_000) <= 200, view
    s.ok("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")

    # Too early: refused (3) by the facts before any question is asked.
    early = s.pumpctl("discharge", "chair-1", stdin="y\ny\ny\ny\n")
    assert early.returncode == 3, early.stderr
    assert "discharge.observation_too_short" in early.stderr
    assert "?" not in early.stdout
    time.sleep(30 * 60 / s.time_scale + 0.5)  # the protocol's observation time
    s.ok("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
    walked_out = s.pumpctl("discharge", "chair-1", stdin="y\nn\n")
    assert walked_out.returncode == 1, walked_out.stderr
    assert "not discharged" in walked_out.stderr
    assert s.status("chair-1")["session_state"] == "OBSERVATION"
    discharge_when_allowed(s, "chair-1")

    truth = s.sim_status(1)
    assert abs(Fraction(truth["true_infused_ul"]) - 100_000) <= 200, truth
    assert truth["state"] == "IDLE"

    assert s.stop_daemon() == 0
    sessions = s.audit("sessions", "--json")
    assert sessions.returncode == 0, sessions.stderr
    assert session_id in sessions.stdout
    verify = s.audit("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def started_line(log: str) -> dict[str, object]:
    """The daemon's JSON log line of the nurse's start: it names the pump and its session."""
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "control request" and entry.get("method") == "session.start":
                assert entry["pump"] == "chair-1", entry
                assert entry["outcome"] == "ok", entry
                return dict(entry)
    raise StackError(f"no log line of session.start:\n{log[-3000:]}")


def watch_live(s: Stack, pump: str) -> str:
    """`pumpctl watch` refreshing for a while, then Ctrl-C (SIGINT): exit 0, frames out."""
    command, env = s.command(["watch", pump, "--interval", "0.2"])
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return out


def discharge_when_allowed(s: Stack, pump: str, timeout_s: float = 120.0) -> None:
    """The checklist confirmed item by item; refused (3) until the observation time passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s.ok("vitals", pump, "--bp", "122/78", "--hr", "72", "--spo2", "98")
        result = s.pumpctl("discharge", pump, "--confirm-all")
        if result.returncode == 0:
            assert "discharged" in result.stdout
            return
        assert result.returncode == 3, result.stderr
        time.sleep(1.0)
    raise StackError(f"{pump} could not be discharged within {timeout_s:g} s")

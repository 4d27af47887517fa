"""Signals during an infusion, on the real processes.

SIGTERM: pumpd pauses the running infusion at the pump (the simulator shows PAUSED and
the volume no longer grows), writes it down, exits 0; pumpctl then exits 5 (unreachable).
SIGKILL + restart: the new pumpd recovers the session from the audit log and supervises
it again, and it never sends a START (the simulator's command log is the witness).
"""

from __future__ import annotations

import json
import signal
import time
from fractions import Fraction

from .conftest import IS_ROOT, Accounts
from .stack import PIN, Stack, add_staff

START_CODE = 1  # GIP-MB1 command word of START (docs/gip-mb1.md)


def start_infusion(stack: Stack, accounts: Accounts, patient: str) -> None:
    add_staff(stack, accounts.admin)
    stack.ok(
        "program", "chair-1", "--patient", patient, "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    if IS_ROOT:
        stack.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        stack.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    stack.ok("prime", "chair-1", "--line-disconnected")
    stack.wait_state("chair-1", ["PRIMED"])
    stack.ok("vitals", "chair-1", "--bp", "120/80", "--hr", "70", "--spo2", "98")
    stack.ok("start", "chair-1")
    stack.wait_state("chair-1", ["INFUSING"])


def test_sigterm_during_an_infusion_pauses_it_and_exits_0(stack: Stack, accounts: Accounts) -> None:
    start_infusion(stack, accounts, "P-TERM")
    assert stack.sim_status(1)["state"] == "INFUSING"
    assert stack.stop_daemon(signal.SIGTERM) == 0, stack.daemon_log()
    pump = stack.sim_status(1)
    assert pump["state"] == "PAUSED", pump
    volume = Fraction(pump["true_infused_ul"])
    time.sleep(1.0)  # 2 simulated minutes at x120: a running pump would add ~5 mL
    assert Fraction(stack.sim_status(1)["true_infused_ul"]) == volume
    gone = stack.pumpctl("status")
    assert gone.returncode == 5, gone.stderr
    events = stack.audit("events", "--json")
    assert events.returncode == 0, events.stderr
    kinds = events.stdout
    assert "daemon.announced" in kinds
    assert "daemon.stopped" in kinds


def test_sigkill_and_restart_recovers_supervision_never_delivery(
    stack: Stack, accounts: Accounts
) -> None:
    start_infusion(stack, accounts, "P-KILL")
    before = json.loads(stack.ok("status", "chair-1", "--json"))[0]
    starts_before = [r for r in stack.sim_log(1) if r["command"] == START_CODE]
    assert len(starts_before) == 1
    assert stack.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
    stack.start_daemon()
    view = stack.wait_state("chair-1", ["INFUSING", "ALARM", "PAUSED", "OBSERVATION"])
    assert view["session_id"] == before["session_id"]
    # Whatever the pump did while nobody watched (its failsafe may have stopped it), the
    # new daemon never started it again.
    time.sleep(1.0)
    starts_after = [r for r in stack.sim_log(1) if r["command"] == START_CODE]
    assert starts_after == starts_before, stack.sim_log(1)
    events = stack.audit("events", "--json")
    assert "daemon.recovered" in events.stdout or "pump.state_lost" in events.stdout

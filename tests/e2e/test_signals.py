"""Signals during an infusion, on the real processes.

SIGTERM: pumpd pauses the running infusion at the pump (the simulator shows PAUSED and
the volume no longer grows), writes it down, exits 0; pumpctl then exits 5 (unreachable).
SIGTERM while a nurse's STOP is on its way to the pump: the STOP is not cut off; it
reaches the pump, its result is written, the nurse gets her answer, then pumpd exits.
SIGKILL + restart: the pump, heartbeated by nobody, stops itself within its heartbeat
timeout (the failsafe pumpd armed; the simulator's status says COMM_LOSS and how much it
delivered meanwhile); the new pumpd recovers the session from the audit log and
supervises it again, and it never sends a START (the simulator's command log is the
witness).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from fractions import Fraction
from typing import Any

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
    # Nobody heartbeats the pump now: its own failsafe, armed by pumpd at attach, must
    # stop it within its heartbeat timeout (simulated seconds on the pump's clock).
    killed = stack.sim_status(1)
    timeout_s = stack.heartbeat_timeout_s * stack.time_scale
    assert killed["heartbeat_timeout_s"] == timeout_s, killed
    pump = wait_pump_leaves(stack, 1, "INFUSING", within_s=30.0)
    assert pump["state"] == "ALARM", f"the pump's failsafe did not stop it: {pump}"
    assert "COMM_LOSS" in pump["alarm_flags"], pump
    rate_ul_s = Fraction(killed["rate_actual_centi_ml_h"], 100) * 1000 / 3600
    after_kill_ul = Fraction(pump["true_infused_ul"]) - Fraction(killed["true_infused_ul"])
    # Delivered unsupervised: at most its rate for the heartbeat timeout (+1 µL: floored).
    assert after_kill_ul <= rate_ul_s * timeout_s + 1, (after_kill_ul, rate_ul_s, pump)
    stack.start_daemon()
    view = stack.wait_state("chair-1", ["INFUSING", "ALARM", "PAUSED", "OBSERVATION"])
    assert view["session_id"] == before["session_id"]
    # The pump stopped itself while nobody watched; the new daemon never started it again.
    time.sleep(1.0)
    starts_after = [r for r in stack.sim_log(1) if r["command"] == START_CODE]
    assert starts_after == starts_before, stack.sim_log(1)
    assert stack.sim_status(1)["state"] == "ALARM"
    events = stack.audit("events", "--json")
    assert "daemon.recovered" in events.stdout or "pump.state_lost" in events.stdout


def wait_pump_leaves(stack: Stack, unit: int, state: str, within_s: float) -> dict[str, Any]:
    """The simulator's status once the pump is no longer in ``state`` (a bounded wait)."""
    deadline = time.monotonic() + within_s
    status = stack.sim_status(unit)
    while status["state"] == state:
        if time.monotonic() > deadline:
            raise AssertionError(f"pump {unit} still {state} after {within_s:g} s: {status}")
        time.sleep(0.05)
        status = stack.sim_status(unit)
    return status


def audit_events(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    out = stack.audit("events", "--type", event_type, "--json")
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def test_sigterm_while_a_stop_is_on_its_way_lets_it_finish(
    stack: Stack, accounts: Accounts
) -> None:
    start_infusion(stack, accounts, "P-TERM-STOP")
    # The pump now answers but executes no command: the nurse's STOP is sent, looked for
    # and sent again (its attempts take seconds), and SIGTERM lands in the middle of it.
    stack.sim_request("fault", unit=1, fault="ignore-commands", on=True)
    command, env = stack.command(["stop", "chair-1", "--reason", "patient asked to stop"])
    nurse = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30.0
    while not (intents := stop_intents(stack)):
        assert nurse.poll() is None, nurse.communicate()
        assert time.monotonic() < deadline, "the STOP's intent was never written"
        time.sleep(0.05)
    assert nurse.poll() is None, "the STOP ended before SIGTERM: the test proves nothing"
    assert stack.stop_daemon(signal.SIGTERM) == 0, stack.daemon_log()
    out, err = nurse.communicate(timeout=60)
    # The nurse is told what became of her STOP (here: the pump did not confirm it), not
    # that the connection was cut.
    assert "stop" in (out + err).lower(), (out, err)
    assert "connection" not in (out + err).lower(), (out, err)
    (intent,) = intents
    results = [
        e["event_type"]
        for kind in ("pump.command.confirmed", "pump.command.uncertain", "pump.command.failed")
        for e in audit_events(stack, kind)
        if e["correlation_id"] == intent["correlation_id"]
    ]
    assert len(results) == 1, results


def stop_intents(stack: Stack) -> list[dict[str, Any]]:
    return [
        e
        for e in audit_events(stack, "pump.command.requested")
        if e["payload"]["command"] == "stop"
    ]

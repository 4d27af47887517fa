"""GIP 2.2.1 under the controller: input a person leaves pending re-alerts every 15 min
(kernel rule tick.input), each time as a new ``reminder.issued``. At scale 2400 fifteen
simulated minutes are 0.375 s of real time."""

from __future__ import annotations

import json

import pytest
from pumpsim.harness import Fault

from pumpd.controller import Controller
from pumpd.session import State

from .conftest import (
    CHECKER,
    Rig,
    halt,
    program,
    running,
    session_state,
    to_infusing,
    wait_until,
)


@pytest.fixture
def scale() -> float:
    return 2400.0


def _issued(rig: Rig) -> list[dict[str, str]]:
    return [json.loads(e.payload) for e in rig.events(session="S-1", event_type="reminder.issued")]


async def _written(rig: Rig, ctl: Controller, code: str) -> dict[str, str]:
    found: list[dict[str, str]] = []

    def seen() -> bool:
        found[:] = [p for p in _issued(rig) if p["reminder_code"] == code]
        return bool(found)

    await wait_until(
        seen,
        what=f"reminder {code}",
        seen=lambda: f"{session_state(ctl)}, {ctl.status().reminders}",
    )
    return found[0]


async def test_a_pending_double_check_then_start_remind_every_fifteen_minutes(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await program(ctl)
        first = await _written(rig, ctl, "tick.input.double_check.reminder.1")
        assert first["priority"] == "low"
        assert first["message"].startswith("The programmed infusion has waited 15 min")
        await _written(rig, ctl, "tick.input.double_check.reminder.2")
        await ctl.confirm(by=CHECKER, weight="80 kg")
        assert session_state(ctl) is State.VERIFIED
        await _written(rig, ctl, "tick.input.start.reminder.1")
        assert not any("double-check" in text for text in ctl.status().reminders)
    finally:
        await halt(task)
    await ctl.journal.drain()
    codes = [p["reminder_code"] for p in _issued(rig)]
    # Each reminder once: the kernel re-issues by number, the record follows.
    assert codes.count("tick.input.double_check.reminder.1") == 1
    assert codes.count("tick.input.double_check.reminder.2") == 1
    assert "tick.input.double_check.reminder.3" not in codes


async def test_a_latched_alarm_waiting_for_acknowledgement_reminds_at_its_priority(
    rig: Rig,
) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the occlusion alarm")
        first = await _written(rig, ctl, "tick.input.acknowledgement.reminder.1")
        await _written(rig, ctl, "tick.input.acknowledgement.reminder.2")
    finally:
        await halt(task)
    assert first["priority"] == "high"
    assert first["message"].startswith("The latched alarm has waited 15 min to be acknowledged")

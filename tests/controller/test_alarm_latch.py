"""The ALARM latch at the controller, over the simulator: while an alarm is latched,
neither a resume nor a start reaches the pump, whatever the pump is ready to do. Only the
nurse's acknowledgement unlatches it, and then to a state that needs an explicit resume
or start again (docs/session.md; hazards.md H14, H22).

The alarm used is a low battery on a pump that does not deliver: the pump itself stays
ready (IDLE and primed before the start, PAUSED after it) and the cause is gone before
the commands are tried, so every start check would pass: the latch in the session is the
only thing between the nurse's command and delivery."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pumpsim import registers as reg
from pumpsim.harness import Fault

from pumpd.controller import Controller
from pumpd.session import InvalidInState, State
from safety.plan import Order, Patient

from .conftest import (
    CHECKER,
    NURSE,
    Rig,
    halt,
    protocol,
    running,
    session_state,
    wait_until,
)

START = int(reg.Command.START)  # GIP-MB1: START also resumes a paused pump


def starts(rig: Rig) -> int:
    return sum(1 for r in rig.sim.command_log(1) if r.command == START)


async def latch_low_battery(rig: Rig, ctl: Controller) -> None:
    """A low battery while the pump does not deliver latches an alarm; then mains power is
    connected: the cause is gone, the alarm stays latched until it is acknowledged."""
    rig.sim.inject(1, Fault.LOW_BATTERY, on=True)
    await wait_until(
        lambda: session_state(ctl) is State.ALARM,
        what="the low-battery alarm to be latched",
        seen=lambda: f"{session_state(ctl)}, pump {rig.sim.status(1)['state']}",
    )
    rig.sim.inject(1, Fault.LOW_BATTERY, on=False)
    await wait_until(
        lambda: ctl.last_status is not None and not ctl.last_status.warnings,
        what="a reading without the low-battery warning",
    )
    assert session_state(ctl) is State.ALARM


async def refused_in_alarm(rig: Rig, ctl: Controller, pump_state: str) -> None:
    """Resume and start are both refused by the latch; nothing is sent, nothing moves."""
    session = ctl.session
    assert session is not None
    before, sent = session.snapshot(), starts(rig)
    with pytest.raises(InvalidInState) as resume:
        await ctl.resume(by=NURSE)
    assert resume.value.state == State.ALARM
    with pytest.raises(InvalidInState) as start:
        await ctl.start(by=NURSE)
    assert start.value.state == State.ALARM
    assert session.snapshot() == before
    assert starts(rig) == sent, "a START (start or resume) reached the pump in ALARM"
    assert rig.sim.status(1)["state"] == pump_state


async def to_primed(rig: Rig, ctl: Controller) -> None:
    """Programmed, double-checked, primed, baseline vitals: every start check would pass."""
    await ctl.program(
        by=NURSE,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    await wait_until(lambda: session_state(ctl) is State.PRIMED, what="priming to finish")
    await ctl.vitals(by=NURSE, reading=rig.vitals())


async def test_before_the_start_a_latched_alarm_lets_no_start_or_resume_through(
    rig: Rig,
) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        await latch_low_battery(rig, ctl)
        await refused_in_alarm(rig, ctl, "IDLE")
        assert starts(rig) == 0
        await ctl.acknowledge(by=NURSE, note="mains connected")
        assert session_state(ctl) is State.VERIFIED
        await ctl.start(by=NURSE)  # the same command, once acknowledged, goes through
        assert session_state(ctl) is State.INFUSING
        assert starts(rig) == 1
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert "alarm.acknowledged" in rig.types(session="S-1")
    assert rig.chain_ok()


async def test_after_the_start_a_latched_alarm_lets_no_resume_or_start_through(
    rig: Rig,
) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        await ctl.start(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        await wait_until(lambda: ctl.delivered_ul() > 500, what="some delivery")
        # The nurse pauses; then the alarm latches with the pump PAUSED, where a resume
        # (a START) would at once deliver again.
        await ctl.pause(by=NURSE)
        assert session_state(ctl) is State.PAUSED
        await latch_low_battery(rig, ctl)
        await refused_in_alarm(rig, ctl, "PAUSED")
        assert starts(rig) == 1
        await ctl.acknowledge(by=NURSE, note="mains connected")
        assert session_state(ctl) is State.PAUSED  # never straight back to INFUSING
        assert rig.sim.status(1)["state"] == "PAUSED"
        await ctl.resume(by=NURSE)  # once acknowledged, the explicit resume goes through
        assert session_state(ctl) is State.INFUSING
        assert starts(rig) == 2
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert "alarm.acknowledged" in rig.types(session="S-1")
    assert rig.chain_ok()

"""The nurse-facing API beyond the happy path: adjust in two steps (the kernel re-checks
the new plan and the pump runs the new rate), pause and resume, notes, refusals that
change nothing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pumpd.controller import NoSession
from pumpd.session import CommandRefused, InvalidInState, State
from safety.plan import Order

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until


async def test_adjust_slows_the_infusion_after_confirmation(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        old_rate = session.plan.rate_ml_h
        proposed = await ctl.adjust(
            by=NURSE, reason="patient too dissociated", order=Order(duration_min=Decimal(60))
        )
        assert proposed.rate_ml_h < old_rate
        assert session_state(ctl) is State.INFUSING
        assert rig.sim.pump(1).snapshot()["rate_setpoint_centi_ml_h"] == int(old_rate * 100)
        await ctl.confirm_adjust(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        assert session.plan.rate_ml_h == proposed.rate_ml_h
        assert int(str(rig.sim.status(1)["rate_actual_centi_ml_h"])) == int(
            proposed.rate_ml_h * 100
        )
        await ctl.note(by=NURSE, text="slowed for dissociation")
        await ctl.pause(by=NURSE, reason="patient asked for a short break")
        assert session_state(ctl) is State.PAUSED
        await ctl.resume(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        await wait_until(lambda: ctl.expected_ul() > 3_000, what="more delivery")
        assert not session.data.alarms
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types(session="S-1")
    for expected in ("session.adjusted", "note.recorded", "session.paused", "session.resumed"):
        assert expected in types
    # Why it was paused is in the session's own record: the intent and session.paused.
    reason = "patient asked for a short break"
    [paused] = rig.events(session="S-1", event_type="session.paused")
    assert json.loads(paused.payload)["reason"] == reason
    intents = [json.loads(e.payload) for e in rig.events(event_type="pump.command.requested")]
    assert [i.get("reason") for i in intents if i["command"] == "pause"] == [reason]
    # The start records the limits this controller supervises with (its own policy: the
    # rig's comm timeout, not the kernel default), for the auditor.
    [started] = rig.events(session="S-1", event_type="session.started")
    limits = json.loads(started.payload)["supervision"]
    assert limits["comm_timeout_ms"] == round(ctl.config.policy.comm_timeout_s * 1000)
    assert limits["vtbi_ul"] == 100_000
    assert limits["volume_tolerance_abs_ul"] == 500
    assert limits["max_delivery_ms"] == 50 * 60_000


async def test_refusals_change_nothing(rig: Rig) -> None:
    ctl = await rig.controller()
    with pytest.raises(NoSession):
        await ctl.start(by=NURSE)
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        before = session.snapshot()
        with pytest.raises(InvalidInState):
            await ctl.prime(by=NURSE, line_disconnected=True)
        with pytest.raises(InvalidInState):
            await ctl.discharge(by=NURSE, checklist_confirmed=[])
        with pytest.raises(CommandRefused):
            await ctl.stop(by=NURSE, reason="  ")
        assert session.snapshot() == before
        assert rig.sim.status(1)["state"] == "INFUSING"
    finally:
        await halt(task)

"""A pump that restarts during a session (docs/controller.md, "A pump that restarts during a
session"): one high alarm naming the volume delivered before the restart, the delivered
volume kept (never back to 0), the accounting re-anchored on the new counter, no STOP storm,
nothing restarted by pumpd, and the nurse can acknowledge and end the session.

Before the fix the session's start counter stayed at its pre-reboot value, so
``tick.pump.counter_below_start`` was demanded at every tick: each acknowledgement was
followed at once by a new STOP and a new alarm and the session could never end (the soak's
seed 7, docs/soak.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from pumpsim import registers as reg

from pumpd.controller import Controller
from pumpd.controller.translate import ml_text
from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.recovery import last_checkpoint
from pumpd.session import State
from pumpd.supervisor import Supervisor
from safety.plan import Order, Patient

from .conftest import (
    CHECKER,
    NURSE,
    PUMP_ID,
    Rig,
    halt,
    library,
    protocol,
    running,
    session_state,
    to_infusing,
    wait_until,
)

PROTOCOL = "ketamine-trd-standard"
STOP = int(reg.Command.STOP)
MOVING = {int(reg.Command.START), int(reg.Command.PRIME)}


@pytest.fixture
def scale() -> float:
    # The protocol's 30 min observation is 1.5 s of real time.
    return 1200.0


async def _priming(rig: Rig, ctl: Controller) -> None:
    await ctl.program(
        by=NURSE,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol(PROTOCOL),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    await wait_until(lambda: rig.sim.status(1)["state"] == "PRIMING", what="priming")


async def _infusing(rig: Rig, ctl: Controller) -> None:
    await to_infusing(rig, ctl, PROTOCOL)
    await wait_until(lambda: ctl.delivered_ul() > 3_000, what="some delivery")


async def _paused(rig: Rig, ctl: Controller) -> None:
    await _infusing(rig, ctl)
    await ctl.pause(by=NURSE)
    assert session_state(ctl) is State.PAUSED


async def _observation(rig: Rig, ctl: Controller) -> None:
    await _infusing(rig, ctl)
    await ctl.stop(by=NURSE, reason="patient asked to stop")
    await ctl.observe(by=NURSE)
    assert session_state(ctl) is State.OBSERVATION


SETUP: dict[str, Callable[[Rig, Controller], Awaitable[None]]] = {
    "priming": _priming,
    "infusing": _infusing,
    "paused": _paused,
    "observation": _observation,
}
# Where the acknowledgement leads: before the start back to the checked program (then
# abort), after it to STOPPED (then observe) or on with the observation.
AFTER_ACK = {
    "priming": State.VERIFIED,
    # A restarted pump lost what it delivered: not continuable, so once its halt is
    # confirmed the session is in observation by itself (safety.continuation).
    "infusing": State.OBSERVATION,
    "paused": State.OBSERVATION,
    "observation": State.OBSERVATION,
}


async def _some_polls(ctl: Controller, count: int = 40) -> None:
    target = ctl.polls + count
    await wait_until(lambda: ctl.polls >= target, what=f"{count} polls")


@pytest.mark.parametrize("phase", tuple(SETUP))
async def test_a_reboot_is_one_alarm_and_the_session_can_be_ended(rig: Rig, phase: str) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await SETUP[phase](rig, ctl)
        session = ctl.session
        assert session is not None
        assert not session.data.alarms
        known_ul = ctl.delivered_ul()  # pumpd's figure just before the restart
        counter_ul = int(rig.sim.status(1)["volume_infused_ul"])  # type: ignore[call-overload]
        logged = len(rig.sim.command_log(1))
        rig.sim.reboot(1)
        await wait_until(
            lambda: session_state(ctl) is State.ALARM,
            what="the reboot alarm",
            seen=lambda: f"{session_state(ctl)}, sim {rig.sim.status(1)}",
        )
        await _some_polls(ctl)
        session = ctl.session
        assert session is not None
        # One alarm, high, and the delivered volume is the one before the restart.
        assert [a.code for a in session.data.alarms] == ["tick.pump.rebooted"]
        alarm = session.data.alarms[0]
        assert alarm.priority.value == "high"
        delivered = ctl.delivered_ul()
        assert known_ul <= delivered <= counter_ul + 1_000
        vtbi_ul = session.plan.vtbi_ul
        assert alarm.message.startswith(
            f"Pump restarted on {PUMP_ID}: infusion stopped at {ml_text(delivered)} of "
            f"{ml_text(vtbi_ul)} mL."
        ), alarm.message
        assert "volume counter was lost" in alarm.message
        assert ctl.status().delivered_ul == delivered
        # The rebooted pump's failsafe is armed again; it was not restarted.
        status = rig.sim.status(1)
        assert status["state"] == "IDLE"
        assert status["heartbeat_timeout_s"] == ctl.config.heartbeat_timeout_s
        stops = [r for r in rig.sim.command_log(1)[logged:] if r.command == STOP]
        assert len(stops) <= ctl.config.stop_attempts, stops
        # The nurse acknowledges; nothing is raised or stopped again afterwards.
        await ctl.acknowledge(by=NURSE, note="pump restarted; line checked")
        assert session_state(ctl) is AFTER_ACK[phase]
        acked = len(rig.sim.command_log(1))
        await _some_polls(ctl, 60)
        session = ctl.session
        assert session is not None
        assert session_state(ctl) is AFTER_ACK[phase], [a.code for a in session.data.alarms]
        assert not session.data.alarms
        assert rig.sim.command_log(1)[acked:] == []
        assert ctl.delivered_ul() == delivered
        # ... and ends the session the documented way.
        if phase == "priming":
            await ctl.abort(by=NURSE, reason="pump restarted while priming")
            assert session_state(ctl) is State.ABORTED
        else:
            if session_state(ctl) is State.STOPPED:
                await ctl.observe(by=NURSE)
            session = ctl.session
            assert session is not None
            started = session.data.observation_started_at
            assert started is not None
            proto = protocol(PROTOCOL).protocol
            minimum_s = float(proto.observation_min * 60)
            await wait_until(
                lambda: rig.clock.monotonic() - started.mono_s > minimum_s + 1,
                what="the observation time",
            )
            assert not session.data.alarms
            await ctl.vitals(by=NURSE, reading=rig.vitals())
            await ctl.discharge(by=NURSE, checklist_confirmed=list(proto.discharge_checklist))
            assert session_state(ctl) is State.DISCHARGED
            assert ctl.delivered_ul() == delivered
        after = rig.sim.command_log(1)[logged:]
        assert not [r for r in after if r.command in MOVING], after
        assert len([r for r in after if r.command == STOP]) <= ctl.config.stop_attempts
    finally:
        await halt(task)
    await ctl.journal.drain()
    raised = [json.loads(e.payload) for e in rig.events(event_type="alarm.raised")]
    assert [r["alarm_code"] for r in raised] == ["tick.pump.rebooted"], raised
    # The dose record stays true: no stop or checkpoint after the restart says less.
    for e in rig.events(event_type="session.stopped", session="S-1"):
        assert json.loads(e.payload)["delivered_volume_ul"] >= min(known_ul, delivered)
    last = rig.events(event_type="session.checkpointed", session="S-1")[-1]
    accounting = json.loads(last.payload).get("accounting") or {}
    if phase != "priming":
        assert (
            accounting["delivered_before_ul"]
            + accounting["pump_counter_ul"]
            - accounting["volume_at_start_ul"]
            == delivered
        )
    assert rig.chain_ok()


async def test_a_pump_restarted_while_pumpd_was_down_is_recovered_and_ended(rig: Rig) -> None:
    """The same after a restart of pumpd: recovery re-anchors as the live loop does (before,
    its start counter went negative, and every tick was a bookkeeping STOP)."""
    first = await rig.controller()
    task = await running(first)
    await _infusing(rig, first)
    await halt(task)
    await first.journal.drain()
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    account, pump = checkpoint.accounting.account, checkpoint.accounting.pump
    assert account is not None
    assert pump is not None
    known_ul = pump.counter_ul - account.volume_at_start_ul
    rig.sim.reboot(1)
    logged = len(rig.sim.command_log(1))
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    driver = ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=host, port=port, unit=1, timeout_s=0.2)
    )
    await driver.connect()
    sup = Supervisor(writer=rig.writer, engine=rig.store.engine, clock=rig.clock, library=library())
    try:
        ctl = await sup.add(driver, rig.config())
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the alarm")
        await _some_polls(ctl)
        session = ctl.session
        assert session is not None
        assert [a.code for a in session.data.alarms] == ["pump.state_lost"]
        assert ctl.delivered_ul() == known_ul
        assert session.data.alarms[0].message.startswith(
            f"Pump lost its state on {PUMP_ID}: infusion stopped at {ml_text(known_ul)} of "
        )
        await ctl.acknowledge(by=NURSE, note="pump restarted while pumpd was down")
        # The lost state is about delivery accuracy: the session ended by itself.
        assert session_state(ctl) is State.OBSERVATION
        acked = len(rig.sim.command_log(1))
        await _some_polls(ctl, 60)
        assert session_state(ctl) is State.OBSERVATION
        assert not session.data.alarms
        assert rig.sim.command_log(1)[acked:] == []
        session = ctl.session
        assert session is not None
        started = session.data.observation_started_at
        assert started is not None
        proto = protocol(PROTOCOL).protocol
        await wait_until(
            lambda: rig.clock.monotonic() - started.mono_s > float(proto.observation_min * 60) + 1,
            what="the observation time",
        )
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        await ctl.discharge(by=NURSE, checklist_confirmed=list(proto.discharge_checklist))
        assert session_state(ctl) is State.DISCHARGED
        assert ctl.delivered_ul() == known_ul
    finally:
        await sup.close()
        await driver.close()
    assert not [r for r in rig.sim.command_log(1)[logged:] if r.command in MOVING]
    stopped = rig.events(event_type="session.stopped", session="S-1")
    assert [json.loads(e.payload)["delivered_volume_ul"] for e in stopped] == [known_ul]


async def test_a_restart_read_late_is_still_a_restart(rig: Rig) -> None:
    """A pump restarted while priming and read again only after its new uptime has passed
    the old one (a stalled loop, a slow line): its forgotten command number still shows
    the restart. Before, only a falling uptime did, so the idle, rebooted pump completed
    the prime with the 0 mL its new counter showed (the fault matrix's reboot-priming row
    under load)."""
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await _priming(rig, ctl)
        before = rig.sim.status(1)
        assert int(before["last_cmd_seq"]) != 0  # type: ignore[call-overload]
    finally:
        await halt(task)  # pumpd does not read the pump for a while
    rig.sim.reboot(1)
    await wait_until(
        lambda: int(rig.sim.status(1)["uptime_s"]) > int(before["uptime_s"]) + 5,  # type: ignore[call-overload]
        what="the new uptime past the old one",
    )
    task = await running(ctl)
    try:
        await wait_until(
            lambda: session_state(ctl) is State.ALARM,
            what="the reboot alarm",
            seen=lambda: f"{session_state(ctl)}, sim {rig.sim.status(1)}",
        )
        session = ctl.session
        assert session is not None
        assert [a.code for a in session.data.alarms] == ["tick.pump.rebooted"]
        assert "no longer knows its last command" in session.data.alarms[0].message
        assert session.data.primed_at is None  # the prime was never taken as complete
    finally:
        await halt(task)

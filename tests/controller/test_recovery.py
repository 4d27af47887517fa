"""Restart recovery: kill the controller (cancel its task, no cleanup), start a new one on
the same audit database and the same simulator, and see it reconcile without ever
starting or resuming delivery by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal

from pumpsim.harness import Fault

from pumpd.clock import Clock, ScaledClock, stamp
from pumpd.controller import Controller
from pumpd.drivers import Command, ModbusConfig, ModbusPumpDriver, PumpProgram
from pumpd.recovery import last_checkpoint, rebuild
from pumpd.session import State
from pumpd.supervisor import Supervisor

from .conftest import PUMP_ID, Rig, halt, library, running, session_state, to_infusing, wait_until

START = 1


async def _supervised(rig: Rig, clock: Clock | None = None) -> tuple[Supervisor, Controller]:
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    driver = ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=host, port=port, unit=1, timeout_s=0.2)
    )
    await driver.connect()
    sup = Supervisor(
        writer=rig.writer,
        engine=rig.store.engine,
        clock=rig.clock if clock is None else clock,
        library=library(),
    )
    ctl = await sup.add(driver, rig.config())
    return sup, ctl


def _starts(rig: Rig) -> int:
    return sum(1 for r in rig.sim.command_log(1) if r.command == START)


async def test_open_session_and_pump_infusing_resumes_supervision(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 5_000, what="some delivery")
    await halt(task)  # the daemon dies here; the pump goes on infusing
    await first.journal.drain()
    assert rig.sim.status(1)["state"] == "INFUSING"
    starts = _starts(rig)
    sup, ctl = await _supervised(rig)
    try:
        assert session_state(ctl) is State.INFUSING
        assert ctl.delivered_ul() > 5_000
        session = ctl.session
        assert session is not None
        vtbi = session.plan.vtbi_ul
        await wait_until(
            lambda: session_state(ctl) is State.OBSERVATION, within_s=90, what="completion"
        )
        assert abs(int(str(rig.sim.status(1)["volume_infused_ul"])) - vtbi) <= 1
        assert not session.data.alarms
    finally:
        await sup.close()
    assert _starts(rig) == starts, "recovery never starts the pump"
    recovered = rig.events(event_type="daemon.recovered")
    assert recovered
    assert "S-1" in recovered[-1].payload
    assert rig.chain_ok()


async def test_pump_infusing_without_session_is_stopped_with_an_alarm(rig: Rig) -> None:
    # Someone started the pump behind pumpd's back (no session in the log).
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    raw = ModbusPumpDriver(ModbusConfig(transport="tcp", host=host, port=port, unit=1))
    await raw.connect()
    await raw.write_program(
        PumpProgram(
            rate_ml_h=Decimal("100.00"),
            vtbi_ul=50_000,
            kvo_rate_ml_h=Decimal(0),
            prime_volume_ul=1_000,
            prime_rate_ml_h=Decimal("100.00"),
        )
    )
    await raw.command(Command.START)
    await raw.close()
    sup, ctl = await _supervised(rig)
    try:
        await wait_until(lambda: rig.sim.status(1)["state"] == "IDLE", what="the stop")
        assert any(n.code == "pump.orphan_delivery" for n in ctl.notices)
        assert ctl.session is None
    finally:
        await sup.close()
    alarms = rig.events(event_type="alarm.raised")
    assert any("pump.orphan_delivery" in e.payload for e in alarms)


async def test_rebooted_pump_is_an_alarm_with_the_last_known_volume(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 5_000, what="some delivery")
    await halt(task)
    await first.journal.drain()
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    account, pump = checkpoint.accounting.account, checkpoint.accounting.pump
    assert account is not None
    assert pump is not None
    known_ul = pump.counter_ul - account.volume_at_start_ul
    rig.sim.reboot(1)
    starts = _starts(rig)
    sup, ctl = await _supervised(rig)
    try:
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the alarm")
        session = ctl.session
        assert session is not None
        alarm = next(a for a in session.data.alarms if a.code == "pump.state_lost")
        assert alarm.message.startswith(f"Pump lost its state on {PUMP_ID}: infusion stopped at")
        assert f"{known_ul} µL" in alarm.message
        assert rig.sim.status(1)["state"] == "IDLE"
    finally:
        await sup.close()
    assert _starts(rig) == starts


async def test_checkpoint_rebuilds_the_same_session(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    await to_infusing(rig, ctl)
    await halt(task)
    await ctl.journal.drain()
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    session = rebuild(checkpoint, library(), stamp(rig.clock))
    original = ctl.session
    assert original is not None
    assert session.state is original.state
    assert session.plan == original.plan
    assert session.data.session_id == "S-1"


async def test_runaway_while_the_daemon_was_down_is_caught_after_the_restart(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 3_000, what="some delivery")
    await halt(task)  # the daemon dies; the pump runs away before it is back
    await first.journal.drain()
    rig.sim.inject(1, Fault.RUNAWAY, on=True, factor="1.5")
    # Less than the pump's heartbeat failsafe (0.6 s real), so the pump is still infusing.
    await asyncio.sleep(0.3)
    assert rig.sim.status(1)["state"] == "INFUSING"
    sup, ctl = await _supervised(rig)
    try:
        await wait_until(
            lambda: session_state(ctl) is State.ALARM,
            what="the over-infusion the downtime hid",
            seen=lambda: f"{session_state(ctl)}, {ctl.delivered_ul()} µL, {ctl.expected_ul()}",
        )
        session = ctl.session
        assert session is not None
        codes = [a.code for a in session.data.alarms]
        # Judged at once by the carried expected volume, not only later by the pump's rate.
        assert "tick.volume.over_infusion" in codes, codes
        assert rig.sim.status(1)["state"] != "INFUSING"
    finally:
        await sup.close()
    recovered = rig.events(event_type="daemon.recovered")
    assert "carried across" in recovered[-1].payload
    assert rig.chain_ok()


async def test_a_clock_stepped_back_during_the_downtime_is_not_bridged(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 3_000, what="some delivery")
    await halt(task)
    await first.journal.drain()
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    account = checkpoint.accounting.account
    assert account is not None
    assert account.at_utc is not None
    then = dt.datetime.fromisoformat(account.at_utc)
    ctl = await rig.controller()
    # The checkpoint seems to come from the future: the clock went back while pumpd was down.
    ahead = dataclasses.replace(account, at_utc=(then + dt.timedelta(hours=1)).isoformat())
    stepped = dataclasses.replace(checkpoint.accounting, account=ahead)
    await ctl.recover(rebuild(checkpoint, library(), stamp(rig.clock)), stepped)
    await ctl.journal.drain()
    recovered = rig.events(event_type="daemon.recovered")
    # Re-anchored on the counter, as before the carry-over existed, and the record says so.
    assert "re-anchored on the pump's counter" in recovered[-1].payload
    assert "carried across" not in recovered[-1].payload


class _RebootedHost:
    """The same UTC time, and a monotonic clock that starts again near 0, as after the
    machine itself restarted: every time restored from the audit log lies before its
    origin (found by the soak, where the simulated ages dwarf the machine's uptime)."""

    def __init__(self, clock: ScaledClock) -> None:
        self._clock = clock
        self._origin = clock.monotonic() - 1.0

    def monotonic(self) -> float:
        return self._clock.monotonic() - self._origin

    def now_utc(self) -> dt.datetime:
        return self._clock.now_utc()


async def test_times_from_before_the_clock_origin_are_supervised_as_usual(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 3_000, what="some delivery")
    await halt(task)
    await first.journal.drain()
    assert rig.sim.status(1)["state"] == "INFUSING"
    sup, ctl = await _supervised(rig, _RebootedHost(rig.clock))
    try:
        session = ctl.session
        assert session is not None
        assert session.data.last_vitals is not None
        assert session.data.last_vitals.at.mono_s < 0  # before the new origin
        delivered = ctl.delivered_ul()
        await wait_until(lambda: ctl.delivered_ul() > delivered + 2_000, what="more delivery")
        assert session_state(ctl) is State.INFUSING
        assert not session.data.alarms, [a.message for a in session.data.alarms]
        assert not rig.events(event_type="alarm.raised")
    finally:
        await sup.close()


async def test_a_halt_whose_intent_a_crash_lost_is_an_alarm_never_a_resumption(rig: Rig) -> None:
    """A halt goes to the pump before its intent is durable (docs/controller.md, "A halt is
    not held for its intent"): a crash in between leaves a stopped pump and a log whose
    last word on the session predates the halt. The next daemon rebuilds the session as
    infusing, reads the pump as it is, says so on record, raises an alarm, and starts
    nothing."""
    first = await rig.controller()
    task = await running(first)
    await to_infusing(rig, first)
    await wait_until(lambda: first.delivered_ul() > 3_000, what="some delivery")
    await halt(task)  # the daemon dies ...
    await first.journal.drain()
    # ... right after its STOP reached the pump, before anything of the halt was written.
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    raw = ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=host, port=port, unit=1, timeout_s=0.2)
    )  # the dead daemon's line settings
    await raw.connect()
    await raw.command(Command.STOP)
    await raw.close()
    assert rig.sim.status(1)["state"] != "INFUSING"
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    assert checkpoint.state.lower() == "infusing", "the log's last word predates the halt"
    starts = _starts(rig)
    sup, ctl = await _supervised(rig)
    try:
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the alarm")
        session = ctl.session
        assert session is not None
        codes = [a.code for a in session.data.alarms]
        assert codes, "an alarm names the pump that is not delivering"
        await asyncio.sleep(0.2)  # polls go on; nothing is started meanwhile
        assert rig.sim.status(1)["state"] != "INFUSING"
    finally:
        await sup.close()
    assert _starts(rig) == starts, "recovery never starts the pump"
    recovered = rig.events(event_type="daemon.recovered")
    assert "rebuilt in INFUSING; pump IDLE" in recovered[-1].payload, "the pump as read"
    raised = [e for e in rig.events(event_type="alarm.raised") if e.seq > recovered[-1].seq]
    assert raised, "the alarm is on record"
    print(f"lost halt intent: recovered with alarms {codes}; {recovered[-1].payload}")
    assert rig.chain_ok()

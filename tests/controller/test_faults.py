"""Faults only the daemon can catch, and the link failing: the pump ends up not delivering,
the session ends in ALARM with a plain-language message, and the audit log says why."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pumpsim.harness import Fault

from pumpd.audit import Actor
from pumpd.controller import AuditUnavailable, Controller
from pumpd.session import State
from pumpd.session.records import AlarmRecord
from safety.actions import Priority
from safety.plan import Order, Patient

from .conftest import (
    NURSE,
    PUMP_ID,
    Rig,
    halt,
    protocol,
    running,
    session_state,
    to_infusing,
    wait_until,
)

# simulator command codes (docs/gip-mb1.md)
START, PAUSE, STOP, PRIME = 1, 2, 3, 4
_INTENT_OF = {START: ("start", "resume"), PAUSE: ("pause",), STOP: ("stop",), PRIME: ("prime",)}


def intents_precede_commands(rig: Rig, unit: int = 1) -> None:
    """Every command the pump took has its own intent event in the log, stamped (handed to
    the writer: its time and its place in the log fixed) before the pump took it. A
    start's is durable before it too (test_no_start_when_the_intent_cannot_be_written); a
    halt's is not waited for (test_halt_not_held.py)."""
    offset_s = time.time() - time.monotonic()
    intents = [e for e in rig.events(event_type="pump.command.requested") if e.pump_id == PUMP_ID]
    used: set[int] = set()
    for record in rig.sim.command_log(unit):
        taken_utc = dt.datetime.fromtimestamp(record.t_monotonic + offset_s, dt.UTC)
        match = None
        for e in intents:
            when = dt.datetime.strptime(e.occurred_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=dt.UTC
            )
            if e.seq in used or when >= taken_utc:
                continue
            if f'"command":"{_INTENT_OF[record.command][0]}"' in e.payload or any(
                f'"command":"{name}"' in e.payload for name in _INTENT_OF[record.command]
            ):
                match = e
                break
        assert match is not None, f"pump command {record} has no intent written before it"
        used.add(match.seq)


@contextlib.contextmanager
def database_locked(rig: Rig) -> Iterator[None]:
    """Another process holds the audit database's write lock: nothing commits meanwhile."""
    blocker = sqlite3.connect(rig.db_path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_runaway_pump_is_halted_and_over_delivery_reported(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 2_000, what="some delivery")
        rig.sim.inject(1, Fault.RUNAWAY, on=True, factor="1.5")
        await wait_until(
            lambda: session_state(ctl) is State.ALARM, within_s=10, what="the runaway alarm"
        )
        await wait_until(lambda: rig.sim.status(1)["state"] != "INFUSING", what="delivery to end")
    finally:
        await halt(task)
    await ctl.journal.drain()
    session = ctl.session
    assert session is not None
    alarm = session.latched_alarm
    assert alarm is not None
    assert alarm.code in ("tick.rate.mismatch", "tick.volume.over_infusion")
    assert alarm.priority is Priority.HIGH
    assert alarm.message.startswith(f"Pump rate differs from the prescription on {PUMP_ID}") or (
        alarm.message.startswith(f"Over-infusion on {PUMP_ID}")
    )
    status = rig.sim.status(1)
    delivered = int(str(status["volume_infused_ul"]))
    over_ul = delivered - ctl.expected_ul()
    print(f"runaway x1.5: halted with {over_ul} µL more than the commanded rate gives")
    assert over_ul > 0
    assert "interlock.triggered" in rig.types(session="S-1")
    intents_precede_commands(rig)
    assert rig.chain_ok()


async def test_pump_ignoring_its_vtbi_is_stopped_at_the_plan(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        vtbi_ul = session.plan.vtbi_ul
        # The pump forgets the VTBI it was given: as if its register held the maximum.
        rig.sim.pump(1).write_holding(102, [0xFFFF, 0xFFFF])
        await wait_until(
            lambda: session_state(ctl) is State.ALARM, within_s=20, what="the stop at the plan"
        )
        await wait_until(lambda: rig.sim.status(1)["state"] == "IDLE", what="pump idle")
    finally:
        await halt(task)
    await ctl.journal.drain()
    delivered = int(str(rig.sim.status(1)["volume_infused_ul"]))
    over_ul = delivered - vtbi_ul
    print(f"VTBI ignored: pumpd stopped the pump {over_ul} µL past the plan's {vtbi_ul} µL")
    # one poll period of flow at most (150 mL/h for 0.01 s real at this scale), with margin
    assert 0 <= over_ul <= 2_000
    codes = [a.code for a in session.data.alarms]
    assert "pump.vtbi_ignored" in codes
    assert session.data.completed_at is not None
    assert "infusion.completed" in rig.types(session="S-1")
    intents_precede_commands(rig)


async def test_link_drop_failsafe_and_daemon_alarm_both_happen(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 1_000, what="some delivery")
        rig.sim.inject(1, Fault.DROP_LINK, on=True)
        await wait_until(
            lambda: session_state(ctl) is State.ALARM, within_s=15, what="the daemon's alarm"
        )
        await wait_until(
            lambda: rig.sim.peek(1).snapshot()["state"] == "ALARM",
            within_s=10,
            what="the pump's own failsafe",
        )
        assert "COMM_LOSS" in str(rig.sim.status(1)["alarm_flags"]) or (
            int(str(rig.sim.status(1)["alarm_flags"])) & 0x20
        )
        rig.sim.inject(1, Fault.DROP_LINK, on=False)
        await wait_until(
            lambda: any(a.code == "tick.pump.alarm.comm_loss" for a in _alarms(ctl)),
            what="the pump's failsafe seen by the daemon",
        )
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert session_state(ctl) is State.ALARM
    codes = [a.code for a in _alarms(ctl)]
    assert "tick.comm.lost" in codes
    comm = next(a for a in _alarms(ctl) if a.code == "tick.comm.lost")
    assert comm.message.startswith(f"No answer from the pump on {PUMP_ID}: infusion stopped at")
    types = rig.types(session="S-1")
    assert "alarm.raised" in types
    assert "pump.unreachable" in rig.types(pump=PUMP_ID)
    assert rig.chain_ok()


def _alarms(ctl: Controller) -> tuple[AlarmRecord, ...]:
    s = ctl.session
    return () if s is None else s.data.alarms


async def test_no_start_when_the_intent_cannot_be_written(rig: Rig) -> None:
    ctl = await rig.controller()
    await ctl.program(
        by=NURSE,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=Actor.person("nurse.grace", "nurse"), weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    task = await running(ctl)
    try:
        await wait_until(lambda: session_state(ctl) is State.PRIMED, what="priming")
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        await ctl.journal.drain()
        commands_before = len(rig.sim.command_log(1))
        with database_locked(rig):
            with pytest.raises(AuditUnavailable):
                await ctl.start(by=NURSE)
            assert session_state(ctl) is State.PRIMED
            assert len(rig.sim.command_log(1)) == commands_before
            assert rig.sim.status(1)["state"] == "IDLE"
            await wait_until(
                lambda: any(n.code == "audit.write_failed" for n in ctl.notices),
                what="the audit alarm",
            )
        await ctl.journal.drain()
        # The store is back: the same start now goes through.
        await ctl.start(by=NURSE)
        assert session_state(ctl) is State.INFUSING
    finally:
        await halt(task)
    await ctl.journal.drain()
    failed = [e for e in rig.events(event_type="pump.command.failed")]
    assert any("audit_unavailable" in e.payload for e in failed)
    assert rig.chain_ok()


async def test_stop_is_sent_while_the_store_is_unavailable(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await ctl.journal.drain()
        with database_locked(rig):
            rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
            await wait_until(lambda: session_state(ctl) is State.ALARM, what="the stop")
            stops = [r for r in rig.sim.command_log(1) if r.command == STOP]
            assert stops, "the STOP went to the pump although the store was locked"
            assert any(n.code == "audit.write_failed" for n in ctl.notices)
            reader = sqlite3.connect(rig.db_path, timeout=1)
            written = reader.execute(
                "SELECT count(*) FROM audit_event WHERE event_type = 'alarm.raised'"
            ).fetchone()[0]
            reader.close()
            assert written == 0, "nothing can have been written while the lock is held"
        await ctl.journal.drain()
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types(session="S-1")
    assert "alarm.raised" in types
    alarm_events = [e for e in rig.events(event_type="alarm.raised") if "audit." in e.payload]
    assert alarm_events, "the audit failure itself is written once the store is back"
    session = ctl.session
    assert session is not None
    alarm = session.latched_alarm
    assert alarm is not None
    assert alarm.message.startswith(f"Downstream occlusion on {PUMP_ID}: infusion stopped at")
    assert rig.chain_ok()


@pytest.mark.slow
@pytest.mark.parametrize("scale", [60.0])  # the infusion (40 s real) outlasts the wait
@pytest.mark.parametrize("known_away", [False, True], ids=["first-of-outage", "known-away"])
async def test_a_halt_never_waits_for_a_store_that_does_not_answer(
    rig: Rig, known_away: bool
) -> None:
    """A STOP goes out at once whether or not the store is already known to be away (a
    write pending longer than ``intent_wait_s``): it is never held for its intent. The
    intent is written ahead of its result, in order, once the store answers, and the
    nurses get the audit alarm."""
    wait_s = 4.0
    ctl = await rig.controller(intent_wait_s=wait_s)
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await ctl.journal.drain()
        with database_locked(rig):
            if known_away:
                # Checkpoints of the infusion keep being queued; none can commit.
                await wait_until(
                    lambda: ctl.journal.stalled(wait_s),
                    within_s=4 * wait_s,
                    what="a write pending longer than intent_wait_s",
                )
            else:
                assert not ctl.journal.stalled(wait_s)
            injected_at = time.monotonic()
            rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
            await wait_until(
                lambda: any(r.command == STOP for r in rig.sim.command_log(1)),
                within_s=4 * wait_s,
                what="the STOP at the pump",
            )
            took_s = time.monotonic() - injected_at
            assert took_s < wait_s / 4, (
                f"the STOP took {took_s:.1f} s with the store not answering (intent_wait_s "
                f"{wait_s} s): it waited for its intent"
            )
            if known_away:
                # Nor is the loop held after it: no wait for a store known not to answer.
                polled = ctl.last_poll_s
                await wait_until(
                    lambda: ctl.last_poll_s != polled,
                    within_s=wait_s / 4,
                    what="the next poll after the STOP",
                )
            await wait_until(
                lambda: any(n.code == "audit.write_failed" for n in ctl.notices),
                within_s=4 * wait_s,
                what="the audit alarm",
            )
        await ctl.journal.drain()
    finally:
        await halt(task)
    await ctl.journal.drain()
    # Sent without waiting, the STOP's intent is still written ahead of its result, in
    # order, once the store answers again.
    stops = [
        e
        for e in rig.events(session="S-1")
        if e.event_type.startswith("pump.command.") and '"command":"stop"' in e.payload
    ]
    assert [e.event_type for e in stops][:2] == ["pump.command.requested", "pump.command.confirmed"]
    assert stops[0].correlation_id == stops[1].correlation_id
    intents_precede_commands(rig)
    assert rig.chain_ok()

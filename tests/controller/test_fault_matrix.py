"""The fault matrix: every fault the simulator can inject over TCP × every running state
a shipped protocol reaches → the session state, the pump state, the alarm and the audit
events that must follow. Each row runs for real (simulator, Modbus TCP, SQLite audit).

docs/safety/fault-matrix.md is this table in words, with the test ids. ``corrupt-rtu``
acts on RTU frames only (the driver's RTU tests cover it) and KVO is not reachable with
the shipped protocols (all have kvo_rate_ml_h = 0); both are listed there as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from pumpsim.faults import LINK_FAULTS
from pumpsim.harness import Fault

from pumpd.controller import Controller
from pumpd.session import State
from safety.plan import Order, Patient

from .conftest import CHECKER, NURSE, Rig, halt, protocol, running, session_state, wait_until

S = State


@pytest.fixture
def scale() -> float:
    # Slow enough that priming (15 mL at 300 mL/h: 3 s real) and a pause (15 min: 15 s
    # real) outlast every reaction, fast enough that a row takes about a second.
    return 60.0


async def _programmed(rig: Rig, ctl: Controller) -> None:
    await ctl.program(
        by=NURSE,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.vitals(by=NURSE, reading=rig.vitals())


async def to_priming(rig: Rig, ctl: Controller) -> None:
    await _programmed(rig, ctl)
    await ctl.prime(by=NURSE, line_disconnected=True)
    assert session_state(ctl) is S.PRIMING


async def to_infusing(rig: Rig, ctl: Controller) -> None:
    await _programmed(rig, ctl)
    await ctl.start(by=NURSE, primed_confirmed=True)
    assert session_state(ctl) is S.INFUSING
    await wait_until(lambda: ctl.delivered_ul() > 200, what="some delivery")


async def to_paused(rig: Rig, ctl: Controller) -> None:
    await to_infusing(rig, ctl)
    await ctl.pause(by=NURSE)
    assert session_state(ctl) is S.PAUSED


async def to_observation(rig: Rig, ctl: Controller) -> None:
    await to_infusing(rig, ctl)
    await ctl.stop(by=NURSE, reason="patient asked to stop")
    await ctl.observe(by=NURSE)
    assert session_state(ctl) is S.OBSERVATION


SETUP: dict[str, Callable[[Rig, Controller], Awaitable[None]]] = {
    "priming": to_priming,
    "infusing": to_infusing,
    "paused": to_paused,
    "observation": to_observation,
}
STATES = tuple(SETUP)


@dataclass(frozen=True)
class Expect:
    session: State
    pump: frozenset[str]
    alarm: str | None
    events: tuple[str, ...] = ()


def pump(*states: str) -> frozenset[str]:
    return frozenset(states)


HALTED = ("interlock.triggered", "pump.command.requested", "alarm.raised")
PUMP_ALARMS = {
    "occlusion-downstream": "occlusion_downstream",
    "occlusion-upstream": "occlusion_upstream",
    "air-in-line": "air_in_line",
    "door-open": "door_open",
    "system-fault": "system_fault",
    "battery-depleted": "battery_depleted",
}
UNCHANGED = {
    "priming": Expect(S.PRIMING, pump("PRIMING"), None),
    "infusing": Expect(S.INFUSING, pump("INFUSING"), None),
    "paused": Expect(S.PAUSED, pump("PAUSED"), None),
    "observation": Expect(S.OBSERVATION, pump("IDLE"), None),
}
RUNNING = {"priming": S.PRIMING, "infusing": S.INFUSING}


def expected(fault: str, state: str) -> Expect:
    """The matrix. Every cell is argued in docs/safety/fault-matrix.md."""
    if fault in PUMP_ALARMS:
        code = f"tick.pump.alarm.{PUMP_ALARMS[fault]}"
        return Expect(S.ALARM, pump("IDLE" if state == "observation" else "ALARM"), code, HALTED)
    if fault == "low-battery":
        # Delivery goes on with a notice; a pump that does not deliver latches the alarm.
        session = RUNNING.get(state, S.ALARM)
        return Expect(session, UNCHANGED[state].pump, "tick.pump.battery_low", ("alarm.raised",))
    if fault == "runaway":
        if state == "infusing":
            return Expect(S.ALARM, pump("PAUSED", "IDLE"), "tick.rate.mismatch", HALTED)
        return UNCHANGED[state]
    if fault == "stuck-volume":
        if state == "infusing":
            return Expect(S.ALARM, pump("PAUSED", "IDLE"), "tick.volume.under_infusion", HALTED)
        if state == "priming":
            return Expect(S.ALARM, pump("IDLE"), "controller.prime.too_long", HALTED)
        return UNCHANGED[state]
    if fault == "ignore-commands":
        # The nurse presses stop; the pump takes no command.
        if state == "observation":
            return UNCHANGED[state]
        held = {"priming": pump("PRIMING", "IDLE"), "infusing": pump("INFUSING")}
        return Expect(
            S.ALARM,
            held.get(state, pump("PAUSED")),
            "command.stop.not_applied",
            ("pump.command.uncertain", "alarm.raised"),
        )
    if fault == "drop-link":
        failsafe = pump("ALARM") if state in RUNNING else UNCHANGED[state].pump
        return Expect(S.ALARM, failsafe, "tick.comm.lost", ("pump.unreachable", "alarm.raised"))
    if fault == "latency":
        return UNCHANGED[state]
    if fault == "reboot":
        return Expect(S.ALARM, pump("IDLE"), "tick.pump.rebooted", HALTED)
    raise AssertionError(f"no expectation for {fault}")


# The issue 7 link faults (LINK_FAULTS) have their own controller tests in tests/wire.
FAULTS = [f.value for f in Fault if f is not Fault.CORRUPT_RTU and f not in LINK_FAULTS] + [
    "reboot"
]
ROWS = [(f, st) for f in FAULTS for st in STATES]


def _inject(rig: Rig, fault: str) -> None:
    if fault == "reboot":
        rig.sim.reboot(1)
    elif fault == "runaway":
        rig.sim.inject(1, fault, on=True, factor="1.5")
    elif fault == "latency":
        rig.sim.inject(1, fault, on=True, ms=50)
    else:
        rig.sim.inject(1, fault, on=True)


def _alarm_codes(ctl: Controller) -> set[str]:
    s = ctl.session
    codes = {n.code for n in ctl.notices}
    if s is not None:
        codes |= {a.code for a in s.data.alarms}
    return codes


def _pump_state(rig: Rig) -> str:
    return str(rig.sim.peek(1).snapshot()["state"])


def _matches(rig: Rig, ctl: Controller, want: Expect) -> bool:
    if session_state(ctl) is not want.session or _pump_state(rig) not in want.pump:
        return False
    return want.alarm is None or want.alarm in _alarm_codes(ctl)


@pytest.mark.parametrize(("fault", "state"), ROWS, ids=[f"{f}-{s}" for f, s in ROWS])
async def test_fault_matrix(rig: Rig, fault: str, state: str) -> None:
    want = expected(fault, state)
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await SETUP[state](rig, ctl)
        await ctl.journal.drain()
        first_seq = rig.store.head().seq
        _inject(rig, fault)
        if fault == "ignore-commands" and state != "observation":
            await ctl.stop(by=NURSE, reason="nurse stops the infusion")
        if want.alarm is None:
            await asyncio.sleep(0.5)
        else:
            await wait_until(
                lambda: _matches(rig, ctl, want),
                within_s=12,
                what=str(want),
                seen=lambda: (
                    f"{session_state(ctl)}, pump {_pump_state(rig)}, alarms {_alarm_codes(ctl)}"
                ),
            )
        await asyncio.sleep(0.1)  # it stays so
        assert session_state(ctl) is want.session
        assert _pump_state(rig) in want.pump
        codes = _alarm_codes(ctl)
        if want.alarm is None:
            assert not codes, codes
        else:
            assert want.alarm in codes
    finally:
        await halt(task)
    await ctl.journal.drain()
    new_types = {e.event_type for e in rig.events() if e.seq > first_seq}
    for event_type in want.events:
        assert event_type in new_types, (event_type, sorted(new_types))
    assert rig.chain_ok()

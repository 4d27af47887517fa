"""Wire faults under a real Controller (simulator, Modbus TCP or RTU on a pty, SQLite
audit): a command whose confirmation is lost makes the session UNCERTAIN and a status read
settles it; a link that stays dead ends in ALARM with the pump stopped by its own
failsafe; never silence. START is never sent twice: the simulator's command log says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import controller.conftest as controller_rigs
import pytest
from controller.conftest import (
    CHECKER,
    NURSE,
    Rig,
    halt,
    make_store,
    protocol,
    running,
    session_state,
    wait_until,
)
from pumpsim.harness import Fault, Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import ScaledClock
from pumpd.controller import Controller
from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.session import State
from safety.plan import Order, Patient
from safety.tick import DEFAULT_POLICY

from .conftest import START, commands

SCALE = 600.0
COMMAND_WRITE = 112  # cmd_seq, command: the register a command write starts at


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db_path = tmp_path / "audit.db"
    store = make_store(db_path)
    writer = AsyncAuditWriter(store)
    async with Simulator(pumps=1, tcp=True, rtu=True, time_scale=SCALE) as sim:
        made = _make_rig(sim, store, writer, db_path)
        yield made
        for driver in made.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


def _make_rig(sim: Simulator, store: Any, writer: AsyncAuditWriter, db_path: Path) -> Rig:
    """The controller tests' rig (their shared-clock builder when they have one)."""
    make = getattr(controller_rigs, "make_rig", None)
    if make is not None:
        rig: Rig = make(sim, store, writer, db_path)
        return rig
    return Rig(sim, store, writer, SCALE, db_path, ScaledClock(SCALE))  # type: ignore[call-arg]


async def controller(
    rig: Rig, transport: str, *, driver: dict[str, Any] | None = None, **config: Any
) -> Controller:
    if transport == "tcp":
        assert rig.sim.tcp_address is not None
        host, port = rig.sim.tcp_address
        fields: dict[str, Any] = {"transport": "tcp", "host": host, "port": port}
    else:
        fields = {"transport": "rtu", "device": rig.sim.rtu_path, "baudrate": 115_200}
    fields.update({"unit": 1, "timeout_s": 0.2, **(driver or {})})
    # The intent must be durable before START goes out; on a loaded machine SQLite may
    # take longer than the rig's 0.2 s. This bounds the wait; it is not a speed check.
    config.setdefault("intent_wait_s", 2.0)
    drv = ModbusPumpDriver(ModbusConfig.model_validate(fields))
    await drv.connect()
    rig.drivers.append(drv)
    ctl = Controller(driver=drv, writer=rig.writer, clock=rig.clock, config=rig.config(**config))
    await ctl.attach()
    return ctl


async def to_primed(rig: Rig, ctl: Controller) -> None:
    await ctl.program(
        by=NURSE,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=80),  # type: ignore[arg-type]
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    await wait_until(lambda: session_state(ctl) is State.PRIMED, what="priming to finish")
    await ctl.vitals(by=NURSE, reading=rig.vitals())


def alarm_codes(ctl: Controller) -> set[str]:
    s = ctl.session
    codes = {n.code for n in ctl.notices}
    if s is not None:
        codes |= {a.code for a in s.data.alarms}
    return codes


def start_intents(rig: Rig) -> int:
    return sum(
        1
        for e in rig.events()
        if e.event_type == "pump.command.requested" and json.loads(e.payload)["command"] == "start"
    )


def pump_state(rig: Rig) -> str:
    return str(rig.sim.peek(1).snapshot()["state"])


# ---------------------------------------------------------------- UNCERTAIN, then settled


@pytest.mark.parametrize(
    ("transport", "fault", "params"),
    [
        ("rtu", Fault.CORRUPT_RTU, {"direction": "request"}),
        ("rtu", Fault.TRUNCATE_RTU, {"direction": "request"}),
        ("tcp", Fault.RESET_TCP, {"direction": "request"}),
    ],
    ids=["rtu-corrupt-request", "rtu-truncate-request", "tcp-reset-before-pump"],
)
async def test_start_that_never_reached_the_pump_is_uncertain_then_not_applied(
    rig: Rig, transport: str, fault: Fault, params: dict[str, Any]
) -> None:
    ctl = await controller(rig, transport)
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        rig.sim.inject(1, fault, count=1, address=COMMAND_WRITE, **params)
        await ctl.start(by=NURSE)
        await wait_until(
            lambda: session_state(ctl) is State.ALARM,
            what="the uncertain START to be settled",
            seen=lambda: f"{session_state(ctl)}, alarms {alarm_codes(ctl)}",
        )
        assert "command.start.not_applied" in alarm_codes(ctl)
        assert pump_state(rig) == "IDLE"
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types()
    assert "pump.command.uncertain" in types
    assert types.index("pump.command.uncertain") < len(types) - 1
    assert "session.started" not in types
    assert START not in commands(rig.sim)  # the pump never took it...
    assert start_intents(rig) == 1  # ...and pumpd never sent it again
    assert rig.chain_ok()


async def test_start_taken_but_its_answer_reset_is_uncertain_then_infusing(rig: Rig) -> None:
    # The pump takes START; the connection is reset instead of the reply. Redial backoff
    # (0.5 s) outlasts the command timeout, so the controller cannot see the echo in time:
    # UNCERTAIN. The next good read shows the pump infusing: reconciled to INFUSING.
    # Comm timeout and the pump's heartbeat timeout are widened past the redial so that
    # this test shows the reconciliation, not the comm-loss stop.
    policy = dataclasses.replace(DEFAULT_POLICY, comm_timeout_s=3.0 * SCALE)
    ctl = await controller(
        rig,
        "tcp",
        driver={"reconnect_delay_s": 0.5},
        policy=policy,
        heartbeat_timeout_s=round(3 * SCALE),
        command_timeout_s=0.1,
    )
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        rig.sim.inject(1, Fault.RESET_TCP, count=1, direction="reply", address=COMMAND_WRITE)
        await ctl.start(by=NURSE)
        assert session_state(ctl) is State.UNCERTAIN
        await wait_until(
            lambda: session_state(ctl) is State.INFUSING,
            what="the uncertain START to be reconciled",
            seen=lambda: f"{session_state(ctl)}, alarms {alarm_codes(ctl)}",
        )
        assert not alarm_codes(ctl)
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types()
    assert types.index("pump.command.uncertain") < types.index("session.started")
    assert commands(rig.sim).count(START) == 1
    assert start_intents(rig) == 1
    assert rig.chain_ok()


@pytest.mark.parametrize(
    ("transport", "fault", "params"),
    [
        ("rtu", Fault.CORRUPT_RTU, {"count": 1}),
        ("rtu", Fault.TRUNCATE_RTU, {"count": 1}),
        ("rtu", Fault.LATENCY, {"ms": 400}),
        ("tcp", Fault.LATENCY, {"ms": 400}),
    ],
    ids=["rtu-corrupt-reply", "rtu-truncate-reply", "rtu-late-reply", "tcp-late-reply"],
)
async def test_start_whose_reply_is_lost_is_confirmed_by_the_echo(
    rig: Rig, transport: str, fault: Fault, params: dict[str, Any]
) -> None:
    ctl = await controller(rig, transport, command_timeout_s=1.5)
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        rig.sim.inject(1, fault, address=COMMAND_WRITE, **params)
        await ctl.start(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        rig.sim.inject(1, fault, on=False)
        await wait_until(lambda: ctl.delivered_ul() > 100, what="delivery")
        assert not alarm_codes(ctl)
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert "pump.command.confirmed" in rig.types()
    assert commands(rig.sim).count(START) == 1
    assert start_intents(rig) == 1


# ---------------------------------------------------------------- a link that stays dead


DEAD_LINKS = [
    ("rtu", Fault.CORRUPT_RTU, {"direction": "both"}),
    ("rtu", Fault.TRUNCATE_RTU, {"direction": "both"}),
    ("tcp", Fault.RESET_TCP, {"direction": "request"}),
    ("tcp", Fault.HALF_OPEN_TCP, {}),
    ("tcp", Fault.SILENT_TCP, {}),
]


@pytest.mark.parametrize(
    ("transport", "fault", "params"), DEAD_LINKS, ids=[f"{t}-{f}" for t, f, _ in DEAD_LINKS]
)
async def test_link_that_stays_dead_ends_in_alarm_then_reads_again(
    rig: Rig, transport: str, fault: Fault, params: dict[str, Any]
) -> None:
    ctl = await controller(rig, transport)
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        await ctl.start(by=NURSE)
        await wait_until(lambda: ctl.delivered_ul() > 100, what="some delivery")
        rig.sim.inject(1, fault, **params)
        t0 = time.monotonic()
        await wait_until(
            lambda: session_state(ctl) is State.ALARM and pump_state(rig) != "INFUSING",
            what="comm-loss alarm and the pump stopped by its failsafe",
            seen=lambda: f"{session_state(ctl)}, pump {pump_state(rig)}, {alarm_codes(ctl)}",
        )
        assert "tick.comm.lost" in alarm_codes(ctl)
        assert not ctl.status().reachable
        rig.sim.inject(1, fault, on=False)
        # Recovered without a restart: the same controller and driver read the pump again.
        t1 = time.monotonic()
        await wait_until(lambda: ctl.status().reachable, what="the pump to answer again")
        print(
            f"{fault}: alarm after {t1 - t0:.2f} s, reads again {time.monotonic() - t1:.2f} s later"
        )
        assert ctl.status().pump_state == pump_state(rig)
        assert session_state(ctl) is State.ALARM  # the alarm stays for the nurse
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types()
    assert "pump.unreachable" in types
    assert "alarm.raised" in types
    assert commands(rig.sim).count(START) == 1  # nothing moving was sent into the dead link
    assert rig.chain_ok()


@pytest.mark.parametrize("fault", [Fault.NOISE_RTU, Fault.FOREIGN_FRAME_RTU], ids=str)
async def test_second_master_on_the_line_is_never_silent(rig: Rig, fault: Fault) -> None:
    # Noise before every reply: some reads get through, many do not, and heartbeats are
    # lost with them. Whatever the mix, the end is one of two consistent pictures: the pump
    # infuses under supervision, or the session is in ALARM with a named alarm. Never a
    # pump stopped (or running) behind a session that says otherwise.
    ctl = await controller(rig, "rtu")
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        await ctl.start(by=NURSE)
        await wait_until(lambda: ctl.delivered_ul() > 100, what="some delivery")
        rig.sim.inject(1, fault)
        await asyncio.sleep(1.5)
        rig.sim.inject(1, fault, on=False)

        def consistent() -> bool:
            if session_state(ctl) is State.ALARM:
                return bool(alarm_codes(ctl)) and pump_state(rig) != "INFUSING"
            return session_state(ctl) is State.INFUSING and pump_state(rig) == "INFUSING"

        await wait_until(
            consistent,
            what="session and pump to agree",
            seen=lambda: f"{session_state(ctl)}, pump {pump_state(rig)}, {alarm_codes(ctl)}",
        )
        fired = rig.sim.status(1)["wire"][fault.value.replace("-", "_")]["fired"]  # type: ignore[index]
        print(f"{fault}: {fired} replies hit; ended {session_state(ctl)} {alarm_codes(ctl)}")
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert commands(rig.sim).count(START) == 1
    assert rig.chain_ok()

"""A DULCO flex session stopped over the plan's volume can be finished once the nurse has
acknowledged the exceedance: the real controller, the register-map driver with the
prominent-dulcoflex profile, pumpsim's DULCO pump on a real pseudo-terminal.

The pump has no volume limit of its own, so pumpd's stop at the plan's volume is the one
that ends the infusion; a stop that comes late (a loaded machine, a pump that ran on) leaves
more delivered than the kernel's allowance. The kernel stops and alarms; before the
acknowledgement was kept as a kernel input, the same volume raised the same alarm again at
every reading in the observation, and the session could never be discharged. Now the
acknowledged exceedance reminds while the pump stays stopped, the first alarm with its
figures stays in the audit, and the pump moving again alarms again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from pumpsim.dulco_model import DulcoModel
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.controller import Controller
from pumpd.drivers import ModbusConfig, RegisterMap, RegisterMapDriver, load_any_profile
from pumpd.session import State

from .conftest import (
    NURSE,
    Rig,
    halt,
    make_rig,
    make_store,
    protocol,
    running,
    session_state,
    to_infusing_primed_by_hand,
    wait_until,
)

UNIT = 20
SCALE = 240.0
PUMP_TIMEOUT_S = 3
"""The pump's Modbus timeout (wall seconds): a loaded machine's pauses are not silence."""
PROTOCOL = "ketamine-trd-standard"


@pytest.fixture
async def dulco_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with dulco_rig_with(tmp_path, PUMP_TIMEOUT_S) as made:
        yield made


@contextlib.asynccontextmanager
async def dulco_rig_with(tmp_path: Path, pump_timeout_s: int) -> AsyncIterator[Rig]:
    """A rig with one DULCO pump whose Modbus timeout is ``pump_timeout_s`` (wall)."""
    db_path = tmp_path / "audit.db"
    store = make_store(db_path)
    writer = AsyncAuditWriter(store)
    async with Simulator(
        pumps=1,
        tcp=False,
        dulco=True,
        time_scale=SCALE,
        dulco_baud=115_200,
        dulco_timeout_ms=pump_timeout_s * 1000,
    ) as sim:
        made = make_rig(sim, store, writer, db_path)
        yield made
        for driver in made.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


async def dulco_controller(
    rig: Rig, timeout_s: float = 0.5, pump_timeout_s: int = PUMP_TIMEOUT_S, **overrides: Any
) -> tuple[Controller, RegisterMapDriver]:
    """The controller of the DULCO pump; ``timeout_s`` is the driver's (real seconds),
    ``pump_timeout_s`` the Modbus timeout set at the simulated pump (its
    ``heartbeat_timeout_s``), ``overrides`` the controller's settings beside the rig's."""
    assert rig.sim.dulco_path is not None
    loaded = load_any_profile("prominent-dulcoflex")
    assert isinstance(loaded, RegisterMap)
    config = ModbusConfig(
        transport="rtu",
        device=rig.sim.dulco_path,
        baudrate=115_200,
        unit=UNIT,
        profile="prominent-dulcoflex",
        timeout_s=timeout_s,
    )
    driver = RegisterMapDriver(
        config, loaded, heartbeat_timeout_s=pump_timeout_s, clock_scale=SCALE
    )
    await driver.connect()
    ctl = Controller(
        driver=driver,
        writer=rig.writer,
        clock=rig.clock,
        config=rig.config(**{"heartbeat_timeout_s": int(pump_timeout_s * SCALE), **overrides}),
    )
    await ctl.attach()
    return ctl, driver


def pump(rig: Rig) -> DulcoModel:
    assert rig.sim.dulco is not None
    return rig.sim.dulco.pump(UNIT)


def ran_on(rig: Rig, ul: int) -> None:
    """The pump's counters move by ``ul``: what a pump that ran on delivered."""
    model = pump(rig)
    model.deletable_l += Fraction(ul, 1_000_000)
    model.total_l += Fraction(ul, 1_000_000)


def raised(rig: Rig) -> list[tuple[str, str]]:
    return [
        (p["alarm_code"], p["message"])
        for e in rig.events(session="S-1")
        if e.event_type == "alarm.raised"
        for p in [json.loads(e.payload)]
    ]


async def test_an_acknowledged_overrun_is_quiet_and_the_session_is_finished(
    dulco_rig: Rig,
) -> None:
    rig = dulco_rig
    ctl, _driver = await dulco_controller(rig)
    task = await running(ctl)
    try:
        await to_infusing_primed_by_hand(ctl, rig.clock, PROTOCOL)  # it cannot prime over Modbus
        session = ctl.session
        assert session is not None
        vtbi_ul = session.plan.vtbi_ul
        await wait_until(lambda: ctl.delivered_ul() > 500, what="some delivery")
        # The pump runs on past the plan's volume before pumpd's stop reaches it.
        ran_on(rig, vtbi_ul)
        await wait_until(
            lambda: session_state(ctl) is State.ALARM and not pump(rig).motor_running,
            what="the stop and its alarm",
            seen=lambda: f"{session_state(ctl)}, {ctl.delivered_ul()} µL",
        )
        codes = {a.code for a in session.data.alarms}
        assert "tick.vtbi.exceeded" in codes, codes
        await ctl.acknowledge(by=NURSE, note="patient seen, pump stopped")
        assert session_state(ctl) is State.OBSERVATION
        acked_ul = session.data.vtbi_exceeded_acknowledged_ul
        assert acked_ul is not None
        assert acked_ul > vtbi_ul + 200
        # Many readings later the exceedance has not been raised again: it reminds.
        polls = ctl.polls
        await wait_until(lambda: ctl.polls > polls + 30, what="thirty more readings")
        assert session_state(ctl) is State.OBSERVATION, session.data.alarms
        assert any("over the VTBI" in r for r in ctl.status().reminders), ctl.status()

        # The pump moves again (by more than a counter's noise): stopped and alarmed again.
        ran_on(rig, 50)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the second alarm")
        assert [a.code for a in session.data.alarms] == ["tick.vtbi.exceeded"]
        await ctl.acknowledge(by=NURSE, note="seen again")
        assert session.data.vtbi_exceeded_acknowledged_ul == acked_ul + 50

        # The observation runs its course and the patient is discharged.
        minimum_s = float(protocol(PROTOCOL).protocol.observation_min * 60)
        started = session.data.observation_started_at
        assert started is not None
        await wait_until(
            lambda: rig.clock.monotonic() - started.mono_s > minimum_s + 1,
            within_s=60,
            what="the observation time",
        )
        assert session_state(ctl) is State.OBSERVATION, session.data.alarms
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        checklist = protocol(PROTOCOL).protocol.discharge_checklist
        await ctl.discharge(by=NURSE, checklist_confirmed=list(checklist))
        assert session_state(ctl) is State.DISCHARGED
    finally:
        await halt(task)
    await ctl.journal.drain()
    # The overdose stays on the record: each exceedance's alarm with its figures, once.
    over = [m for c, m in raised(rig) if c == "tick.vtbi.exceeded"]
    assert len(over) == 2, raised(rig)
    assert f"{acked_ul} µL delivered" in over[0], over
    assert f"{acked_ul + 50} µL delivered" in over[1], over
    ended = [
        json.loads(e.payload)["delivered_volume_ul"]
        for e in rig.events(session="S-1")
        if e.event_type in ("infusion.completed", "session.stopped")
    ]
    assert ended, rig.types(session="S-1")
    assert max(ended) > vtbi_ul + 200, ended  # the end says what was delivered
    types = rig.types(session="S-1")
    assert "patient.discharged" in types
    assert types.count("alarm.acknowledged") >= 2
    reminders = [
        json.loads(e.payload)
        for e in rig.events(session="S-1")
        if e.event_type == "reminder.issued"
    ]
    assert any("over the VTBI" in json.dumps(r) for r in reminders), reminders
    assert rig.chain_ok()

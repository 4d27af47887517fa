"""A New Era session in ALARM whose STOP never arrived can still be ended after pumpd restarts.

The pump goes quiet mid-infusion: the kernel latches the lost link and sends its one STOP
into it, which cannot arrive. pumpd dies there, the session in ALARM and its STOP
unconfirmed. The pump's own Safe-mode watchdog stops it meanwhile; the new pumpd's driver
is told that alarm (``A?T``) at its first request and latches it, and only a confirmed
STOP ends that latch (H80). The new pumpd sends the first halt the kernel demands on a
reading, also to a session already in ALARM (``PumpObservation.stop_owed``), so the nurse
can acknowledge the alarm and end the session. Without it every acknowledgement is
refused ("the pump is still in alarm") and the session can never be finished.
Real time, the real New Era simulator on a pseudo-terminal, a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import SystemClock
from pumpd.controller import Controller, ControllerConfig
from pumpd.drivers import NewEraPumpDriver
from pumpd.session import State
from pumpd.supervisor import Supervisor

from .conftest import (
    NURSE,
    halt,
    library,
    make_store,
    newera_driver,
    session_state,
    to_infusing_primed_by_hand,
    wait_until,
)

WATCHDOG_S = 2
PUMP_ID = "chair-4"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=1, newera_link=str(tmp_path / "ne"), time_scale=1.0
    ) as sim:
        yield sim


def _config() -> ControllerConfig:
    return ControllerConfig(
        pump_id=PUMP_ID,
        poll_period_s=0.2,
        heartbeat_timeout_s=WATCHDOG_S,
        command_timeout_s=0.5,
        intent_wait_s=2.0,
    )


async def _driver(sim: Simulator) -> NewEraPumpDriver:
    return await newera_driver(sim, heartbeat_timeout_s=WATCHDOG_S)


async def _infusing(ctl: Controller, clock: SystemClock) -> None:
    await to_infusing_primed_by_hand(ctl, clock)


async def test_a_session_in_alarm_whose_stop_was_lost_is_ended_after_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.newera is not None
    store = make_store(tmp_path / "audit.db")
    writer = AsyncAuditWriter(store)
    clock = SystemClock()
    first_driver = await _driver(sim)
    first = Controller(driver=first_driver, writer=writer, clock=clock, config=_config())
    sup: Supervisor | None = None
    drivers = [first_driver]
    try:
        await first.attach()
        task = asyncio.create_task(first.run())
        await _infusing(first, clock)
        sim.newera.inject(1, "silent")
        await wait_until(lambda: session_state(first) is State.ALARM, what="the comm-loss alarm")
        # The one STOP of the outage went into the dead link: sent, never confirmed.
        await wait_until(
            lambda: first.session is not None and first.session.data.pending_command is None,
            within_s=30,
            what="the STOP's round trip to end",
        )
        assert first.session is not None
        assert first.session.data.stopped_at is None
        # The pump's watchdog stops it while nobody talks to it.
        await wait_until(
            lambda: sim.newera is not None and sim.newera.pumps[1].alarm == "T",
            within_s=3 * WATCHDOG_S + 5,
            what="the pump's watchdog",
        )
        await halt(task)  # pumpd dies with the session in ALARM, its STOP unconfirmed
        await first.journal.drain()
        sim.newera.inject(1, "silent", on=False)

        sup = Supervisor(writer=writer, engine=store.engine, clock=clock, library=library())
        drivers.append(await _driver(sim))
        ctl = await sup.add(drivers[-1], _config())
        assert session_state(ctl) is State.ALARM
        # The new pumpd's STOP ends the driver's latch of the watchdog alarm it was told.
        await wait_until(
            lambda: ctl.last_status is not None and not ctl.last_status.alarms,
            within_s=10,
            what="the pump's alarm to end with a confirmed STOP",
            seen=lambda: repr(ctl.last_status),
        )
        await ctl.acknowledge(by=NURSE, note="link checked; pump stopped")
        assert session_state(ctl) in (State.STOPPED, State.OBSERVATION)
        if session_state(ctl) is State.STOPPED:
            await ctl.end(by=NURSE, reason="infusion interrupted; not continued")
        assert session_state(ctl) is State.OBSERVATION
    finally:
        if sup is not None:
            await sup.close()
        for driver in drivers:
            await driver.close()
        await writer.aclose()
        store.close()

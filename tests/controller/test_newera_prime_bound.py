"""A New Era prime that runs its course is not stopped as "priming did not end".

The controller's own prime bound (twice the planned priming time plus 10 s,
``controller.prime.too_long``) is for a pump whose prime counter stops. It counted from the
nurse's request, and before a New Era pump primes, some twenty exchanges on its serial line
write the program and the prime's rate and volume and read each back. On a slow or busy
line at a simulation's time scale that took most of the bound, so the soak stopped healthy
New Era primes halfway (84 times in a full run at x240). The bound now counts from when the
pump was shown priming.

The real New Era simulator on a pseudo-terminal at 1200 baud (its replies take their wire
time), the controller and the simulator both on real time scaled x120 (as the soak runs,
not on the stall-free clock of tests/controller/simtime.py, which would not count the
wire's time), the shipped syringe protocol (2 mL at 60 mL/h: 120 s planned, the bound
250 s). The line's programming then takes about 2 s real, 250 s simulated, well over the
130 s the old bound left beside the prime; from the prime's confirmation the bound leaves
about 1 s real for the last reading, so a loaded machine does not trip it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter, EventFilter, iter_events
from pumpd.clock import ScaledClock
from pumpd.controller import Controller, ControllerConfig
from pumpd.drivers import NewEraConfig, NewEraPumpDriver
from pumpd.session import State
from safety.syringe import SyringeCapacity
from safety.tick import DEFAULT_POLICY

from .conftest import (
    CHECKER,
    NURSE,
    halt,
    make_store,
    program,
    running,
    session_state,
    wait_until,
)

SCALE = 120.0
BAUD = 1200
PRIME_UL = 2_000


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1,
        tcp=False,
        newera_pumps=1,
        newera_link=str(tmp_path / "ne"),
        newera_baud=BAUD,
        time_scale=SCALE,
    ) as sim:
        yield sim


async def test_a_new_era_prime_on_a_slow_line_ends_primed_not_too_long(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.newera is not None
    assert sim.newera_path is not None
    clock = ScaledClock(SCALE)
    store = make_store(tmp_path / "audit.db")
    writer = AsyncAuditWriter(store)
    driver = NewEraPumpDriver(
        NewEraConfig(
            device=sim.newera_path,
            address=1,
            baudrate=BAUD,
            syringe_diameter_mm=Decimal("26.59"),
            heartbeat_timeout_s=5,
            timeout_s=1.0,
            confirm_timeout_s=5.0,
            clock_scale=SCALE,
        )
    )
    await driver.connect()
    ctl = Controller(
        driver=driver,
        writer=writer,
        clock=clock,
        config=ControllerConfig(
            pump_id="chair-4",
            poll_period_s=0.1 * SCALE,
            heartbeat_timeout_s=round(5 * SCALE),
            command_timeout_s=5.0,
            intent_wait_s=2.0,
            policy=dataclasses.replace(DEFAULT_POLICY, comm_timeout_s=3 * SCALE),
            syringe=SyringeCapacity("bd-plastic-60ml", 60_000),
        ),
    )
    task = None
    try:
        await ctl.attach()
        task = await running(ctl)
        await program(ctl, "ketamine-trd-syringe")
        await ctl.confirm(by=CHECKER, weight="80 kg")
        asked_s = clock.monotonic()
        await ctl.prime(by=NURSE, line_disconnected=True)
        await wait_until(
            lambda: (
                session_state(ctl)
                not in (State.PRIME_REQUESTED, State.PRIMING, State.STOP_REQUESTED)
            ),
            within_s=20,
            what="the prime to end",
        )
        session = ctl.session
        assert session is not None
        since = session.data.priming_since
        assert since is not None
        # The premise: the line's programming before the prime took more than the 130 s the
        # old bound left beside the prime's own 120 s (planned 120 s, bound 250 s).
        assert since.mono_s - asked_s > 130, since.mono_s - asked_s
        codes = [a.code for a in session.data.alarms]
        assert session.state is State.PRIMED, (session.state, codes)
        assert session.data.volume_primed_ul == PRIME_UL
        # The pump ran the whole prime: nothing stopped it halfway.
        assert sim.newera.pumps[1].infused_ul == PRIME_UL
    finally:
        if task is not None:
            await halt(task)
        await ctl.journal.drain()
        await driver.close()
        await writer.aclose()
    with store.engine.connect() as conn:
        raised = [
            json.loads(e.payload)["alarm_code"]
            for e in iter_events(conn, EventFilter(event_type="alarm.raised"))
        ]
    store.close()
    assert "controller.prime.too_long" not in raised, raised

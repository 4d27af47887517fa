"""Pumps on one shared line poll one after another through the period, not all at once.

Eight real controllers on one Modbus TCP endpoint of the simulator, started in the same
instant, as a daemon starts its pumps. What went on the wire is read where it is seen: the
frames pymodbus sent (`trace_frames`), with the time each was logged. Each pump's reads sit
at one phase of the poll period; with the line's slots those phases are spread over the
period, without them they are bunched where the controllers started, and every pump's read
queues behind the others' each period (docs/driver.md, "Poll slots").
"""

from __future__ import annotations

import asyncio
import cmath
import logging
import math
import time
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.controller import Controller
from pumpd.drivers import ModbusConfig, ModbusPumpDriver

from .conftest import make_rig, make_store, running

PUMPS = 8
SCALE = 60.0
PERIOD_REAL_S = 0.2
READS = (3, 4)


def _phases(caplog: pytest.LogCaptureFixture, since: float) -> dict[int, list[float]]:
    """Each unit's read frames after ``since`` (wall seconds), as phases of the period (radians)."""
    phases: dict[int, list[float]] = {}
    for record in caplog.records:
        if record.name != "pumpd.drivers.line" or record.created < since:
            continue
        args = record.args
        if not isinstance(args, tuple) or len(args) != 3 or args[1] != "tx":
            continue
        frame = bytes.fromhex(str(args[2]))
        unit, fc = frame[6], frame[7]
        if fc in READS:
            turn = (record.created % PERIOD_REAL_S) / PERIOD_REAL_S
            phases.setdefault(unit, []).append(2 * math.pi * turn)
    return phases


def _mean_turn(angles: list[float]) -> float:
    """The circular mean of phases, as a share of the period in [0, 1)."""
    z = sum(cmath.exp(1j * a) for a in angles) / len(angles)
    return (cmath.phase(z) / (2 * math.pi)) % 1.0


async def test_pumps_on_one_line_poll_in_their_own_slots(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    store = make_store(tmp_path / "audit.db")
    writer = AsyncAuditWriter(store)
    tasks: list[asyncio.Task[None]] = []
    drivers: list[ModbusPumpDriver] = []
    try:
        async with Simulator(pumps=PUMPS, tcp=True, time_scale=SCALE) as sim:
            rig = make_rig(sim, store, writer, tmp_path / "audit.db")
            assert sim.tcp_address is not None
            host, port = sim.tcp_address
            controllers = []
            for unit in range(1, PUMPS + 1):
                link = ModbusConfig(
                    transport="tcp", host=host, port=port, unit=unit, trace_frames=True
                )
                driver = ModbusPumpDriver(link)
                await driver.connect()
                drivers.append(driver)
                config = rig.config(pump_id=f"chair-{unit}", poll_period_s=PERIOD_REAL_S * SCALE)
                ctl = Controller(driver=driver, writer=writer, clock=rig.clock, config=config)
                await ctl.attach()
                controllers.append(ctl)
            tasks = [await running(ctl) for ctl in controllers]  # all in one instant
            await asyncio.sleep(1.0)  # every slot taken; polls moved onto them
            since = time.time()
            await asyncio.sleep(3.0)
            phases = _phases(caplog, since)
    finally:
        for task in tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
        for driver in drivers:
            await driver.close()
        await writer.aclose()
        store.close()

    assert sorted(phases) == list(range(1, PUMPS + 1)), f"reads seen of units {sorted(phases)}"
    polls = {unit: len(angles) for unit, angles in phases.items()}
    for unit, n in polls.items():
        # 3 s at 0.2 s: 15 polls; a slot found again may add one early poll, never lose one.
        assert 12 <= n <= 19, f"unit {unit} was read {n} times in 3 s at a 0.2 s period"
    turns = sorted(_mean_turn(angles) for angles in phases.values())
    gaps = [(b - a) % 1.0 for a, b in zip(turns, turns[1:] + turns[:1], strict=True)]
    share = 1.0 / PUMPS
    assert min(gaps) >= share / 3, (
        f"the pumps' reads bunch in the period: phases {[round(t, 3) for t in turns]} "
        f"(closest {min(gaps):.3f} of a period apart; slots would put them {share:.3f} apart)"
    )

"""A halt overtakes queued reads on a real shared line: Modbus TCP, Modbus RTU on a pty,
and a New Era RS-232 line on a pty.

One pump's read holds the line (its replies are made slow, or it does not answer), other
pumps' reads queue behind it, then a STOP is asked for. What went on the wire, in order,
is read where it is seen: the frames pymodbus sent (`trace_frames`) for Modbus, the New
Era simulator's own log of the requests it heard. The same scene with the line's priority
switched off puts the STOP last, so each test shows the difference it claims.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers import priority
from pumpd.drivers.base import Command, CommandResult, PumpState, PumpUnreachable
from pumpd.drivers.modbus import ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver

from .conftest import program, traced_config

QUEUED = 4
SLOW_MS = 1000
STOP_UNIT = QUEUED + 2


@pytest.fixture(params=["tcp", "rtu"])
async def line_sim(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Simulator]]:
    kind = str(request.param)
    async with Simulator(
        pumps=STOP_UNIT, tcp=kind == "tcp", rtu=kind == "rtu", baud=115_200, time_scale=60.0
    ) as sim:
        yield kind, sim


def _wire_order(caplog: pytest.LogCaptureFixture, kind: str) -> list[tuple[int, int]]:
    """(unit, function code) of every frame sent, in the order it went out."""
    sent = []
    for record in caplog.records:
        if record.name != "pumpd.drivers.line" or record.args is None:
            continue
        args = record.args
        assert isinstance(args, tuple)
        if len(args) != 3 or args[1] != "tx":
            continue
        frame = bytes.fromhex(str(args[2]))
        unit, fc = (frame[6], frame[7]) if kind == "tcp" else (frame[0], frame[1])
        sent.append((unit, fc))
    return sent


async def _scene(kind: str, sim: Simulator, caplog: pytest.LogCaptureFixture) -> list[int]:
    """Units whose frames went out after the stop was asked for; the stop's write is -1."""
    drivers = [ModbusPumpDriver(traced_config(kind, sim, unit)) for unit in range(1, STOP_UNIT + 1)]
    for d in drivers:
        await d.connect()
    try:
        stopper = drivers[-1]
        await stopper.write_program(program(rate_ml_h="50.00"))
        assert (await stopper.command(Command.START)).result is CommandResult.OK
        sim.inject(1, Fault.LATENCY, on=True, ms=SLOW_MS)
        holding = asyncio.create_task(drivers[0].read_status())  # on the wire, slow
        await asyncio.sleep(0.1)
        queued = [asyncio.create_task(d.read_status()) for d in drivers[1:-1]]
        await asyncio.sleep(0.1)
        caplog.clear()
        assert not holding.done()  # the first read still holds the line
        stop = asyncio.create_task(stopper.command(Command.STOP))
        outcome = await stop
        await asyncio.gather(holding, *queued)
        assert outcome.status.state is PumpState.IDLE
        order = []
        for unit, fc in _wire_order(caplog, kind):
            order.append(-1 if (unit, fc) == (STOP_UNIT, 0x10) else unit)
        return order
    finally:
        sim.inject(1, Fault.LATENCY, on=False)
        for d in drivers:
            await d.close()


async def test_a_stop_goes_out_ahead_of_queued_reads(
    line_sim: tuple[str, Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    kind, sim = line_sim
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    order = await _scene(kind, sim, caplog)
    # Nothing was sent while the slow read held the line: the stop's write is first,
    # ahead of all QUEUED reads that were waiting before it was asked for.
    assert order[0] == -1, order
    assert order.count(-1) == 1
    assert sorted(u for u in order if 2 <= u <= QUEUED + 1) == list(range(2, QUEUED + 2))


async def test_without_the_priority_the_stop_waits_behind_every_queued_read(
    line_sim: tuple[str, Simulator],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind, sim = line_sim
    monkeypatch.setattr(priority, "PRIORITIZE_HALTS", False)  # read when the line opens
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    order = await _scene(kind, sim, caplog)
    assert order.index(-1) == QUEUED, order


# ------------------------------------------------------------------ New Era, one RS-232 line


@pytest.fixture
async def nera(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=3, newera_link=str(tmp_path / "ne"), time_scale=60.0
    ) as sim:
        yield sim


def _nera_config(sim: Simulator, address: int) -> NewEraConfig:
    assert sim.newera_path is not None
    return NewEraConfig(
        device=sim.newera_path,
        address=address,
        syringe_diameter_mm=Decimal("26.59"),
        heartbeat_timeout_s=5,
        timeout_s=1.0,
    )


async def _nera_scene(sim: Simulator) -> list[tuple[int, str]]:
    """(address, request) heard by the pumps after the stop was asked for."""
    assert sim.newera is not None
    line = sim.newera
    one, two, three = (NewEraPumpDriver(_nera_config(sim, a)) for a in (1, 2, 3))
    for d in (one, two, three):
        await d.connect()
    try:
        await one.write_program(program(rate_ml_h="12.5", vtbi_ul=5_000, prime_volume_ul=0))
        assert (await one.command(Command.START)).result is CommandResult.OK
        line.inject(3, "silent")
        holding = asyncio.create_task(three.read_status())  # unanswered: holds the line
        await asyncio.sleep(0.1)
        queued = [asyncio.create_task(two.read_status()) for _ in range(QUEUED)]
        await asyncio.sleep(0.1)
        assert not holding.done()
        mark = len(line.request_log)
        outcome = await one.command(Command.STOP)
        assert outcome.status.state is PumpState.IDLE
        await asyncio.gather(*queued)
        with pytest.raises(PumpUnreachable):
            await holding
        return [(r.address, r.text) for r in list(line.request_log)[mark:]]
    finally:
        line.inject(3, "silent", on=False)
        for d in (one, two, three):
            await d.close()


async def test_on_a_new_era_line_stp_goes_out_ahead_of_queued_reads(nera: Simulator) -> None:
    heard = await _nera_scene(nera)
    # The first request after the unanswered one is the STOP's STP (no read before it).
    assert heard[0] == (1, "STP"), heard
    assert [a for a, _ in heard].count(2) >= QUEUED


async def test_on_a_new_era_line_without_the_priority_stp_waits(
    nera: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(priority, "PRIORITIZE_HALTS", False)
    heard = await _nera_scene(nera)
    first_stp = heard.index((1, "STP"))
    assert [a for a, _ in heard[:first_stp]] == [2] * QUEUED, heard

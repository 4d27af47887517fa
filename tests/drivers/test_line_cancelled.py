"""A request whose caller is cancelled keeps the shared line until it is answered.

A controller stopped while its read is on the wire (a chair restarted, a pump taken out of
the configuration) must not let the next pump's request go out beside it: two requests in
flight on one Modbus TCP connection were answered once by a server that read both in one
segment, and the other pump's read then waited out its whole timeout (the line benchmark
saw 0.5 s of every pump on the line unsupervised); on RTU the late reply answers the next
request. What went on the wire, in order, is read from the frames pymodbus sent and got
(`trace_frames`), on a real simulator over TCP and over an RTU pty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers.modbus import ModbusPumpDriver

from .conftest import traced_config

SLOW_MS = 300


@pytest.fixture(params=["tcp", "rtu"])
async def line_sim(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Simulator]]:
    kind = str(request.param)
    async with Simulator(
        pumps=2, tcp=kind == "tcp", rtu=kind == "rtu", baud=115_200, time_scale=60.0
    ) as sim:
        yield kind, sim


def _wire(caplog: pytest.LogCaptureFixture, kind: str) -> list[tuple[str, int]]:
    """("tx" or "rx", unit) of every frame, in the order seen."""
    seen = []
    for record in caplog.records:
        args = record.args
        if record.name != "pumpd.drivers.line" or not isinstance(args, tuple) or len(args) != 3:
            continue
        direction, frame = str(args[1]), bytes.fromhex(str(args[2]))
        if not frame:
            continue
        seen.append((direction, frame[6] if kind == "tcp" else frame[0]))
    return seen


async def test_the_next_request_waits_for_the_cancelled_ones_reply(
    line_sim: tuple[str, Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    kind, sim = line_sim
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    stopped, other = (ModbusPumpDriver(traced_config(kind, sim, unit)) for unit in (1, 2))
    await stopped.connect()
    await other.connect()
    try:
        sim.inject(1, Fault.LATENCY, on=True, ms=SLOW_MS)
        caplog.clear()
        cancelled = asyncio.create_task(stopped.read_status())
        await asyncio.sleep(0.05)  # its request is on the wire, its reply 0.25 s away
        asked = time.monotonic()
        queued = asyncio.create_task(other.read_status())
        await asyncio.sleep(0.01)
        cancelled.cancel()
        status = await queued  # answered: its own reply, not the cancelled one's
        waited_s = time.monotonic() - asked
    finally:
        await stopped.close()
        await other.close()
    assert cancelled.cancelled()
    assert status.volume_infused_ul >= 0
    wire = _wire(caplog, kind)
    # unit 1's read went out, was answered, and only then did unit 2's go out
    assert wire[:2] == [("tx", 1), ("rx", 1)], wire
    assert ("tx", 2) in wire[2:], wire
    # the wait is the cancelled read's reply, not a timeout of unit 2's
    assert SLOW_MS / 1000 - 0.1 < waited_s < 1.5, waited_s

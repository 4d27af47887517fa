"""The keep-alive that heartbeats the pump while a command runs is stopped between
heartbeats, never in one. A request cancelled in flight leaves its reply on the line: on a
shared RS-485 line (no transaction ids) the line then stays quiet for the driver's timeout
for every pump on it (pumpd/drivers/line.py), and on TCP the reply arrives for nobody."""

from __future__ import annotations

import asyncio
import time

from pumpsim.harness import Fault

from .conftest import Rig


async def test_a_heartbeat_in_flight_when_the_command_ends_is_finished_not_cancelled(
    rig: Rig,
) -> None:
    ctl = await rig.controller(timeout_s=1.0)
    driver = rig.drivers[-1]
    rig.sim.inject(1, Fault.LATENCY, ms=300)  # each reply from the pump takes 0.3 s
    before = driver._heartbeat
    async with ctl.commands.keepalive():
        # The first heartbeat goes out one poll period (10 ms here) in; end the "command"
        # while its reply is still on the way.
        await asyncio.sleep(0.1)
        ended_at = time.monotonic()
    waited_s = time.monotonic() - ended_at
    rig.sim.inject(1, Fault.LATENCY, on=False)
    assert driver._heartbeat == (before + 1) & 0xFFFF, "the heartbeat in flight was cancelled"
    assert 0.1 < waited_s < 1.0, waited_s  # it waited for that reply, and only for it

"""Stopping supervision never cuts a command off between its intent and its result.

The daemon stops its poll loops on SIGTERM. A halt the kernel demanded may be in flight
then (sent, and being confirmed or sent again); cancelling the loop there would leave an
intent in the audit log with no result, and the pump perhaps never told to stop. The
supervisor waits (bounded) until each controller is between commands.
"""

from __future__ import annotations

import json
from fractions import Fraction

from pumpsim.harness import Fault

from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.supervisor import Supervisor

from .conftest import Rig, library, to_infusing, wait_until

RESULTS = ("pump.command.confirmed", "pump.command.uncertain", "pump.command.failed")


async def test_a_halt_in_flight_ends_with_its_result_before_supervision_stops(rig: Rig) -> None:
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    driver = ModbusPumpDriver(ModbusConfig(transport="tcp", host=host, port=port, unit=1))
    await driver.connect()
    sup = Supervisor(writer=rig.writer, engine=rig.store.engine, clock=rig.clock, library=library())
    try:
        # Each of the halt's attempts waits a real second for the pump's confirmation.
        ctl = await sup.add(driver, rig.config(command_timeout_s=1.0))
        await to_infusing(rig, ctl)
        # The pump runs away and takes no command: the kernel's halt is sent, not
        # confirmed, and sent again, for about three seconds.
        rig.sim.inject(1, Fault.IGNORE_COMMANDS, True)
        rig.sim.inject(1, Fault.RUNAWAY, True, factor=Fraction(3, 2))

        def halts() -> list[str]:
            return [
                str(e.correlation_id)
                for e in rig.events(event_type="pump.command.requested")
                if json.loads(e.payload)["command"] in ("pause", "stop")
            ]

        await wait_until(lambda: bool(halts()), what="the kernel's halt")
        await sup.close()
        halted = halts()
        results = [e for e in rig.events() if e.event_type in RESULTS]
        for correlation in halted:
            ends = [e.event_type for e in results if e.correlation_id == correlation]
            assert len(ends) == 1, (correlation, ends)
    finally:
        await sup.close()
        await driver.close()

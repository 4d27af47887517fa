"""The wait between two polls, cut short when the pump itself reports an alarm.

A pump that pushes its alarms (`PushesAlarms`: New Era in Safe mode) tells the driver the
moment it stalls; waiting out the rest of the poll period before reading that would add
up to one period to the reaction for nothing, and reading it would add round trips (the
pump answers the next request with the alarm again instead of executing it). So the wait
ends at the push and hands the controller the push itself: its tick takes the packet's
status as the reading, the kernel decides on it, and a halt is the first request the
pump hears after its alarm (docs/controller.md, "Alarms the pump pushes").
"""

from __future__ import annotations

import asyncio

from pumpd.drivers import PumpDriver, PushedAlarm, PushesAlarms


async def until_poll_or_push(driver: PumpDriver, delay_s: float) -> PushedAlarm | None:
    """Wait `delay_s`, or less if the pump pushes an alarm; the push that ended it.

    The push is consumed (the event cleared, the report taken) here, before the tick that
    acts on it, so a push that arrives during that tick wakes the next wait: none is ever
    lost. A report whose status the driver dropped (a reset, or a reading made since the
    packet) still ends the wait: the tick then reads the pump.
    """
    if not isinstance(driver, PushesAlarms):
        await asyncio.sleep(delay_s)
        return None
    pushed = driver.alarm_pushed
    try:
        async with asyncio.timeout(delay_s):
            while True:
                await pushed.wait()
                pushed.clear()
                report = driver.take_pushed_alarm()
                if report is not None:
                    return report
    except TimeoutError:
        return None

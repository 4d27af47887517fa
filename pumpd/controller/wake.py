"""The wait between two polls, cut short when the pump itself reports an alarm.

A pump that pushes its alarms (`PushesAlarms`: New Era in Safe mode) tells the driver the
moment it stalls; waiting out the rest of the poll period before reading that would add
up to one period to the reaction for nothing. So the wait ends at the push, and the
controller polls at once: the alarm is acted on within one round trip of its arrival.
"""

from __future__ import annotations

import asyncio

from pumpd.drivers import PumpDriver, PushesAlarms


async def until_poll_or_push(driver: PumpDriver, delay_s: float) -> bool:
    """Wait `delay_s`, or less if the pump pushes an alarm; whether a push ended it.

    The push is consumed (the event cleared) here, before the poll that reads it, so a
    push that arrives during that poll wakes the next wait: none is ever lost.
    """
    if not isinstance(driver, PushesAlarms):
        await asyncio.sleep(delay_s)
        return False
    pushed = driver.alarm_pushed
    if not pushed.is_set():
        try:
            async with asyncio.timeout(delay_s):
                await pushed.wait()
        except TimeoutError:
            return False
    pushed.clear()
    return True

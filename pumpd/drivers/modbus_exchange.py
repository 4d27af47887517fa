"""One Modbus request on a shared line, its pymodbus failures as the driver contract's errors.

Both Modbus drivers (the GIP-MB1 map and the declarative register maps) send every request
the same way: a line that is down means the request never left (the pump cannot have seen
it), no reply means the pump is unreachable, a reply to another request is discarded. What
a driver does with the reply it gets back (an echo check, the time the pump last heard a
request) stays with that driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from pumpd.drivers.base import ProtocolError, PumpUnreachable
from pumpd.drivers.line import Line, ModbusClient


class NotSent(PumpUnreachable):
    """The link was down before the request left: the pump cannot have seen it."""


class StrayReply(PumpUnreachable):
    """A valid frame arrived, but it answers another request (a late reply on RTU).

    It says nothing about this request, so it is "no valid reply": for a command write the
    driver goes on to poll for the echo, because the request itself did go out.
    """


async def exchange(
    line: Line,
    op: Callable[[ModbusClient], Awaitable[ModbusPDU]],
    *,
    fc: int,
    limit_s: float,
    label: str,
    what: str,
) -> ModbusPDU:
    """Send ``op`` alone on ``line`` and return the reply that answers it (function ``fc``).

    A Modbus exception reply is returned too: it proves the pump heard the request, and
    :func:`refuse_exception_reply` turns it into the contract's error.
    """
    if not await line.ensure_connected():
        # Yield once: a caller that retries at once must not starve pymodbus's redial
        # task (found with a half-open connection: the reconnect never got to run).
        await asyncio.sleep(0)
        raise NotSent(f"{label}: {what}: link down, redialling with backoff")
    try:
        reply = await line.run(op, limit_s)
    except ConnectionException as exc:
        raise NotSent(f"{label}: {what}: link down ({exc})") from None
    except ModbusIOException as exc:
        raise PumpUnreachable(f"{label}: {what}: no valid reply ({exc})") from None
    except TimeoutError:
        raise PumpUnreachable(f"{label}: {what}: no reply within {limit_s} s") from None
    except ModbusException as exc:
        raise ProtocolError(f"{label}: {what}: {exc}") from None
    # pymodbus matches an RTU reply by unit id only (RTU has no transaction id), so a late
    # reply to an earlier request can be handed over as this one's: check it is ours.
    reply_fc = int(reply.function_code) & 0x7F
    if reply_fc != fc:
        raise StrayReply(
            f"{label}: {what}: got a reply to another request "
            f"(function 0x{reply_fc:02x}, sent 0x{fc:02x}); discarded"
        )
    return reply


def refuse_exception_reply(reply: ModbusPDU, *, label: str, what: str) -> None:
    """Raise the pump's Modbus exception reply as a :class:`ProtocolError` with its code."""
    if reply.isError():
        code = int(getattr(reply, "exception_code", 0))
        raise ProtocolError(f"{label}: {what}: Modbus exception 0x{code:02x}", exception_code=code)

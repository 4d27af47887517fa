"""One shared Modbus link per serial line or TCP endpoint, with its lock and pacing.

RS-485 is half-duplex and RTU frames carry no transaction id: two requests in flight on
one line would have their replies confused. So every unit id on a line goes through one
client and one `LineLock`, requests keep an inter-frame gap, and after a timeout the
line stays quiet long enough for a late reply to drain before anything else is sent.
A halting command (STOP, PAUSE) goes out next, ahead of queued reads (`priority.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerType

from pumpd.drivers.base import DriverError
from pumpd.drivers.priority import LineLock
from pumpd.drivers.slots import PollSlots

T = TypeVar("T")
log = logging.getLogger("pumpd.drivers.line")

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient


class LineConflict(DriverError):
    """Two drivers on one line asked for different line settings (baud rate, …)."""


@dataclass(frozen=True, slots=True)
class LineSettings:
    """What identifies a line and how it is driven; equal for every unit sharing it."""

    transport: Literal["tcp", "rtu"]
    address: str
    """host for TCP, the resolved device path for RTU"""
    port: int
    baudrate: int
    parity: Literal["N", "E", "O"]
    stopbits: Literal[1, 2]
    bytesize: Literal[7, 8]
    timeout_s: float
    gap_s: float
    quiet_after_timeout_s: float
    reconnect_delay_s: float
    reconnect_delay_max_s: float
    trace_frames: bool

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.transport, self.address, self.port)


class Line:
    """A Modbus client plus the lock every request on it holds."""

    def __init__(self, settings: LineSettings) -> None:
        self.settings = settings
        self.lock = LineLock()
        self.loop = asyncio.get_running_loop()
        self.users = 0
        self.slots = PollSlots(self.loop.time())
        self._ready_at = 0.0
        self._next_dial = 0.0
        self._dial_delay_s = settings.reconnect_delay_s
        self.client: ModbusClient = _make_client(settings)

    async def ensure_connected(self, *, force: bool = False) -> bool:
        """Dial the link if it is down, at most once per backoff step; whether it is up.

        pymodbus redials by itself only after a connection it had is lost; a link that
        never came up (pump powered later, cable plugged in late) is redialled here.
        """
        if self.client.connected:
            return True
        if getattr(self.client.ctx, "reconnect_task", None) is not None:
            return False  # pymodbus is already redialling with its own backoff
        if not force and time.monotonic() < self._next_dial:
            return False
        async with self.lock:
            if self.client.connected:
                return True
            up = bool(await self.client.connect())
        if up:
            self._dial_delay_s = self.settings.reconnect_delay_s
        else:
            self._next_dial = time.monotonic() + self._dial_delay_s
            self._dial_delay_s = min(2 * self._dial_delay_s, self.settings.reconnect_delay_max_s)
        return up

    async def run(self, op: Callable[[ModbusClient], Awaitable[T]], limit_s: float) -> T:
        """Run one request alone on the line, honouring the gap and any quiet period.

        `limit_s` bounds the request itself (pymodbus already times it out; this catches a
        wedged transport). Waiting for the lock is not bounded here: every holder is, so
        the wait is bounded by the queue of requests ahead, which is the line's honest
        capacity, not a sign that this pump is unreachable.
        """
        await self.lock.acquire()
        try:
            wait_s = self._ready_at - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            request = asyncio.ensure_future(self._timed(op, limit_s))
        except BaseException:
            self.lock.release()
            raise
        # The request hands the line on when it ends, not when its caller does: a caller
        # cancelled (its controller stopped) with its request on the wire leaves the
        # request holding the line until it is answered or times out, so the next one is
        # never sent beside it. Sent beside it, it was a second request in flight on one
        # connection: a Modbus TCP server that reads both in one segment answered only
        # the first, and the other pump's read waited out its whole timeout (0.5 s of
        # every pump on the line unsupervised). Added before the shield's own callback,
        # this runs first: the line is handed on before the caller resumes.
        request.add_done_callback(self._settle)
        result = await asyncio.shield(request)
        # Let the next request on the line go out before this caller works on its reply
        # (decoding, the kernel's tick): the line then carries one pump's request while
        # another pump's reading is judged, instead of idling through every tick.
        await asyncio.sleep(0)
        return result

    async def _timed(self, op: Callable[[ModbusClient], Awaitable[T]], limit_s: float) -> T:
        async with asyncio.timeout(limit_s):
            return await op(self.client)

    def _settle(self, request: asyncio.Future[Any]) -> None:
        """The request is over: pace the next one and hand the line on."""
        now = time.monotonic()
        if not request.cancelled() and request.exception() is None:
            self._ready_at = now + self.settings.gap_s
        else:
            # A cancelled or failed request may still be answered late.
            self._ready_at = max(self._ready_at, now + self.settings.quiet_after_timeout_s)
        self.lock.release()


_LINES: dict[tuple[str, str, int], Line] = {}


def resolve_address(transport: Literal["tcp", "rtu"], address: str) -> str:
    """Serial lines are keyed by their real device, so two symlinks share one lock."""
    return os.path.realpath(address) if transport == "rtu" else address


def acquire_line(settings: LineSettings) -> Line:
    """The line for these settings, created on first use; refused if settings disagree."""
    line = _LINES.get(settings.key)
    if line is not None and (line.loop is not asyncio.get_running_loop() or line.loop.is_closed()):
        # Left over from an event loop that has ended; its client is unusable here.
        del _LINES[settings.key]
        line = None
    if line is None:
        line = Line(settings)
        _LINES[settings.key] = line
    elif line.settings != settings:
        raise LineConflict(
            f"{settings.transport} line {settings.address}:{settings.port} is already open "
            f"with different settings ({line.settings} vs {settings})"
        )
    line.users += 1
    return line


def release_line(line: Line) -> None:
    """Drop one user; the last one closes the client."""
    line.users -= 1
    if line.users <= 0:
        if _LINES.get(line.settings.key) is line:
            del _LINES[line.settings.key]
        line.client.close()


def _trace_packet(label: str) -> Callable[[bool, bytes], bytes]:
    def trace(sending: bool, data: bytes) -> bytes:
        log.debug("%s %s %s", label, "tx" if sending else "rx", data.hex(" "))
        return data

    return trace


def _trace_connect(label: str) -> Callable[[bool], None]:
    def trace(connected: bool) -> None:
        log.info("%s %s", label, "connected" if connected else "disconnected")

    return trace


def _make_client(s: LineSettings) -> ModbusClient:
    # retries=0: a lost reply must never make pymodbus resend a write on its own.
    label = f"{s.transport}:{s.address}:{s.port}" if s.transport == "tcp" else s.address
    trace_packet = _trace_packet(label) if s.trace_frames else None
    if s.transport == "tcp":
        return AsyncModbusTcpClient(
            s.address,
            port=s.port,
            timeout=s.timeout_s,
            retries=0,
            reconnect_delay=s.reconnect_delay_s,
            reconnect_delay_max=s.reconnect_delay_max_s,
            trace_packet=trace_packet,
            trace_connect=_trace_connect(label),
        )
    return AsyncModbusSerialClient(
        s.address,
        framer=FramerType.RTU,
        baudrate=s.baudrate,
        bytesize=s.bytesize,
        parity=s.parity,
        stopbits=s.stopbits,
        timeout=s.timeout_s,
        retries=0,
        reconnect_delay=s.reconnect_delay_s,
        reconnect_delay_max=s.reconnect_delay_max_s,
        trace_packet=trace_packet,
        trace_connect=_trace_connect(label),
    )

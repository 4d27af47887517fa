"""One RS-232 line shared by New Era pumps at addresses 0–99, one request at a time.

The pumps are daisy-chained: every pump hears every request and only the addressed one
answers, so, as on an RTU line, a second request in flight would have its reply confused
with the first's. Every driver on a device goes through one `NewEraLine` and its lock; a
halting request (STP) goes out next, ahead of queued reads (`priority.py`).

In Safe mode a pump also sends alarm packets nobody asked for. The line reads all the
time, not only while a request waits, and hands such a packet to the driver of that
address at once (`subscribe`), so an alarm is known within one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import serial

from pumpd.drivers.base import DriverError, PumpUnreachable
from pumpd.drivers.newera_codec import (
    Alarm,
    BadFrame,
    BasicReader,
    CodecError,
    Frame,
    Reply,
    SafeReader,
    encode_basic_request,
    encode_safe,
    parse_reply,
)
from pumpd.drivers.priority import LineLock
from pumpd.drivers.slots import PollSlots

log = logging.getLogger("pumpd.drivers.newera")

BAUD_RATES = (300, 1200, 2400, 9600, 19200)
"""The rates the NE-1000 family offers (300–19200)."""
INTER_BYTE_TIMEOUT_S = 0.5
"""The manual: a gap of 0.5 s between bytes discards the packet."""

AlarmSink = Callable[[Alarm], None]


class LineConflict(DriverError):
    """Two drivers on one device asked for different line settings."""


class NotSent(PumpUnreachable):
    """The line could not be opened or written: the pump cannot have seen the request."""


class Withdrawn(Exception):
    """The caller withdrew the request while it waited for the line: nothing was sent."""


class BadReply(PumpUnreachable):
    """Bytes came back that failed the frame's checks (CRC, ETX, length) or made no sense."""


@dataclass(frozen=True, slots=True)
class NewEraLineSettings:
    device: str
    """The device as configured; reopened by this path (a symlink may move)."""
    baudrate: int
    mode: Literal["safe", "basic"]
    timeout_s: float
    gap_s: float
    quiet_after_timeout_s: float
    reconnect_delay_s: float


class NewEraLine:
    def __init__(self, settings: NewEraLineSettings) -> None:
        self.settings = settings
        self.lock = LineLock()
        self.loop = asyncio.get_running_loop()
        self.users = 0
        self.slots = PollSlots(self.loop.time())
        self.key = settings.device
        self._serial: serial.Serial | None = None
        self._reader: SafeReader | BasicReader = (
            SafeReader() if settings.mode == "safe" else BasicReader()
        )
        self._last_byte_at = 0.0
        self._waiting: tuple[int, asyncio.Future[Reply]] | None = None
        self._sinks: dict[int, AlarmSink] = {}
        self._ready_at = 0.0
        self._next_open = 0.0
        self.stray_replies = 0
        self.bad_frames = 0

    # ---------------------------------------------------------------- open / close

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def ensure_open(self, *, force: bool = False) -> None:
        """Open the device if it is closed, at most once per reconnect delay."""
        if self._serial is not None:
            return
        now = time.monotonic()
        if not force and now < self._next_open:
            raise NotSent(f"{self.settings.device}: closed, reopening after a pause")
        self._next_open = now + self.settings.reconnect_delay_s
        try:
            port = serial.Serial(
                self.settings.device,
                baudrate=self.settings.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=0,
                write_timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise NotSent(f"cannot open {self.settings.device}: {exc}") from None
        self._serial = port
        self._reader.reset()
        self.loop.add_reader(port.fileno(), self._on_readable)
        log.info(
            "%s opened at %d baud (%s mode)",
            self.settings.device,
            port.baudrate,
            self.settings.mode,
        )

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        with contextlib.suppress(Exception):
            self.loop.remove_reader(port.fileno())
        with contextlib.suppress(Exception):
            port.close()
        if self._waiting is not None and not self._waiting[1].done():
            self._waiting[1].set_exception(PumpUnreachable(f"{self.settings.device} closed"))

    def subscribe(self, address: int, sink: AlarmSink) -> None:
        self._sinks[address] = sink

    def unsubscribe(self, address: int) -> None:
        self._sinks.pop(address, None)

    # ---------------------------------------------------------------- receiving

    def _on_readable(self) -> None:
        port = self._serial
        if port is None:
            return
        try:
            chunk = os.read(port.fileno(), 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("%s read failed: %s", self.settings.device, exc)
            self.close()
            return
        if not chunk:
            return
        now = time.monotonic()
        if self._reader.pending and now - self._last_byte_at > INTER_BYTE_TIMEOUT_S:
            self._reader.reset()
        self._last_byte_at = now
        for item in self._reader.feed(chunk):
            self._deliver(item)

    def _deliver(self, item: Frame | BadFrame) -> None:
        waiting = self._waiting
        if isinstance(item, BadFrame):
            self.bad_frames += 1
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(
                    BadReply(f"address {waiting[0]}: reply failed its check: {item.reason}")
                )
            return
        try:
            reply = parse_reply(item.data)
        except CodecError as exc:
            self.bad_frames += 1
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(BadReply(f"address {waiting[0]}: {exc}"))
            return
        if reply.alarm is not None:
            # Every alarm packet reaches its driver at once, reply or not.
            sink = self._sinks.get(reply.address)
            if sink is not None:
                sink(reply.alarm)
        if waiting is not None and waiting[0] == reply.address and not waiting[1].done():
            waiting[1].set_result(reply)
            return
        if reply.alarm is not None:
            return
        self.stray_replies += 1
        log.debug("%s: stray reply %r discarded", self.settings.device, item.data)

    # ---------------------------------------------------------------- requests

    async def request(
        self, address: int, text: str, *, unless: Callable[[], bool] | None = None
    ) -> Reply:
        """Send one request and wait for the addressed pump's reply, alone on the line.

        `unless` is asked once the line is this request's: if it is true by then (what
        the request would ask is known already), nothing is sent and `Withdrawn` raised.

        An unsolicited alarm packet from the same address while the request waits is
        taken as its reply: it is the pump's answer about its state either way, and the
        driver treats an alarm reply as "ask again" (after the quiet period that follows
        every alarm reply).
        """
        async with self.lock:
            wait_s = self._ready_at - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if unless is not None and unless():
                raise Withdrawn(f"address {address}: {text!r} withdrawn before it was sent")
            self.ensure_open()
            port = self._serial
            assert port is not None
            data = text.encode("ascii")
            packet = (
                encode_safe(data) if self.settings.mode == "safe" else encode_basic_request(text)
            )
            future: asyncio.Future[Reply] = self.loop.create_future()
            self._waiting = (address, future)
            clean = False
            try:
                try:
                    written = os.write(port.fileno(), packet)
                except OSError as exc:
                    self.close()
                    raise NotSent(f"{self.settings.device}: write failed: {exc}") from None
                if written != len(packet):
                    # A partial packet is discarded by the pump after 0.5 s of silence.
                    raise NotSent(f"{self.settings.device}: only {written} of {len(packet)} bytes")
                try:
                    async with asyncio.timeout(self.settings.timeout_s):
                        reply = await future
                except TimeoutError:
                    raise PumpUnreachable(
                        f"address {address}: no reply to {text!r} "
                        f"within {self.settings.timeout_s} s"
                    ) from None
                # An alarm reply may be a pushed packet that crossed the request, with the
                # pump's own (alarm) reply still on its way: keep the line quiet as after a
                # timeout, so that reply is routed as an alarm, not taken for the next one.
                clean = reply.alarm is None
                return reply
            finally:
                self._waiting = None
                now = time.monotonic()
                if clean:
                    self._ready_at = now + self.settings.gap_s
                else:
                    self._ready_at = max(self._ready_at, now + self.settings.quiet_after_timeout_s)


_LINES: dict[str, NewEraLine] = {}


def acquire_line(settings: NewEraLineSettings) -> NewEraLine:
    """The line of this device, created on first use; two symlinks to one device share it."""
    key = os.path.realpath(settings.device)
    line = _LINES.get(key)
    if line is not None and (line.loop is not asyncio.get_running_loop() or line.loop.is_closed()):
        del _LINES[key]
        line = None
    if line is None:
        line = NewEraLine(settings)
        line.key = key
        _LINES[key] = line
    elif line.settings != settings:
        raise LineConflict(
            f"{settings.device} is already open with different settings "
            f"({line.settings} vs {settings})"
        )
    line.users += 1
    return line


def release_line(line: NewEraLine) -> None:
    line.users -= 1
    if line.users <= 0:
        if _LINES.get(line.key) is line:
            del _LINES[line.key]
        line.close()

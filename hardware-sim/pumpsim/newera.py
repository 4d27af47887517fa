"""New Era NE-1000 family syringe pumps on one simulated RS-232 line (a pseudo-terminal).

Written from the NE-1000 manual (Pub. #1200-01, §10), independently of pumpd's driver, so
the two cross-check. `NeraPump` (pumpsim/newera_pump.py) is the pump, pure: every call
takes the time it happens at. `NewEraLine` is the wire: one pty, several addresses, Safe
and Basic framing, and the wire faults.

Modelled behaviour (where the manual is silent, the choice is stated):
- STP pauses a running pump (P); STP on a paused pump stops it (S); on a stopped one ?NA.
- RUN from S starts the volume count of the run from 0; from P it continues.
- VOL > 0 stops the run when the run's volume reaches it; DIS counts until CLD.
- Numbers keep at most 4 significant digits and 3 decimals: more is truncated, silently,
  as the manual says the pump does (the driver must refuse such values itself).
- An alarm is answered, instead of the request, to the next valid packet, which is then
  not executed; that answer acknowledges it. In Safe mode the alarm is also pushed at once
  as a packet nobody asked for, which does not acknowledge it.
- Power loss: counters 0, stopped, alarm R; the SAF setting survives (non-volatile).
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import enum
import os
import random
import re
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pumpsim.errors import FaultParameterError, SimConfigError, UnknownFaultError, UnknownUnitError
from pumpsim.newera_pump import NeraPump

STX, ETX, CR = 0x02, 0x03, 0x0D
INTER_BYTE_TIMEOUT_S = 0.5
TICK_S = 0.05
MAX_ADDRESS = 99
BAUD_RATES = (300, 1200, 2400, 9600, 19200)


class NeraFault(enum.StrEnum):
    STALL = "stall"
    WATCHDOG_EXPIRE = "watchdog-expire"
    POWER_LOSS = "power-loss"
    GARBLE = "garble"
    SILENT = "silent"
    BAD_CRC = "bad-crc"
    LOSE_COMMANDS = "lose-commands"


ACTION_COMMANDS = frozenset({"RUN", "STP", "PUR", "CLD"})
"""The requests ``lose-commands`` loses: those that move the plunger or clear a counter."""


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)


def safe_packet(text: str) -> bytes:
    data = text.encode("ascii")
    return bytes([STX, len(data) + 4]) + data + crc16(data).to_bytes(2, "big") + bytes([ETX])


def basic_reply(text: str) -> bytes:
    return bytes([STX]) + text.encode("ascii") + bytes([ETX])


# ------------------------------------------------------------------ the line


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the line heard it: when (monotonic), to which address, what."""

    t_monotonic: float
    address: int
    text: str

    def as_json(self) -> dict[str, object]:
        return {"t_monotonic": self.t_monotonic, "address": self.address, "text": self.text}


class NewEraLine:
    """One pty carrying several pumps; what a client opens is `path`."""

    def __init__(
        self,
        pumps: int,
        *,
        clock_now_s: Callable[[], Fraction],
        baud: int = 19200,
        link_path: str | None = None,
        first_address: int = 1,
        wire_timing: bool = True,
    ) -> None:
        if baud not in BAUD_RATES:
            raise SimConfigError(f"New Era baud must be one of {BAUD_RATES}, got {baud}")
        if not pumps >= 1 or first_address < 0 or first_address + pumps - 1 > MAX_ADDRESS:
            raise SimConfigError(
                f"New Era pumps {first_address}..{first_address + pumps - 1} must lie in 0..99"
            )
        self._now_s = clock_now_s
        self.pumps: dict[int, NeraPump] = {
            a: NeraPump(a) for a in range(first_address, first_address + pumps)
        }
        self._char_s = 10 / baud if wire_timing else 0.0
        self._link = Path(link_path) if link_path else None
        self._master = self._slave = -1
        self._buf = bytearray()
        self._last_byte_at = 0.0
        self._tick: asyncio.Task[None] | None = None
        self._send_queue: asyncio.Queue[bytes] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.path = ""
        self.noise_bytes = 0
        self.requests_seen = 0
        self.request_log: collections.deque[RequestRecord] = collections.deque(maxlen=10_000)
        """Every intact request heard on the line, in wire order (the last 10,000)."""
        self.push_log: collections.deque[RequestRecord] = collections.deque(maxlen=10_000)
        """Every alarm packet a pump sent unasked (``A?x`` as text), when it was queued."""

    def pump(self, address: int) -> NeraPump:
        try:
            pump = self.pumps[address]
        except KeyError:
            raise UnknownUnitError(f"no New Era pump at address {address}") from None
        self._sync(pump)
        return pump

    def _sync(self, pump: NeraPump) -> None:
        pump.advance(self._now_s())

    # -------------------------------------------------------------- lifetime

    async def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        client = os.ttyname(slave)
        if self._link is not None:
            if self._link.is_symlink():
                self._link.unlink()
            elif self._link.exists():
                await self.stop()
                raise FileExistsError(f"{self._link} exists and is not a symlink")
            self._link.symlink_to(client)
        self.path = str(self._link) if self._link is not None else client
        wall = time.monotonic()
        for pump in self.pumps.values():
            pump.last_packet_wall_s = wall
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._on_bytes)
        self._send_queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_forever())
        self._tick = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        for task in (self._tick, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tick = self._sender = None
        if self._master >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
        if self._link is not None and self._link.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    async def _tick_forever(self) -> None:
        while True:
            wall = time.monotonic()
            for pump in self.pumps.values():
                self._sync(pump)
                pump.check_watchdog(wall)
                self._push(pump)
            await asyncio.sleep(TICK_S)

    def _push(self, pump: NeraPump) -> None:
        while pump.pushed:
            alarm = pump.pushed.pop(0)
            if pump.safe and not pump.silent:
                self._send(pump, f"{pump.address:02d}A?{alarm}", safe=True)
                self.push_log.append(RequestRecord(time.monotonic(), pump.address, f"A?{alarm}"))

    # -------------------------------------------------------------- bytes

    async def _send_forever(self) -> None:
        assert self._send_queue is not None
        while True:
            packet = await self._send_queue.get()
            if self._char_s:
                await asyncio.sleep(len(packet) * self._char_s)
            data = packet
            while data:
                try:
                    written = os.write(self._master, data)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                except OSError:
                    break
                data = data[written:]

    def _send(self, pump: NeraPump, text: str, *, safe: bool) -> None:
        packet = safe_packet(text) if safe else basic_reply(text)
        if pump.garble_left > 0:
            pump.garble_left -= 1
            body = bytearray(packet)
            for i in random.sample(range(2, len(body) - 3), k=min(2, len(body) - 5)):
                body[i] ^= 0x5A
            packet = bytes(body)
        elif pump.bad_crc_left > 0 and safe:
            pump.bad_crc_left -= 1
            body = bytearray(packet)
            body[-3] ^= 0xFF
            packet = bytes(body)
        assert self._send_queue is not None
        self._send_queue.put_nowait(packet)

    def _on_bytes(self) -> None:
        try:
            chunk = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        now = time.monotonic()
        if self._buf and now - self._last_byte_at > INTER_BYTE_TIMEOUT_S:
            self.noise_bytes += len(self._buf)
            self._buf.clear()
        self._last_byte_at = now
        self._buf.extend(chunk)
        self._split()

    def _split(self) -> None:
        buf = self._buf
        while buf:
            if buf[0] == STX:
                if len(buf) < 2:
                    return
                total = buf[1] + 1
                if buf[1] < 5:
                    self.noise_bytes += 1
                    del buf[:1]
                    continue
                if len(buf) < total:
                    return
                raw = bytes(buf[:total])
                del buf[:total]
                data = raw[2:-3]
                ok = raw[-1] == ETX and int.from_bytes(raw[-3:-1], "big") == crc16(data)
                self._request(data, safe=True, intact=ok)
                continue
            end = buf.find(CR)
            if end < 0:
                return
            line = bytes(buf[:end])
            del buf[: end + 1]
            self._request(line, safe=False, intact=True)

    def _request(self, data: bytes, *, safe: bool, intact: bool) -> None:
        self.requests_seen += 1
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            self.noise_bytes += len(data)
            return
        match = re.match(r"\s*(\d{0,2})(.*)", text, re.DOTALL)
        assert match is not None
        address = int(match[1]) if match[1] else 0
        if intact:
            self.request_log.append(RequestRecord(time.monotonic(), address, match[2].strip()))
        pump = self.pumps.get(address)
        if pump is None or pump.silent:
            return
        if pump.loses_commands and match[2].replace(" ", "").upper()[:3] in ACTION_COMMANDS:
            return  # lost on the way: never heard, never answered
        if pump.safe and not safe:
            return  # a pump in Safe mode ignores unframed commands
        self._sync(pump)
        if not intact:
            self._send(pump, f"{pump.address:02d}{pump.state}?COM", safe=pump.safe)
            return
        reply = pump.handle(match[2], pump.sim_s, time.monotonic())
        pump.pushed.clear()  # answered now; the push would only repeat it
        self._send(pump, reply, safe=pump.safe)

    # -------------------------------------------------------------- faults

    def inject(self, address: int, fault: str, on: bool = True, count: int | None = None) -> None:
        try:
            which = NeraFault(fault)
        except ValueError:
            names = ", ".join(f.value for f in NeraFault)
            raise UnknownFaultError(f"unknown New Era fault {fault!r}; known: {names}") from None
        pump = self.pump(address)
        if which in (NeraFault.GARBLE, NeraFault.BAD_CRC):
            n = (1 if count is None else count) if on else 0
            if n < 0 or n > 1_000_000:
                raise FaultParameterError(f"count must be 0..1000000, got {n}")
            if which is NeraFault.GARBLE:
                pump.garble_left = n
            else:
                pump.bad_crc_left = n
            return
        if count is not None:
            raise FaultParameterError(f"{which} takes no count")
        if which is NeraFault.STALL:
            pump.stalled = on
        elif which is NeraFault.SILENT:
            pump.silent = on
        elif which is NeraFault.LOSE_COMMANDS:
            pump.loses_commands = on
        elif which is NeraFault.WATCHDOG_EXPIRE and on:
            pump.expire_watchdog()
        elif which is NeraFault.POWER_LOSS and on:
            pump.power_loss(time.monotonic())
        self._push(pump)

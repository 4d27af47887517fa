"""New Era NE-1000 family syringe pumps on one simulated RS-232 line (a pseudo-terminal).

Written from the NE-1000 manual (Pub. #1200-01, §10), independently of pumpd's driver, so
the two cross-check. `NeraPump` is pure: every call takes the time it happens at —
simulated seconds (scaled) for delivery, wall seconds for the Safe-mode watchdog, which a
real pump counts in real time whatever the simulation's time scale. `NewEraLine` is the
wire: one pty, several addresses, Safe and Basic framing, and the wire faults.

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
import math
import os
import random
import re
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from pumpsim.errors import FaultParameterError, SimConfigError, UnknownFaultError, UnknownUnitError

STX, ETX, CR = 0x02, 0x03, 0x0D
MAX_SPEED_MM_H = Decimal(3000)
"""Plunger travel at the fastest rate; with a 26.59 mm syringe about 1666 mL/h."""
INTER_BYTE_TIMEOUT_S = 0.5
TICK_S = 0.05
MODEL_NUMBER = 1000
FIRMWARE = "3.928"
MAX_ADDRESS = 99
BAUD_RATES = (300, 1200, 2400, 9600, 19200)

_ML_H_PER = {"MH": Decimal(1), "UH": Decimal("0.001"), "MM": Decimal(60), "UM": Decimal("0.06")}
_UL_PER = {"UL": Decimal(1), "ML": Decimal(1000)}


class NeraFault(enum.StrEnum):
    STALL = "stall"
    WATCHDOG_EXPIRE = "watchdog-expire"
    POWER_LOSS = "power-loss"
    GARBLE = "garble"
    SILENT = "silent"
    BAD_CRC = "bad-crc"


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)


def safe_packet(text: str) -> bytes:
    data = text.encode("ascii")
    return bytes([STX, len(data) + 4]) + data + crc16(data).to_bytes(2, "big") + bytes([ETX])


def basic_reply(text: str) -> bytes:
    return bytes([STX]) + text.encode("ascii") + bytes([ETX])


def truncate4(value: Decimal) -> Decimal:
    """What the pump keeps of a number: 4 significant digits, 3 decimals, cut not rounded."""
    if value == 0:
        return Decimal(0)
    exponent = max(-3, value.adjusted() - 3)
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_DOWN)


def show(value: Decimal) -> str:
    """A held number as the pump prints it: always with a decimal point."""
    text = format(truncate4(value), "f")
    return text if "." in text else text + "."


@dataclass
class NeraPump:
    """One pump's state and physics. Volumes in µL as exact fractions."""

    address: int
    diameter_mm: Decimal = Decimal("26.59")
    rate: Decimal = Decimal(1)
    rate_unit: str = "MH"
    volume: Decimal = Decimal(0)
    volume_unit: str = "ML"
    direction: str = "INF"
    state: str = "S"
    infused_ul: Fraction = Fraction(0)
    withdrawn_ul: Fraction = Fraction(0)
    run_ul: Fraction = Fraction(0)
    alarm: str | None = None
    safe_timeout_s: int = 0
    last_packet_wall_s: float = 0.0
    stalled: bool = False
    silent: bool = False
    garble_left: int = 0
    bad_crc_left: int = 0
    sim_s: Fraction = Fraction(0)
    pushed: list[str] = field(default_factory=list)
    """Alarms raised since the line last pushed them (Safe mode)."""

    @property
    def safe(self) -> bool:
        return self.safe_timeout_s > 0

    def max_rate_ml_h(self) -> Decimal:
        area_mm2 = Decimal(math.pi) * self.diameter_mm * self.diameter_mm / 4
        return area_mm2 / 1000 * MAX_SPEED_MM_H

    def rate_ml_h(self) -> Decimal:
        return self.rate * _ML_H_PER[self.rate_unit]

    def volume_ul(self) -> Decimal:
        return self.volume * _UL_PER[self.volume_unit]

    # -------------------------------------------------------------- physics

    def _raise(self, alarm: str) -> None:
        self.state = "S"
        self.alarm = alarm
        if self.safe:
            self.pushed.append(alarm)

    def advance(self, sim_s: Fraction) -> None:
        """Deliver from the last call to `sim_s` (simulated seconds)."""
        if sim_s < self.sim_s:
            raise ValueError("time went backwards")
        dt = sim_s - self.sim_s
        self.sim_s = sim_s
        if self.state not in ("I", "W", "X"):
            return
        if self.stalled:
            self._raise("S")
            return
        withdrawing = self.state == "W"
        rate = self.max_rate_ml_h() if self.state == "X" else self.rate_ml_h()
        moved = Fraction(rate) * 1000 / 3600 * dt
        limit = self.volume_ul()
        if self.state != "X" and limit > 0 and self.run_ul + moved >= Fraction(limit):
            moved = Fraction(limit) - self.run_ul
            self.state = "S"
        self.run_ul += moved
        if withdrawing:
            self.withdrawn_ul += moved
        else:
            self.infused_ul += moved

    def check_watchdog(self, wall_s: float) -> None:
        """The Safe-mode watchdog, in wall seconds: silence for n s stops the pump."""
        if (
            self.safe
            and self.alarm != "T"
            and wall_s - self.last_packet_wall_s > self.safe_timeout_s
        ):
            self._raise("T")
            self.last_packet_wall_s = wall_s

    def expire_watchdog(self) -> None:
        self._raise("T")

    def power_loss(self, wall_s: float) -> None:
        self.state = "S"
        self.infused_ul = self.withdrawn_ul = self.run_ul = Fraction(0)
        self.last_packet_wall_s = wall_s
        self._raise("R")

    # -------------------------------------------------------------- requests

    def handle(self, text: str, sim_s: Fraction, wall_s: float) -> str:
        """The reply text to one valid request (address already stripped)."""
        self.advance(sim_s)
        self.last_packet_wall_s = wall_s
        if self.alarm is not None:
            alarm, self.alarm = self.alarm, None
            return f"{self.address:02d}A?{alarm}"
        body = text.replace(" ", "").upper()
        command, argument = body[:3], body[3:]
        try:
            data = self._command(command, argument)
        except _Refused as exc:
            return f"{self.address:02d}{self.state}?{exc.code}"
        return f"{self.address:02d}{self.state}{data}"

    def _command(self, command: str, argument: str) -> str:
        if command == "":
            return ""
        handler = getattr(self, f"_cmd_{command.lower()}", None)
        if handler is None or not command.isalpha():
            raise _Refused("")
        result: str = handler(argument)
        return result

    def _cmd_ver(self, argument: str) -> str:
        return f"NE{MODEL_NUMBER}V{FIRMWARE}"

    def _cmd_saf(self, argument: str) -> str:
        if not argument:
            return str(self.safe_timeout_s)
        value = _integer(argument)
        if not 0 <= value <= 255:
            raise _Refused("OOR")
        self.safe_timeout_s = value
        return ""

    def _cmd_dia(self, argument: str) -> str:
        if not argument:
            return show(self.diameter_mm)
        value = truncate4(_number(argument))
        if self.state != "S":
            raise _Refused("NA")
        if not Decimal("0.1") <= value <= Decimal("50"):
            raise _Refused("OOR")
        self.diameter_mm = value
        return ""

    def _cmd_rat(self, argument: str) -> str:
        if not argument:
            return f"{show(self.rate)}{self.rate_unit}"
        match = re.fullmatch(r"(C?)([0-9.]+)(UM|MM|UH|MH)?", argument)
        if match is None:
            raise _Refused("")
        if self.state not in ("S", "P") and not match[1]:
            raise _Refused("NA")  # while running only "RAT C" changes the rate
        value = truncate4(_number(match[2]))
        unit = match[3] or self.rate_unit
        rate_ml_h = value * _ML_H_PER[unit]
        if not 0 < rate_ml_h <= self.max_rate_ml_h() or value >= 10_000:
            raise _Refused("OOR")
        self.rate, self.rate_unit = value, unit
        return ""

    def _cmd_vol(self, argument: str) -> str:
        if not argument:
            return f"{show(self.volume)}{self.volume_unit}"
        if argument in _UL_PER:
            self.volume_unit = argument
            return ""
        value = truncate4(_number(argument))
        if value >= 10_000:
            raise _Refused("OOR")
        self.volume = value
        return ""

    def _cmd_dir(self, argument: str) -> str:
        if not argument:
            return self.direction
        if argument == "REV":
            argument = "WDR" if self.direction == "INF" else "INF"
        if argument not in ("INF", "WDR"):
            raise _Refused("")
        if self.state not in ("S", "P"):
            raise _Refused("NA")
        self.direction = argument
        return ""

    def _cmd_run(self, argument: str) -> str:
        if self.state == "S":
            self.run_ul = Fraction(0)
        elif self.state != "P":
            raise _Refused("NA")
        self.state = "I" if self.direction == "INF" else "W"
        return ""

    def _cmd_pur(self, argument: str) -> str:
        if self.state != "S":
            raise _Refused("NA")
        self.state = "X"
        return ""

    def _cmd_stp(self, argument: str) -> str:
        if self.state in ("I", "W"):
            self.state = "P"
        elif self.state in ("P", "X"):
            self.state = "S"
        else:
            raise _Refused("NA")
        return ""

    def _cmd_dis(self, argument: str) -> str:
        scale = _UL_PER[self.volume_unit]
        infused = Decimal(self.infused_ul.numerator) / Decimal(self.infused_ul.denominator)
        withdrawn = Decimal(self.withdrawn_ul.numerator) / Decimal(self.withdrawn_ul.denominator)
        return f"I{show(infused / scale)}W{show(withdrawn / scale)}{self.volume_unit}"

    def _cmd_cld(self, argument: str) -> str:
        if argument == "INF":
            self.infused_ul = Fraction(0)
        elif argument == "WDR":
            self.withdrawn_ul = Fraction(0)
        else:
            raise _Refused("")
        return ""

    def snapshot(self) -> dict[str, object]:
        return {
            "address": self.address,
            "state": self.state,
            "alarm": self.alarm,
            "diameter_mm": str(self.diameter_mm),
            "rate": f"{self.rate}{self.rate_unit}",
            "volume": f"{self.volume}{self.volume_unit}",
            "direction": self.direction,
            "infused_ul": float(self.infused_ul),
            "withdrawn_ul": float(self.withdrawn_ul),
            "safe_timeout_s": self.safe_timeout_s,
            "stalled": self.stalled,
            "silent": self.silent,
            "garble_left": self.garble_left,
            "bad_crc_left": self.bad_crc_left,
        }


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _number(text: str) -> Decimal:
    if not re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
        raise _Refused("OOR")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _Refused("OOR") from None


def _integer(text: str) -> int:
    if not text.isdigit():
        raise _Refused("OOR")
    return int(text)


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
        elif which is NeraFault.WATCHDOG_EXPIRE and on:
            pump.expire_watchdog()
        elif which is NeraFault.POWER_LOSS and on:
            pump.power_loss(time.monotonic())
        self._push(pump)

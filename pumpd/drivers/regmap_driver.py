"""`PumpDriver` for a pump described by a register-map profile (e.g. the DULCO flex Control).

The map says where things are; this driver supplies what such pumps lack and the contract
needs, and names each stand-in (docs/driver.md, "Register-map profiles"):

- commands are register writes confirmed by reading a status bit back (no sequence echo):
  `cmd_seq` is the driver's own count and `last_cmd_seq` reads 0 (unknown);
- the word order is learned at connect from the pattern register; a pattern the driver
  does not know refuses the pump (`PumpUnfit`), so no float is ever decoded in the wrong
  order;
- the pump's communication timeout is read (it is set at the pump) and the pump refused
  when it is off or longer than the configured heartbeat timeout;
- before anything else at connect, and as the first frame after any silence long enough
  for the pump's timeout to have run out, the failsafe stop is written: this pump restarts
  by itself when requests resume, and pumpd never lets a pump resume by itself; the
  power-up behaviour is forced to "off" so a power loss cannot restart it either;
- PAUSED is the driver's memory of a confirmed PAUSE (the pump only knows "stopped"); a
  PAUSE on a pump the driver last saw not infusing still writes the stop (a halt never
  waits on a read) but is answered REJECTED_STATE, as the contract says, so an IDLE or
  completed pump is never reported PAUSED;
- the pump has no VTBI of its own: when a reading shows the programmed volume reached while
  the motor runs, the driver writes the stop within that same read (the daemon's stop at
  the plan's volume remains the backstop);
- rates cross as exact Decimals: mL/h → l/h is a division by 1000 and a rate whose nearest
  float32 does not read back as the same 0.01 mL/h is refused, never rounded;
- the pump keeps no uptime: `uptime_s` is None and a restart is shown by the pump's own
  switch-on counter (`switch_on_count`, the profile's ``restart_counter``), which survives
  a restart of pumpd where a count from the driver's own connect would not;
- pressure, battery, heartbeat echo, serial number, profile version: absent (None).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Self

from pymodbus.pdu import ModbusPDU

from pumpd.drivers.base import (
    RATE_STEP_ML_H,
    Command,
    CommandOutcome,
    CommandRejected,
    CommandResult,
    CommandUncertain,
    DriverError,
    InvalidProgram,
    ProgramMismatch,
    ProtocolError,
    PumpProgram,
    PumpState,
    PumpStatus,
    PumpUnreachable,
)
from pumpd.drivers.capabilities import PumpCapabilities, parse_capabilities
from pumpd.drivers.line import Line, ModbusClient, acquire_line, release_line
from pumpd.drivers.modbus import ModbusConfig
from pumpd.drivers.modbus_exchange import NotSent, exchange, refuse_exception_reply
from pumpd.drivers.priority import halting_if
from pumpd.drivers.regmap import (
    FLOW_TO_ML_H,
    TIME_TO_MS,
    Register,
    RegisterMap,
    WordOrder,
    Write,
    encode,
    load_any_profile,
    nearest_float32,
)
from pumpd.drivers.regmap_status import RegisterStatusDecoder
from pumpd.drivers.slots import PollSlot

HEARTBEAT_COVER_S = 0.25
"""A request younger than this already fed the pump's timeout: a heartbeat sends nothing."""


class PumpUnfit(DriverError):
    """The pump answers, but is set up in a way pumpd refuses to drive (unknown word order,
    communication timeout off or too long). Fix it at the pump; nothing was started."""


class RegisterMapDriver(RegisterStatusDecoder):
    """One pump at one unit id, driven through its register map."""

    def __init__(
        self,
        config: ModbusConfig,
        rmap: RegisterMap,
        *,
        heartbeat_timeout_s: int,
        clock_scale: float = 1.0,
    ) -> None:
        self.config = config
        self.rmap = rmap
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.clock_scale = clock_scale
        self._label = f"{rmap.name} unit {config.unit}"
        self._line: Line | None = None
        self.poll_slot: PollSlot | None = None
        """This pump's place in its line's poll period (drivers/slots.py); None off it."""
        self._order: WordOrder | None = rmap.word_order.fixed
        self.pump_timeout_ms: int | None = None
        self._last_ok_sent_at: float | None = None
        self._program: PumpProgram | None = None
        self._paused = False
        self._last_state: PumpState | None = None
        self._switch_on: int | None = None
        self._cmd_count = 0
        self._heartbeats = 0
        self._vtbi_timer: asyncio.Task[None] | None = None
        self.guard_stops = 0
        """How often the failsafe stop went out first after a long silence."""
        self._alarm_bits = rmap.flag_bits(rmap.alarms)
        self._capabilities = parse_capabilities(rmap.capabilities.model_dump())
        self._warning_bits = rmap.flag_bits(rmap.warnings)

    @property
    def capabilities(self) -> PumpCapabilities:
        """What this pump can do and report: the profile's ``[capabilities]`` table as the
        driver contract's record (pumpd/drivers/capabilities.py)."""
        return self._capabilities

    # ------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Stop the pump, force its power-up behaviour off, learn its word order, check its
        communication timeout, then read it. The stop is the first frame on the wire."""
        if self._line is None:
            self._line = acquire_line(self.config.line_settings())
            self.poll_slot = self._line.slots.take()
        if not await self._line.ensure_connected(force=True):
            raise PumpUnreachable(f"{self._label}: cannot open {self._line.settings.address}")
        self._last_ok_sent_at = None
        await self._write_one("failsafe stop", self.rmap.failsafe.stop, guard=False)
        power_up = self.rmap.power_up
        await self._write_one(
            "power-up behaviour", Write(register=power_up.reg, value=power_up.force), guard=False
        )
        await self._learn_word_order()
        await self._check_pump_timeout(self.heartbeat_timeout_s)
        held = await self._read_register(self.rmap.registers[power_up.reg])
        if held != power_up.force:
            raise ProgramMismatch("power_up", power_up.force, held)
        stop = self.rmap.failsafe.stop
        held = await self._read_register(self.rmap.registers[stop.reg])
        if self._written_part(stop.reg, held) != stop.value:
            raise ProgramMismatch("start_stop", stop.value, held)
        self._paused = False
        self._switch_on = None
        await self.read_status()

    def _written_part(self, reg_name: str, held: int | Decimal) -> int | Decimal:
        """A read-back without the bits the pump itself sets in the same register (an
        alarm's or a warning's source, e.g. "stopped by timeout"): those are no part of
        what was written, and are reported as the alarm they are."""
        reg = self.rmap.registers[reg_name]
        if not isinstance(held, int):
            return held
        own = 0
        for sources in (*self._alarm_bits.values(), *self._warning_bits.values()):
            for source, bit in sources:
                if source.address == reg.address:
                    own |= 1 << bit
        return held & ~own

    async def close(self) -> None:
        timer, self._vtbi_timer = self._vtbi_timer, None
        if timer is not None:
            timer.cancel()
        line, self._line = self._line, None
        slot, self.poll_slot = self.poll_slot, None
        if line is not None:
            if slot is not None:
                line.slots.give_back(slot)
            release_line(line)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _learn_word_order(self) -> None:
        spec = self.rmap.word_order
        if spec.pattern_register is None:
            return
        reg = self.rmap.registers[spec.pattern_register]
        assert spec.pattern is not None
        words = await self._read("read word-order pattern", reg.address, reg.words)
        hi, lo = spec.pattern >> 16, spec.pattern & 0xFFFF
        if words == [hi, lo]:
            self._order = "high_first"
        elif words == [lo, hi]:
            self._order = "low_first"
        else:
            got = " ".join(f"{w:04X}" for w in words)
            raise PumpUnfit(
                f"{self._label}: register {reg.address} holds {got}, not the pattern "
                f"{spec.pattern:08X} in either word order: the pump's byte or word order is "
                "one pumpd does not know, so none of its values can be trusted"
            )

    async def _check_pump_timeout(self, seconds: int) -> None:
        reg = self.rmap.registers[self.rmap.failsafe.timeout_register]
        raw = await self._read_register(reg)
        assert reg.unit is not None
        timeout_ms = int(Decimal(raw) * reg.scale * TIME_TO_MS[reg.unit])
        self.pump_timeout_ms = timeout_ms
        if timeout_ms == 0:
            raise PumpUnfit(
                f"{self._label}: the pump's Modbus timeout (register {reg.address}) is off: "
                "a pump that does not stop when pumpd falls silent is not driven live; "
                "set it at the pump"
            )
        if timeout_ms > seconds * 1000:
            raise PumpUnfit(
                f"{self._label}: the pump's Modbus timeout is {timeout_ms} ms, longer than "
                f"heartbeat_timeout_s = {seconds} s: set it at the pump to at most "
                f"{seconds * 1000} ms"
            )

    # ------------------------------------------------------------- the wire

    def _silence_may_have_tripped(self) -> bool:
        """Whether the pump's timeout may have run out before the next request reaches it.

        Measured from when the last answered request was sent (it arrived no earlier), plus
        one reply timeout for the next request's way there.
        """
        if self.pump_timeout_ms is None:
            return False  # before connect learned it; connect sends the stop first anyway
        if self._last_ok_sent_at is None:
            return True
        silent_s = time.monotonic() - self._last_ok_sent_at + self.config.timeout_s
        return silent_s * 1000 >= self.pump_timeout_ms

    async def _call(
        self,
        what: str,
        op: Callable[[ModbusClient], Awaitable[ModbusPDU]],
        *,
        fc: int,
        guard: bool = True,
    ) -> ModbusPDU:
        line = self._line
        if line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        if guard and self._silence_may_have_tripped():
            # This pump starts again by itself on the next request after a timeout: the
            # next request is the stop, before anything else.
            self.guard_stops += 1
            await self._write_one(
                "failsafe stop after silence", self.rmap.failsafe.stop, guard=False
            )
            self._paused = False
        sent_at = time.monotonic()
        reply = await exchange(
            line, op, fc=fc, limit_s=self.config.timeout_s * 2 + 1.0, label=self._label, what=what
        )
        self._last_ok_sent_at = sent_at
        refuse_exception_reply(reply, label=self._label, what=what)
        return reply

    async def _read(self, what: str, address: int, count: int, *, guard: bool = True) -> list[int]:
        unit = self.config.unit

        async def op(client: ModbusClient) -> ModbusPDU:
            return await client.read_holding_registers(address, count=count, device_id=unit)

        reply = await self._call(what, op, fc=3, guard=guard)
        registers = list(getattr(reply, "registers", []))
        if len(registers) != count:
            raise ProtocolError(
                f"{self._label}: {what}: asked for {count} registers, got {len(registers)}"
            )
        return registers

    async def _write_one(self, what: str, write: Write, *, guard: bool = True) -> None:
        reg = self.rmap.registers[write.reg]
        words = encode(reg, write.value, self._order or "high_first")
        unit = self.config.unit

        async def op(client: ModbusClient) -> ModbusPDU:
            return await client.write_registers(reg.address, words, device_id=unit)

        await self._call(f"{what} ({write.reg} = {write.value})", op, fc=0x10, guard=guard)

    async def _read_register(self, reg: Register) -> int | Decimal:
        words = await self._read(f"read register {reg.address}", reg.address, reg.words)
        return self._decode(reg, words)

    # ------------------------------------------------------------- status

    async def _read_words(self) -> tuple[dict[int, int], float]:
        image: dict[int, int] = {}
        read_at = 0.0
        for block in self.rmap.status.blocks:
            words = await self._read("read status", block.first, block.count)
            if not read_at:
                read_at = time.monotonic()
            image.update(zip(range(block.first, block.first + block.count), words, strict=True))
        return image, read_at

    async def read_status(self) -> PumpStatus:
        """The status blocks, decoded; the driver's VTBI stop goes out within this read."""
        image, read_at = await self._read_words()
        status = self._decode_status(image, read_at)
        program = self._program
        if (
            status.state is PumpState.INFUSING
            and program is not None
            and 0 < program.vtbi_ul <= status.volume_infused_ul
        ):
            await self._write_one("stop at the programmed volume", self.rmap.failsafe.stop)
            self._paused = False
            image, read_at = await self._read_words()
            status = self._decode_status(image, read_at)
        self._arm_vtbi_stop(status)
        return status

    def _arm_vtbi_stop(self, status: PumpStatus) -> None:
        """Time the stop at the programmed volume from this reading, so the volume is not
        overshot by up to a poll period: re-armed at every reading, gone when stopped.

        The faster of the programmed and the reported rate is used, so the stop comes
        early rather than late; the check in `read_status` remains behind it.
        """
        timer, self._vtbi_timer = self._vtbi_timer, None
        if timer is not None:
            timer.cancel()
        program = self._program
        if status.state is not PumpState.INFUSING or program is None or program.vtbi_ul <= 0:
            return
        rate_ml_h = max(program.rate_ml_h, status.rate_actual_ml_h)
        if rate_ml_h <= 0:
            return
        left_ul = program.vtbi_ul - status.volume_infused_ul
        pump_s = Decimal(left_ul) * Decimal(3600) / (rate_ml_h * 1000)
        wall_s = float(pump_s) / self.clock_scale
        due = status.read_at_monotonic + wall_s
        self._vtbi_timer = asyncio.create_task(self._stop_at(due), name=f"{self._label} vtbi")

    async def _stop_at(self, due_monotonic: float) -> None:
        await asyncio.sleep(max(0.0, due_monotonic - time.monotonic()))
        # Detach before writing: a reading that re-arms must never cancel a stop in flight.
        if self._vtbi_timer is asyncio.current_task():
            self._vtbi_timer = None
        with contextlib.suppress(DriverError):
            await self._write_one("stop at the programmed volume", self.rmap.failsafe.stop)
            self._paused = False

    # ------------------------------------------------------------- program

    def _rate_words(self, rate_ml_h: Decimal) -> Decimal:
        """The exact value the rate register will hold, or InvalidProgram."""
        reg = self.rmap.registers[self.rmap.program.rate]
        assert reg.unit is not None
        in_unit = rate_ml_h / FLOW_TO_ML_H[reg.unit] / reg.scale
        held = nearest_float32(in_unit) if reg.type == "float32" else in_unit
        back = (held * reg.scale * FLOW_TO_ML_H[reg.unit]).quantize(
            RATE_STEP_ML_H, rounding=ROUND_HALF_EVEN
        )
        if back != rate_ml_h or (reg.is_integer and held != held.to_integral_value()):
            raise InvalidProgram(
                "rate_ml_h", rate_ml_h, f"cannot be held exactly by {reg.type} {reg.unit}"
            )
        return held

    async def write_program(self, program: PumpProgram) -> PumpProgram:
        """The operating mode, then the rate in the register's unit; both read back.

        The pump has no KVO (a KVO rate other than 0 is refused), no VTBI register (the
        driver stops at the volume) and no prime over Modbus (the prime setpoints are
        accepted and never used: PRIME is refused as a command).
        """
        if program.kvo_rate_ml_h != 0:
            raise InvalidProgram(
                "kvo_rate_ml_h", program.kvo_rate_ml_h, "must be 0: the pump has no KVO"
            )
        if program.rate_ml_h <= 0:
            raise InvalidProgram("rate_ml_h", program.rate_ml_h, "must be positive")
        held = self._rate_words(program.rate_ml_h)
        for write in self.rmap.program.set_before:
            await self._write_one("program", write)
            reg = self.rmap.registers[write.reg]
            got = await self._read_register(reg)
            if got != write.value:
                raise ProgramMismatch(write.reg, write.value, got)
        reg = self.rmap.registers[self.rmap.program.rate]
        await self._write_one("program rate", Write(register=self.rmap.program.rate, value=held))
        got = await self._read_register(reg)
        if got != held:
            raise ProgramMismatch("rate_ml_h", program.rate_ml_h, got)
        self._program = program
        return program

    # ------------------------------------------------------------- commands

    async def command(self, command: Command, *, timeout_s: float | None = None) -> CommandOutcome:
        """Write the command's registers once and confirm by reading back its bit.

        A write whose reply was lost is followed by reads, never by a second write. A STOP
        or PAUSE (its writes and confirming reads) goes ahead of other pumps' queued
        requests on the line (drivers/priority.py).
        """
        with halting_if(command in (Command.STOP, Command.PAUSE)):
            return await self._command(command, timeout_s)

    async def _command(self, command: Command, timeout_s: float | None) -> CommandOutcome:
        if self._line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        limit_s = self.config.confirm_timeout_s if timeout_s is None else timeout_s
        if limit_s <= 0:
            raise ValueError(f"timeout_s={limit_s} must be positive")
        self._cmd_count += 1
        seq = self._cmd_count
        sent_at = time.monotonic()
        last_seen = self._last_state
        spec = self.rmap.command(command)
        if spec is None or (command is Command.START and self._program is None):
            # PRIME on a pump that cannot prime over its bus; START with nothing programmed.
            before = await self.read_status()
            result = (
                CommandResult.UNKNOWN_COMMAND if spec is None else CommandResult.REJECTED_PARAMS
            )
            raise CommandRejected(command, seq, result, before)
        if command is Command.CLEAR_VOLUMES:
            before = await self.read_status()
            if before.state is PumpState.INFUSING:
                raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, before)
        # START, PAUSE and STOP go out at once, with no read before them: a halt must not
        # wait, and a start must begin when the daemon says it did (its volume accounting
        # starts then). The pump itself refuses to run with an error present, which the
        # read-back shows; a start on a running pump or a stop on a stopped one changes
        # nothing.
        reason = "not confirmed"
        try:
            for write in spec.write:
                await self._write_one(str(command), write)
        except NotSent:
            raise
        except PumpUnreachable as exc:
            reason = f"write unanswered ({exc})"
        deadline = sent_at + limit_s
        confirm = spec.confirm
        while True:
            try:
                image, read_at = await self._read_words()
            except PumpUnreachable as exc:
                reason = f"{reason}; no status ({exc})"
            except ProtocolError as exc:
                raise CommandUncertain(command, seq, f"status unreadable: {exc}") from exc
            else:
                if confirm.bit is not None:
                    done = int(self._bit(image, confirm.bit)) == confirm.equals
                else:
                    assert confirm.reg is not None
                    reg = self.rmap.registers[confirm.reg]
                    if confirm.reg in _image_names(self.rmap, image):
                        value = self._value(image, confirm.reg)
                    else:
                        value = await self._read_register(reg)
                    done = Decimal(value) == Decimal(confirm.equals)
                if done:
                    if command is Command.PAUSE and last_seen not in (None, PumpState.INFUSING):
                        # Stopped it is (the write went out), but nothing was paused.
                        status = self._decode_status(image, read_at)
                        raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, status)
                    if command is Command.PAUSE:
                        self._paused = True
                    elif command in (Command.START, Command.STOP):
                        self._paused = False
                    status = self._decode_status(image, read_at)
                    return CommandOutcome(
                        command=command,
                        cmd_seq=seq,
                        result=CommandResult.OK,
                        sent_at_monotonic=sent_at,
                        confirmed_at_monotonic=read_at,
                        status=status,
                    )
                status = self._decode_status(image, read_at)
                if command is Command.START and status.alarms:
                    raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, status)
                reason = f"pump reports {status.state}"
            if time.monotonic() >= deadline:
                raise CommandUncertain(command, seq, f"after {limit_s} s: {reason}")
            await asyncio.sleep(self.config.confirm_poll_s)

    # ------------------------------------------------------------- heartbeat

    async def heartbeat(self) -> int:
        """Any request feeds the pump's Modbus timeout: one register read, unless a request
        went out within HEARTBEAT_COVER_S (the controller heartbeats right after its read)."""
        last = self._last_ok_sent_at
        if last is None or time.monotonic() - last >= HEARTBEAT_COVER_S:
            reg = self.rmap.registers[self.rmap.failsafe.stop.reg]
            await self._read("heartbeat", reg.address, reg.words)
        self._heartbeats += 1
        return self._heartbeats

    async def set_heartbeat_timeout(self, seconds: int) -> None:
        """The pump's timeout is set at the pump: read it, refuse it if off or too long.

        `seconds` are the controller's clock seconds; at a simulation's time scale they are
        divided back, because the pump counts real milliseconds.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise InvalidProgram("heartbeat_timeout_s", seconds, "must be a positive integer")
        await self._check_pump_timeout(max(1, round(seconds / self.clock_scale)))


def _image_names(rmap: RegisterMap, image: dict[int, int]) -> set[str]:
    return {
        name
        for name, reg in rmap.registers.items()
        if all(a in image for a in range(reg.address, reg.address + reg.words))
    }


def register_map(profile: str) -> RegisterMap | None:
    """The register map a profile name or path gives, or None for a GIP-MB1-schema one."""
    loaded = load_any_profile(profile)
    return loaded if isinstance(loaded, RegisterMap) else None

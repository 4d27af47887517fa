"""The Modbus pump driver (TCP or RTU) on pymodbus, reading its map from a profile.

Every value crosses the wire as the profile describes it; every command is confirmed by
reading the pump's own echo of its sequence number; nothing is cached, so a reading is
either fresh or an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.pdu import ModbusPDU

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandOutcome,
    CommandRejected,
    CommandResult,
    CommandUncertain,
    InvalidProgram,
    ProgramMismatch,
    ProtocolError,
    PumpProgram,
    PumpStatus,
    PumpUnreachable,
    WarningFlag,
)
from pumpd.drivers.capabilities import PumpCapabilities
from pumpd.drivers.line import (
    Line,
    LineSettings,
    ModbusClient,
    acquire_line,
    release_line,
    resolve_address,
)
from pumpd.drivers.modbus_exchange import NotSent, StrayReply, exchange, refuse_exception_reply
from pumpd.drivers.priority import halting_if
from pumpd.drivers.profile import Profile, RegisterField, load_profile
from pumpd.drivers.slots import PollSlot

F = TypeVar("F", AlarmFlag, WarningFlag)
SEQ_MAX = 0xFFFF
MAX_REGISTERS_PER_REQUEST = 123
MAX_RTU_FRAME_BYTES = 256
"""The Modbus serial line spec's longest RTU frame (address, PDU of 253, CRC)."""
# The program fields: (contract attribute, holding field name, carried as Decimal?).
_PROGRAM_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("rate_ml_h", "rate_setpoint", True),
    ("vtbi_ul", "vtbi", False),
    ("kvo_rate_ml_h", "kvo_rate", True),
    ("prime_volume_ul", "prime_volume", False),
    ("prime_rate_ml_h", "prime_rate", True),
)


class ModbusConfig(BaseModel):
    """How to reach one pump. Loaded from pumpd.toml later; refused if incomplete."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["tcp", "rtu"]
    unit: int = Field(ge=1, le=247)
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    device: str | None = None
    baudrate: int = Field(default=115200, ge=1200, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    profile: str = "gip-mb1"
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    confirm_timeout_s: float = Field(default=2.0, gt=0, le=60)
    confirm_poll_s: float = Field(default=0.02, ge=0, le=5)
    inter_frame_gap_s: float | None = Field(default=None, ge=0, le=1)
    """None: 3.5 character times (at least 1.75 ms) on RTU, none on TCP."""
    quiet_after_timeout_s: float | None = Field(default=None, ge=0, le=30)
    """None: on RTU the time the longest frame takes at the line's baud rate plus the
    inter-frame gap (a reply the pump began before the timeout finishes inside it, and is
    not taken for the next one); 0 on TCP."""
    reconnect_delay_s: float = Field(default=0.1, gt=0, le=10)
    reconnect_delay_max_s: float = Field(default=2.0, gt=0, le=30)
    trace_frames: bool = False

    @model_validator(mode="after")
    def _endpoint(self) -> Self:
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport 'tcp' needs host")
        if self.transport == "rtu" and not self.device:
            raise ValueError("transport 'rtu' needs device")
        return self

    def line_settings(self) -> LineSettings:
        if self.transport == "rtu":
            assert self.device is not None
            char_s = 11 / self.baudrate
            gap = self.inter_frame_gap_s
            if gap is None:
                gap = max(3.5 * char_s, 0.00175)
            quiet = self.quiet_after_timeout_s
            if quiet is None:
                longest = rtu_frame_s(
                    MAX_RTU_FRAME_BYTES, self.baudrate, self.parity, self.stopbits, self.bytesize
                )
                quiet = longest + gap
            return LineSettings(
                transport="rtu",
                address=resolve_address("rtu", self.device),
                port=0,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                timeout_s=self.timeout_s,
                gap_s=gap,
                quiet_after_timeout_s=quiet,
                reconnect_delay_s=self.reconnect_delay_s,
                reconnect_delay_max_s=self.reconnect_delay_max_s,
                trace_frames=self.trace_frames,
            )
        assert self.host is not None
        return LineSettings(
            transport="tcp",
            address=self.host,
            port=self.port,
            baudrate=0,
            parity="N",
            stopbits=1,
            bytesize=8,
            timeout_s=self.timeout_s,
            gap_s=self.inter_frame_gap_s or 0.0,
            quiet_after_timeout_s=self.quiet_after_timeout_s or 0.0,
            reconnect_delay_s=self.reconnect_delay_s,
            reconnect_delay_max_s=self.reconnect_delay_max_s,
            trace_frames=self.trace_frames,
        )


def rtu_frame_s(
    size_bytes: int, baudrate: int, parity: str, stopbits: int, bytesize: int = 8
) -> float:
    """Seconds `size_bytes` take on an RTU line: start bit, data bits, parity, stop bits."""
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return size_bytes * bits / baudrate


def next_seq(seq: int) -> int:
    """The sequence number after `seq`: 1..65535, wrapping 65535 → 1, never 0."""
    return seq % SEQ_MAX + 1


class ModbusPumpDriver:
    """`PumpDriver` for one unit id on a Modbus TCP endpoint or RTU line."""

    def __init__(self, config: ModbusConfig, profile: Profile | None = None) -> None:
        self.config = config
        self.profile = profile if profile is not None else load_profile(config.profile)
        self.capabilities: PumpCapabilities = self.profile.capability_record
        """What this pump can do, as its profile declares it."""
        self._line: Line | None = None
        self.poll_slot: PollSlot | None = None
        """This pump's place in its line's poll period (drivers/slots.py); None off it."""
        self._seq: int | None = None
        self._heartbeat: int = 0
        self._state_by_code = self.profile.state_by_code()
        self._result_by_code = self.profile.result_by_code()
        self._alarm_bits = self.profile.alarm_bit_map()
        self._warning_bits = self.profile.warning_bit_map()
        self._label = f"unit {config.unit}"

    @property
    def next_cmd_seq(self) -> int | None:
        """The cmd_seq the next command will carry (None before connect)."""
        return self._seq

    # ------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Open (or join) the line and learn the pump's last cmd_seq and heartbeat."""
        if self._line is None:
            self._line = acquire_line(self.config.line_settings())
            self.poll_slot = self._line.slots.take()
        if not await self._line.ensure_connected(force=True):
            raise PumpUnreachable(f"{self._label}: cannot open {self._line.settings.address}")
        status = await self.read_status()
        self._seq = next_seq(status.last_cmd_seq)
        if status.heartbeat_echo is not None:
            self._heartbeat = status.heartbeat_echo

    async def close(self) -> None:
        """Leave the line; the last driver on it closes the client."""
        line, self._line = self._line, None
        slot, self.poll_slot = self.poll_slot, None
        self._seq = None
        if line is not None:
            if slot is not None:
                line.slots.give_back(slot)
            release_line(line)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------- the wire

    async def _call(
        self,
        what: str,
        op: Callable[[ModbusClient], Awaitable[ModbusPDU]],
        *,
        fc: int,
        echo: tuple[int, int] | None = None,
    ) -> ModbusPDU:
        line = self._line
        if line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        reply = await exchange(
            line, op, fc=fc, limit_s=self.config.timeout_s * 2 + 1.0, label=self._label, what=what
        )
        refuse_exception_reply(reply, label=self._label, what=what)
        if echo is not None and (reply.address, reply.count) != echo:
            raise StrayReply(
                f"{self._label}: {what}: got a reply to another request (echo of "
                f"{reply.count} register(s) at {reply.address}, sent {echo[1]} at {echo[0]}); "
                "discarded"
            )
        return reply

    async def _read(self, what: str, fc: Literal[3, 4], address: int, count: int) -> list[int]:
        unit = self.config.unit

        async def op(client: ModbusClient) -> ModbusPDU:
            if fc == 4:
                return await client.read_input_registers(address, count=count, device_id=unit)
            return await client.read_holding_registers(address, count=count, device_id=unit)

        reply = await self._call(what, op, fc=fc)
        registers = list(getattr(reply, "registers", []))
        if len(registers) != count:
            raise ProtocolError(
                f"{self._label}: {what}: asked for {count} registers, got {len(registers)}"
            )
        return registers

    async def _write(self, what: str, address: int, values: list[int]) -> None:
        unit = self.config.unit

        async def op(client: ModbusClient) -> ModbusPDU:
            return await client.write_registers(address, values, device_id=unit)

        await self._call(what, op, fc=0x10, echo=(address, len(values)))

    # ------------------------------------------------------------- status

    async def read_status(self) -> PumpStatus:
        """One function 0x04 read of the whole status block, decoded through the profile."""
        block = self.profile.input
        words = await self._read("read status", 4, block.first, block.count)
        read_at = time.monotonic()
        f = block.fields
        first = block.first
        decode = self.profile.decode

        def raw(fld: RegisterField) -> int:
            return decode(fld, words, fld.address - first)

        def integer(fld: RegisterField) -> int:
            return raw(fld) * int(fld.scale)

        def rate(fld: RegisterField) -> Decimal:
            return Decimal(raw(fld)) * fld.scale

        version = raw(f.profile_version)
        if version != self.profile.profile_version:
            raise ProtocolError(
                f"{self._label}: pump reports profile_version {version}, "
                f"profile {self.profile.name} expects {self.profile.profile_version}"
            )
        state_code = raw(f.state)
        state = self._state_by_code.get(state_code)
        if state is None:
            raise ProtocolError(f"{self._label}: unknown state code {state_code}")
        result_code = raw(f.last_cmd_result)
        result = self._result_by_code.get(result_code)
        if result is None:
            raise ProtocolError(f"{self._label}: unknown last_cmd_result code {result_code}")
        return PumpStatus(
            state=state,
            alarms=_flags(raw(f.alarm_flags), self._alarm_bits, AlarmFlag.NONE, AlarmFlag.UNKNOWN),
            warnings=_flags(
                raw(f.warning_flags), self._warning_bits, WarningFlag.NONE, WarningFlag.UNKNOWN
            ),
            rate_actual_ml_h=rate(f.rate_actual),
            volume_infused_ul=integer(f.volume_infused),
            volume_primed_ul=integer(f.volume_primed),
            pressure_downstream_mmhg=integer(f.pressure_downstream),
            battery_percent=integer(f.battery_percent),
            last_cmd_seq=raw(f.last_cmd_seq),
            last_cmd_result=result,
            heartbeat_echo=raw(f.heartbeat_echo),
            max_rate_ml_h=rate(f.max_rate),
            uptime_s=integer(f.uptime_s),
            serial_number=raw(f.serial_number),
            profile_version=version,
            read_at_monotonic=read_at,
        )

    # ------------------------------------------------------------- program

    def _encode_program(self, program: PumpProgram) -> dict[int, int]:
        """Register → word for every program field; InvalidProgram before anything is sent."""
        fields = self.profile.holding.fields
        image: dict[int, int] = {}
        for attr, name, _decimal in _PROGRAM_FIELDS:
            fld: RegisterField = getattr(fields, name)
            value = getattr(program, attr)
            counts = Decimal(value) / fld.scale
            if counts != counts.to_integral_value():
                raise InvalidProgram(attr, value, f"is not a whole multiple of {fld.scale}")
            raw = int(counts)
            if not fld.raw_min <= raw <= fld.raw_max:
                raise InvalidProgram(
                    attr, value, f"does not fit {fld.words} register(s) (max {fld.raw_max})"
                )
            for offset, word in enumerate(self.profile.encode(fld, raw)):
                image[fld.address + offset] = word
        return image

    async def write_program(self, program: PumpProgram) -> PumpProgram:
        """Write the five setpoints, read them back, and refuse any difference.

        Contiguous registers go out in one function 0x10 request each (one request for
        GIP-MB1) and are read back with function 0x03. The comparison is field by field
        in contract units, so the error names the setpoint the pump does not hold.
        """
        image = self._encode_program(program)
        for start, words in _runs(image):
            await self._write("write program", start, words)
        first, last = min(image), max(image)
        held: dict[int, int] = {}
        for start, words in _runs(dict.fromkeys(range(first, last + 1), 0)):
            got = await self._read("read back program", 3, start, len(words))
            held.update(zip(range(start, start + len(words)), got, strict=True))
        fields = self.profile.holding.fields
        for attr, name, is_decimal in _PROGRAM_FIELDS:
            fld: RegisterField = getattr(fields, name)
            raw = self.profile.decode(
                fld, [held[a] for a in range(fld.address, fld.address + fld.words)]
            )
            read: Decimal | int = Decimal(raw) * fld.scale if is_decimal else raw * int(fld.scale)
            written = getattr(program, attr)
            if read != written:
                raise ProgramMismatch(attr, written, read)
        # Every field equals what was written, so the program is what the pump holds.
        return program

    # ------------------------------------------------------------- commands

    async def command(self, command: Command, *, timeout_s: float | None = None) -> CommandOutcome:
        """Send one command with a fresh cmd_seq and wait for the pump's echo of it.

        Never resent: a write whose reply was lost is followed by confirmation polling,
        and if no echo arrives in time the caller gets CommandUncertain. A STOP or PAUSE
        (its write and its confirming reads) goes ahead of other pumps' queued requests on
        the line.
        """
        with halting_if(command in (Command.STOP, Command.PAUSE)):
            return await self._command(command, timeout_s)

    async def _command(self, command: Command, timeout_s: float | None) -> CommandOutcome:
        if self._line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        if self._seq is None:
            # connect() could not read the pump; learn its last seq before sending anything.
            self._seq = next_seq((await self.read_status()).last_cmd_seq)
        limit_s = self.config.confirm_timeout_s if timeout_s is None else timeout_s
        if limit_s <= 0:
            raise ValueError(f"timeout_s={limit_s} must be positive")
        seq = self._seq
        self._seq = next_seq(seq)
        fields = self.profile.holding.fields
        sent_at = time.monotonic()
        deadline = sent_at + limit_s
        reason = "write not acknowledged"
        try:
            await self._write(
                f"{command} seq {seq}",
                fields.cmd_seq.address,
                [seq, self.profile.command_code(command)],
            )
        except NotSent:
            raise
        except PumpUnreachable as exc:
            reason = f"write unanswered ({exc})"
        while True:
            try:
                status = await self.read_status()
            except PumpUnreachable as exc:
                reason = f"{reason}; no status ({exc})"
            except ProtocolError as exc:
                raise CommandUncertain(command, seq, f"status unreadable: {exc}") from exc
            else:
                if status.last_cmd_seq == seq:
                    if status.last_cmd_result is not CommandResult.OK:
                        raise CommandRejected(command, seq, status.last_cmd_result, status)
                    return CommandOutcome(
                        command=command,
                        cmd_seq=seq,
                        result=CommandResult.OK,
                        sent_at_monotonic=sent_at,
                        confirmed_at_monotonic=status.read_at_monotonic,
                        status=status,
                    )
                reason = f"pump still echoes seq {status.last_cmd_seq}"
            if time.monotonic() >= deadline:
                raise CommandUncertain(command, seq, f"after {limit_s} s: {reason}")
            await asyncio.sleep(self.config.confirm_poll_s)

    # ------------------------------------------------------------- heartbeat

    async def heartbeat(self) -> int:
        """Change the heartbeat register (fc 0x10, one register); the value written."""
        value = (self._heartbeat + 1) & 0xFFFF
        await self._write("heartbeat", self.profile.holding.fields.heartbeat.address, [value])
        self._heartbeat = value
        return value

    async def set_heartbeat_timeout(self, seconds: int) -> None:
        """Set the pump's failsafe timeout (0 disables it) and check the pump holds it."""
        fld = self.profile.holding.fields.heartbeat_timeout
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise InvalidProgram("heartbeat_timeout_s", seconds, "must be an integer")
        if not fld.raw_min <= seconds <= fld.raw_max:
            raise InvalidProgram(
                "heartbeat_timeout_s", seconds, f"must be within 0..{fld.raw_max} s"
            )
        await self._write("set heartbeat timeout", fld.address, self.profile.encode(fld, seconds))
        got = self.profile.decode(
            fld, await self._read("read heartbeat timeout", 3, fld.address, fld.words)
        )
        if got != seconds:
            raise ProgramMismatch("heartbeat_timeout_s", seconds, got)


def _flags(word: int, bits: dict[int, F], none: F, unknown: F) -> F:
    flags = none
    bit = 0
    while word:
        if word & 1:
            flags |= bits.get(bit, unknown)
        word >>= 1
        bit += 1
    return flags


def _runs(image: dict[int, int]) -> list[tuple[int, list[int]]]:
    """Contiguous register runs of `image`, each short enough for one request."""
    runs: list[tuple[int, list[int]]] = []
    for address in sorted(image):
        if (
            runs
            and runs[-1][0] + len(runs[-1][1]) == address
            and len(runs[-1][1]) < MAX_REGISTERS_PER_REQUEST
        ):
            runs[-1][1].append(image[address])
        else:
            runs.append((address, [image[address]]))
    return runs

"""The pump-driver contract: what pumpd may ask of a pump and what it can get back.

Everything above the driver (controller, safety kernel, audit) sees only these types, so a
second kind of pump is a second implementation of `PumpDriver`, never a change upstream.
The driver is a faithful typed transport: it decodes, confirms and reports; it decides
nothing about what a reading means for the patient.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pumpd.drivers.capabilities import PumpCapabilities
    from pumpd.drivers.slots import PollSlot

RATE_STEP_ML_H = Decimal("0.01")
"""The finest rate the contract carries; a finer value is refused, never rounded."""


class PumpState(enum.StrEnum):
    IDLE = "IDLE"
    PRIMING = "PRIMING"
    INFUSING = "INFUSING"
    PAUSED = "PAUSED"
    KVO = "KVO"
    ALARM = "ALARM"


class AlarmFlag(enum.IntFlag):
    """Alarm causes. UNKNOWN stands for any bit the profile does not name.

    An unnamed bit is still an alarm the pump raised; dropping it would hide it.
    """

    NONE = 0
    OCCLUSION_DOWNSTREAM = 1 << 0
    OCCLUSION_UPSTREAM = 1 << 1
    AIR_IN_LINE = 1 << 2
    DOOR_OPEN = 1 << 3
    SYSTEM_FAULT = 1 << 4
    COMM_LOSS = 1 << 5
    BATTERY_DEPLETED = 1 << 6
    UNKNOWN = 1 << 15


class WarningFlag(enum.IntFlag):
    """Warnings. UNKNOWN stands for any bit the profile does not name."""

    NONE = 0
    LOW_BATTERY = 1 << 0
    VTBI_COMPLETE = 1 << 1
    UNKNOWN = 1 << 15


class Command(enum.StrEnum):
    START = "START"
    PAUSE = "PAUSE"
    STOP = "STOP"
    PRIME = "PRIME"
    CLEAR_VOLUMES = "CLEAR_VOLUMES"
    ACK_ALARM = "ACK_ALARM"


REPEATABLE_COMMANDS = frozenset({Command.STOP, Command.PAUSE})
"""Commands whose blind repetition cannot deliver more drug than intended.

START and PRIME move fluid: sending one twice after an unanswered first attempt could
start an infusion nobody confirmed, so they are never repeated by the driver.
"""


class CommandResult(enum.StrEnum):
    OK = "OK"
    REJECTED_STATE = "REJECTED_STATE"
    REJECTED_PARAMS = "REJECTED_PARAMS"
    REJECTED_ALARM = "REJECTED_ALARM"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """One consistent snapshot of the pump, taken in a single read.

    `read_at_monotonic` is the driver's time.monotonic() when the reply arrived, so a
    consumer can tell how old the snapshot is without trusting any wall clock. A value the
    pump cannot report (a syringe pump has no pressure sensor, no battery, no heartbeat
    echo) is None, never a zero that would read as "measured and fine".
    """

    state: PumpState
    alarms: AlarmFlag
    warnings: WarningFlag
    rate_actual_ml_h: Decimal
    volume_infused_ul: int
    volume_primed_ul: int
    pressure_downstream_mmhg: int | None
    battery_percent: int | None
    last_cmd_seq: int
    last_cmd_result: CommandResult
    heartbeat_echo: int | None
    max_rate_ml_h: Decimal | None
    uptime_s: int | None
    """The pump's own uptime; None where it keeps none (never the driver's connection
    age, which a daemon restart renews and which would read as a pump restart)."""
    serial_number: int | None
    profile_version: int | None
    read_at_monotonic: float
    switch_on_count: int | None = None
    """The pump's own count of power-ups, where it keeps one (DULCO flex register 1026);
    None where it keeps none, or where it keeps one that could not be read."""
    resets_seen: int = 0
    """Power-on reset reports (New Era ``A?R``) since the driver connected: it rises on a
    restart (a reset may be reported to more than one request). Counted up to the reply
    the volumes came from, never later: a status with the counter from before a restart
    never also claims the restart (its volume would be counted again on the new counter)."""


@dataclass(frozen=True, slots=True)
class PumpProgram:
    """The setpoints a treatment needs, in contract units.

    Rates must already be exact multiples of 0.01 mL/h: the dose plan owns rounding, and
    a driver that rounded silently would hide a disagreement between plan and pump.
    """

    rate_ml_h: Decimal
    vtbi_ul: int
    kvo_rate_ml_h: Decimal
    prime_volume_ul: int
    prime_rate_ml_h: Decimal

    def __post_init__(self) -> None:
        for name in ("rate_ml_h", "kvo_rate_ml_h", "prime_rate_ml_h"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise InvalidProgram(name, value, "must be a finite Decimal in mL/h")
            if value < 0:
                raise InvalidProgram(name, value, "must not be negative")
            if value % RATE_STEP_ML_H != 0:
                raise InvalidProgram(name, value, f"is finer than {RATE_STEP_ML_H} mL/h")
        for name in ("vtbi_ul", "prime_volume_ul"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidProgram(name, value, "must be an integer number of µL")
            if value < 0:
                raise InvalidProgram(name, value, "must not be negative")


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """A command the pump confirmed executing (result OK), with the status that showed it."""

    command: Command
    cmd_seq: int
    result: CommandResult
    sent_at_monotonic: float
    confirmed_at_monotonic: float
    status: PumpStatus
    attempts: int = 1


class DriverError(Exception):
    """Base of every error a driver raises."""


class PumpUnreachable(DriverError):
    """No valid reply: link down, timeout, or frames that failed their checks.

    Nothing is known about the pump's present state; a caller must not reuse an older
    reading as if it were current.
    """


class ProtocolError(DriverError):
    """The pump answered, but not as the profile says it should."""

    def __init__(self, message: str, *, exception_code: int | None = None) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class ProfileError(DriverError):
    """A register-map profile is malformed; `key` names the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"profile key {key!r}: {message}")
        self.key = key


class InvalidProgram(DriverError, ValueError):
    """A setpoint cannot be sent as given; nothing was written."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}={value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class ProgramMismatch(DriverError):
    """The pump holds a different setpoint from the one just written."""

    def __init__(self, field: str, written: object, read: object) -> None:
        super().__init__(f"{field}: wrote {written}, pump reads back {read}")
        self.field = field
        self.written = written
        self.read = read


class CommandRejected(DriverError):
    """The pump took the command and refused it; `result` says why."""

    def __init__(
        self, command: Command, cmd_seq: int, result: CommandResult, status: PumpStatus
    ) -> None:
        super().__init__(f"{command} (seq {cmd_seq}) rejected by the pump: {result}")
        self.command = command
        self.cmd_seq = cmd_seq
        self.result = result
        self.status = status


class CommandUncertain(DriverError):
    """A command may have reached the pump but no confirmation came back in time.

    The pump may or may not be executing it; only a later status read can tell.
    """

    def __init__(self, command: Command, cmd_seq: int, reason: str) -> None:
        super().__init__(f"{command} (seq {cmd_seq}) unconfirmed: {reason}")
        self.command = command
        self.cmd_seq = cmd_seq
        self.reason = reason


class NotRepeatable(DriverError, ValueError):
    """A caller asked to repeat a command that moves fluid (START, PRIME, …)."""


@runtime_checkable
class PumpDriver(Protocol):
    """One pump, reached through some transport.

    `capabilities` says what this pump can do and report (pumpd/drivers/capabilities.py);
    the controller and the kernel act on it, so a driver never pretends to an ability.
    """

    @property
    def capabilities(self) -> PumpCapabilities: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def read_status(self) -> PumpStatus: ...

    async def write_program(self, program: PumpProgram) -> PumpProgram: ...

    async def command(
        self, command: Command, *, timeout_s: float | None = None
    ) -> CommandOutcome: ...

    async def heartbeat(self) -> int: ...

    async def set_heartbeat_timeout(self, seconds: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PushedAlarm:
    """An alarm the pump reported unasked, as the driver received it.

    The packet is itself a reading: it says the pump is in alarm, and which. `status` is
    what the driver makes of it at once: the last reading with the packet's alarm (state
    ALARM, the latched alarms, rate 0 and no warnings as a read after the alarm shows
    them, `uptime_s` and `read_at_monotonic` at the packet's arrival); the volumes, which
    the packet does not carry, are the last reading's. It is None when only a read can
    tell: a reset (the pump's counters restarted), or a reading made after the packet.
    """

    alarms: AlarmFlag
    """The packet's own alarm (NONE for a reset)."""
    restarted: bool
    received_at_monotonic: float
    """The driver's time.monotonic() when the packet arrived."""
    status: PumpStatus | None


@runtime_checkable
class PushesAlarms(Protocol):
    """A driver whose pump reports alarms unasked (New Era Safe mode).

    `alarm_pushed` is set the moment such a report arrives and the driver has latched it;
    `take_pushed_alarm()` then hands over the newest report not yet taken (None when there
    is none). The controller's wait between polls ends at the push, and its tick acts on
    the report's status with no read before the halt, or reads when it has none
    (pumpd/controller/wake.py); it clears the event when it takes the report.
    """

    alarm_pushed: asyncio.Event

    def take_pushed_alarm(self) -> PushedAlarm | None: ...


@runtime_checkable
class SharesLine(Protocol):
    """A driver on a line other pumps may share: its slot in the line's poll period
    (pumpd/drivers/slots.py), which the controller polls in; None while not on its line."""

    @property
    def poll_slot(self) -> PollSlot | None: ...


@runtime_checkable
class ReadsPumpTimeout(Protocol):
    """A driver whose pump's communication timeout is set at the pump and read at connect
    (the DULCO flex's register 61, `WatchdogSetter.PUMP_PANEL`).

    `pump_timeout_ms` is what the pump holds, in wall-clock milliseconds (None before the
    read): how long it runs on after pumpd's last request reached it. The kernel judges a
    plan's run-on on it (safety/runon.py).
    """

    pump_timeout_ms: int | None


async def command_repeating(
    driver: PumpDriver,
    command: Command,
    *,
    attempts: int = 3,
    timeout_s: float | None = None,
) -> CommandOutcome:
    """Send STOP or PAUSE until the pump confirms it, at most `attempts` times.

    Each attempt carries a fresh cmd_seq, so the pump executes it again if the earlier one
    was lost. A rejection ends the loop at once: a repeated PAUSE that finds the pump
    already PAUSED comes back REJECTED_STATE, and the caller reads `.status` to see it.
    """
    if command not in REPEATABLE_COMMANDS:
        raise NotRepeatable(f"{command} moves fluid and is never repeated blindly")
    if attempts < 1:
        raise ValueError(f"attempts={attempts} must be at least 1")
    last_error: CommandUncertain | PumpUnreachable | None = None
    for attempt in range(1, attempts + 1):
        try:
            outcome = await driver.command(command, timeout_s=timeout_s)
        except (CommandUncertain, PumpUnreachable) as exc:
            last_error = exc
            continue
        return CommandOutcome(
            command=outcome.command,
            cmd_seq=outcome.cmd_seq,
            result=outcome.result,
            sent_at_monotonic=outcome.sent_at_monotonic,
            confirmed_at_monotonic=outcome.confirmed_at_monotonic,
            status=outcome.status,
            attempts=attempt,
        )
    assert last_error is not None
    raise last_error

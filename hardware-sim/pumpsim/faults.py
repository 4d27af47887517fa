"""The fault catalogue and the checking of fault parameters, shared by the API and the wire.

A fault request is checked completely before anything changes, so a typo in a parameter
leaves the pump exactly as it was.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from pumpsim.errors import FaultParameterError, UnknownFaultError
from pumpsim.registers import AlarmFlag

MAX_RUNAWAY_FACTOR = 100
MAX_LATENCY_MS = 60_000


class Fault(enum.StrEnum):
    OCCLUSION_DOWNSTREAM = "occlusion-downstream"
    OCCLUSION_UPSTREAM = "occlusion-upstream"
    AIR_IN_LINE = "air-in-line"
    DOOR_OPEN = "door-open"
    SYSTEM_FAULT = "system-fault"
    LOW_BATTERY = "low-battery"
    BATTERY_DEPLETED = "battery-depleted"
    RUNAWAY = "runaway"
    STUCK_VOLUME = "stuck-volume"
    IGNORE_COMMANDS = "ignore-commands"
    DROP_LINK = "drop-link"
    LATENCY = "latency"
    CORRUPT_RTU = "corrupt-rtu"
    TRUNCATE_RTU = "truncate-rtu"
    NOISE_RTU = "noise-rtu"
    FOREIGN_FRAME_RTU = "foreign-frame-rtu"
    RESET_TCP = "reset-tcp"
    HALF_OPEN_TCP = "half-open-tcp"
    SILENT_TCP = "silent-tcp"


# Faults that are physical alarm conditions of the pump.
CONDITION_OF: dict[Fault, AlarmFlag] = {
    Fault.OCCLUSION_DOWNSTREAM: AlarmFlag.OCCLUSION_DOWNSTREAM,
    Fault.OCCLUSION_UPSTREAM: AlarmFlag.OCCLUSION_UPSTREAM,
    Fault.AIR_IN_LINE: AlarmFlag.AIR_IN_LINE,
    Fault.DOOR_OPEN: AlarmFlag.DOOR_OPEN,
    Fault.SYSTEM_FAULT: AlarmFlag.SYSTEM_FAULT,
    Fault.BATTERY_DEPLETED: AlarmFlag.BATTERY_DEPLETED,
}
WIRE_FAULTS = frozenset(
    {
        Fault.DROP_LINK,
        Fault.LATENCY,
        Fault.CORRUPT_RTU,
        Fault.TRUNCATE_RTU,
        Fault.NOISE_RTU,
        Fault.FOREIGN_FRAME_RTU,
        Fault.RESET_TCP,
        Fault.HALF_OPEN_TCP,
        Fault.SILENT_TCP,
    }
)
LINK_FAULTS = WIRE_FAULTS - {Fault.DROP_LINK, Fault.LATENCY, Fault.CORRUPT_RTU}
"""The finer wire faults beyond a lost link, latency and corrupted RTU frames: truncated, noisy
and foreign RTU frames, TCP reset, half-open and silent connections; their outcomes are
tested in tests/wire (docs/safety/wire-faults.md)."""

DIRECTIONS = ("request", "reply", "both")
"""Which frames a directional wire fault hits: the client's requests, the pump's replies."""

# Faults that fire frame by frame: on every frame, with a probability, or the next N.
_COUNTED = frozenset(
    {Fault.CORRUPT_RTU, Fault.TRUNCATE_RTU, Fault.NOISE_RTU, Fault.FOREIGN_FRAME_RTU}
)
_ALLOWED_PARAMS: dict[Fault, frozenset[str]] = {
    Fault.RUNAWAY: frozenset({"factor"}),
    Fault.LATENCY: frozenset({"ms", "address"}),
    Fault.CORRUPT_RTU: frozenset({"probability", "count", "direction", "address"}),
    Fault.TRUNCATE_RTU: frozenset({"probability", "count", "direction", "address"}),
    Fault.NOISE_RTU: frozenset({"probability", "count"}),
    Fault.FOREIGN_FRAME_RTU: frozenset({"probability", "count"}),
    Fault.RESET_TCP: frozenset({"count", "direction", "address"}),
    Fault.HALF_OPEN_TCP: frozenset({"count"}),
}


@dataclass(frozen=True)
class FaultRequest:
    """A checked fault request: which fault, on or off, and its normalised parameters."""

    fault: Fault
    on: bool
    factor: Fraction | None = None
    latency_ms: int | None = None
    corrupt_probability: float | None = None
    corrupt_count: int | None = None
    direction: str | None = None
    """request, reply or both for a directional wire fault; None for the others."""
    address: int | None = None
    """Only frames that carry this start register (a request, or a write's echo)."""

    @property
    def probability(self) -> float | None:
        return self.corrupt_probability

    @property
    def count(self) -> int | None:
        return self.corrupt_count


def parse_fault(name: str | Fault) -> Fault:
    try:
        return Fault(name)
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise UnknownFaultError(f"unknown fault {name!r}; known: {known}") from None


def _to_fraction(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal | Fraction):
        raise FaultParameterError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise FaultParameterError(f"{name} must be finite, got {value!r}")
    try:
        # Through Decimal(str) so 1.1 means 11/10, as the operator typed it.
        return Fraction(Decimal(str(value)) if not isinstance(value, Fraction) else value)
    except (InvalidOperation, ValueError):
        raise FaultParameterError(f"{name} must be a number, got {value!r}") from None


def _to_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FaultParameterError(f"{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise FaultParameterError(f"{name} must be an integer, got {value!r}") from None


def check_fault(fault: str | Fault, on: bool, params: dict[str, object]) -> FaultRequest:
    """Validate a fault request; raises before anything is applied."""
    which = parse_fault(fault)
    given = {k for k, v in params.items() if v is not None}
    allowed = _ALLOWED_PARAMS.get(which, frozenset()) if on else frozenset()
    extra = given - allowed
    if extra:
        raise FaultParameterError(
            f"fault {which.value} {'on' if on else 'off'} takes no parameter(s) "
            f"{', '.join(sorted(extra))}"
        )
    if not on:
        return FaultRequest(which, False)
    if which is Fault.RUNAWAY:
        if "factor" not in given:
            raise FaultParameterError("runaway needs factor (actual rate = factor × setpoint)")
        factor = _to_fraction("factor", params["factor"])
        if not 0 < factor <= MAX_RUNAWAY_FACTOR:
            raise FaultParameterError(
                f"runaway factor must be in (0, {MAX_RUNAWAY_FACTOR}], got {factor}"
            )
        return FaultRequest(which, True, factor=factor)
    if which is Fault.LATENCY:
        if "ms" not in given:
            raise FaultParameterError("latency needs ms")
        latency_ms = _to_int("ms", params["ms"])
        if not 0 < latency_ms <= MAX_LATENCY_MS:
            raise FaultParameterError(
                f"latency ms must be in 1..{MAX_LATENCY_MS}, got {latency_ms}"
            )
        return FaultRequest(
            which, True, latency_ms=latency_ms, address=_address(which, given, params)
        )
    if which in _COUNTED or which in (Fault.RESET_TCP, Fault.HALF_OPEN_TCP):
        return _counted(which, given, params)
    return FaultRequest(which, True)


def _direction(which: Fault, params: dict[str, object]) -> str:
    value = params.get("direction")
    if value is None:
        return "reply"
    if value not in DIRECTIONS or (which is Fault.RESET_TCP and value == "both"):
        choices = DIRECTIONS[:2] if which is Fault.RESET_TCP else DIRECTIONS
        raise FaultParameterError(
            f"{which.value} direction must be one of {', '.join(choices)}, got {value!r}"
        )
    return str(value)


def _address(which: Fault, given: set[str], params: dict[str, object]) -> int | None:
    if "address" not in given:
        return None
    address = _to_int("address", params["address"])
    if not 0 <= address <= 0xFFFF:
        raise FaultParameterError(f"{which.value} address must be in 0..65535, got {address}")
    return address


def _counted(which: Fault, given: set[str], params: dict[str, object]) -> FaultRequest:
    """A frame-by-frame wire fault: every frame, each with `probability`, or the next `count`."""
    direction = _direction(which, params) if "direction" in _ALLOWED_PARAMS[which] else None
    address = _address(which, given, params)
    if given >= {"probability", "count"}:
        raise FaultParameterError(f"{which.value} takes probability or count, not both")
    if "probability" in given:
        probability = float(_to_fraction("probability", params["probability"]))
        if not 0 < probability <= 1:
            raise FaultParameterError(f"probability must be in (0, 1], got {probability}")
        return FaultRequest(
            which, True, corrupt_probability=probability, direction=direction, address=address
        )
    if "count" in given:
        count = _to_int("count", params["count"])
        if count < 1:
            raise FaultParameterError(f"count must be at least 1, got {count}")
        return FaultRequest(which, True, corrupt_count=count, direction=direction, address=address)
    return FaultRequest(which, True, direction=direction, address=address)

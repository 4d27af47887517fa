"""The kernel's own view of a pump: what it needs to judge a start or a tick, nothing more.

``safety`` must not import ``pumpd`` (the kernel is reviewed alone), so the controller
translates its driver status into this snapshot. Keeping it small keeps the translation
auditable: mode, alarm and warning flags, actual rate, the volume counters, and the
pump's own evidence of a restart (an uptime, a switch-on count or the power-on resets it
reported: each pump kind gives one of them, ``PumpCapabilities.restart_evidence``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class InvalidPumpSnapshot(ValueError):
    """A pump snapshot whose fields are of the wrong type or impossible."""


class PumpMode(enum.Enum):
    """The pump's own operating mode."""

    IDLE = "idle"
    PRIMING = "priming"
    INFUSING = "infusing"
    PAUSED = "paused"
    KVO = "kvo"
    ALARM = "alarm"

    @property
    def delivers(self) -> bool:
        """True for the modes in which fluid moves."""
        return self in _DELIVERING


_DELIVERING = frozenset({PumpMode.PRIMING, PumpMode.INFUSING, PumpMode.KVO})


class PumpAlarm(enum.Flag):
    """Alarm conditions reported by the pump; any one of them means the pump must not run."""

    NONE = 0
    OCCLUSION_DOWNSTREAM = enum.auto()
    OCCLUSION_UPSTREAM = enum.auto()
    AIR_IN_LINE = enum.auto()
    DOOR_OPEN = enum.auto()
    SYSTEM_FAULT = enum.auto()
    COMM_LOSS = enum.auto()
    BATTERY_DEPLETED = enum.auto()


class PumpWarning(enum.Flag):
    """Conditions the pump reports that do not stop it by themselves."""

    NONE = 0
    LOW_BATTERY = enum.auto()
    VTBI_COMPLETE = enum.auto()


def flag_names(flags: PumpAlarm | PumpWarning) -> tuple[str, ...]:
    """Lower-case names of the set members, in declaration order (for codes and messages)."""
    return tuple(str(m.name).lower() for m in flags)


# A rate no pump reaches; beyond it the reading is corrupt.
MAX_RATE_ML_H = Decimal(100_000)
# A 64-bit counter's range; anything larger did not come off the wire.
MAX_COUNT = 2**64 - 1
MAX_CMD_SEQ = 65535


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidPumpSnapshot(f"{name} must be an integer in 0..2**64-1, got {value!r}")


@dataclass(frozen=True, slots=True)
class PumpSnapshot:
    """One status read of the pump, already decoded from the wire.

    ``volume_infused_ul`` counts what the pump believes went to the patient (priming not
    included); ``volume_primed_ul`` what went through the line while priming. A restart,
    after which the pump's counters and program cannot be trusted, shows by whichever
    evidence the pump itself gives (never by the controller's own connect, which a daemon
    restart renews): ``uptime_s`` going down, ``switch_on_count`` changing, or
    ``resets_seen`` rising. ``uptime_s`` and ``switch_on_count`` are None where the pump
    has no such register.
    """

    mode: PumpMode
    alarms: PumpAlarm
    warnings: PumpWarning
    rate_actual_ml_h: Decimal
    volume_infused_ul: int
    volume_primed_ul: int
    uptime_s: int | None
    last_cmd_seq: int = 0
    """The sequence number of the last command the pump took; a restarted pump reports 0,
    which a controller never sends (GIP-MB1: 1..65535)."""
    switch_on_count: int | None = None
    """The pump's own count of power-ups (a register it keeps across power loss)."""
    resets_seen: int = 0
    """Power-on resets the pump reported (New Era ``A?R``) since the driver connected."""

    def __post_init__(self) -> None:
        if not isinstance(self.mode, PumpMode):
            raise InvalidPumpSnapshot(f"mode must be a PumpMode, got {self.mode!r}")
        if not isinstance(self.alarms, PumpAlarm):
            raise InvalidPumpSnapshot(f"alarms must be PumpAlarm flags, got {self.alarms!r}")
        if not isinstance(self.warnings, PumpWarning):
            raise InvalidPumpSnapshot(f"warnings must be PumpWarning flags, got {self.warnings!r}")
        rate = self.rate_actual_ml_h
        if not isinstance(rate, Decimal) or not rate.is_finite() or not 0 <= rate <= MAX_RATE_ML_H:
            raise InvalidPumpSnapshot(
                f"rate_actual_ml_h must be a Decimal in 0..{MAX_RATE_ML_H} mL/h, got {rate!r}"
            )
        _check_count("volume_infused_ul", self.volume_infused_ul)
        _check_count("volume_primed_ul", self.volume_primed_ul)
        if self.uptime_s is not None:
            _check_count("uptime_s", self.uptime_s)
        if self.switch_on_count is not None:
            _check_count("switch_on_count", self.switch_on_count)
        _check_count("resets_seen", self.resets_seen)
        seq = self.last_cmd_seq
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_CMD_SEQ:
            raise InvalidPumpSnapshot(f"last_cmd_seq must be an integer in 0..65535, got {seq!r}")

    @property
    def in_alarm(self) -> bool:
        """True when any alarm flag is set or the pump says it is in its alarm mode."""
        return bool(self.alarms) or self.mode is PumpMode.ALARM


def restart_evidence(previous: PumpSnapshot, current: PumpSnapshot) -> str | None:
    """How ``current`` shows that the pump restarted since ``previous``, or None."""
    return restart_evidence_of(
        previous.uptime_s,
        previous.last_cmd_seq,
        current.uptime_s,
        current.last_cmd_seq,
        switch_on_before=previous.switch_on_count,
        switch_on=current.switch_on_count,
        resets_before=previous.resets_seen,
        resets=current.resets_seen,
    )


def restart_evidence_of(
    uptime_before_s: int | None,
    last_cmd_seq_before: int,
    uptime_s: int | None,
    last_cmd_seq: int,
    *,
    switch_on_before: int | None = None,
    switch_on: int | None = None,
    resets_before: int = 0,
    resets: int = 0,
) -> str | None:
    """The same judgement on the bare readings (restart recovery has them from a
    checkpoint): its uptime fell; or it forgot the last command it took (its command
    number back to 0). The second catches a restart that a late reading would hide from
    the first: a pump up for a minute, restarted, and read two minutes later shows a
    *higher* uptime.

    A pump without an uptime shows a restart by its switch-on count changing (any
    change: a counter that wrapped or was swapped with the pump proves as much), or by a
    power-on reset it reported. Evidence that was there and is gone (an uptime or a
    switch-on count no longer reported) is not "no restart": nothing then shows that the
    pump kept its state, so it is judged as lost.
    """
    if uptime_before_s is not None:
        if uptime_s is None:
            return f"its uptime ({uptime_before_s} s before) is no longer reported"
        if uptime_s < uptime_before_s:
            return f"uptime {uptime_before_s} s → {uptime_s} s"
    if last_cmd_seq_before != 0 and last_cmd_seq == 0:
        return f"it no longer knows its last command, number {last_cmd_seq_before}"
    if switch_on_before is not None:
        if switch_on is None:
            return f"its switch-on count ({switch_on_before} before) can no longer be read"
        if switch_on != switch_on_before:
            return f"switch-on count {switch_on_before} → {switch_on}"
    if resets > resets_before:
        return "it reported a power-on reset"
    return None

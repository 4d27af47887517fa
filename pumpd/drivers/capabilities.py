"""What a pump can do and what it can report, declared once per driver or profile.

The driver contract (`PumpStatus`, `PumpDriver`) was shaped after one register map; real
pumps differ. A syringe pump has no pressure sensor and no battery reading, a dosing pump
has no volume-to-be-infused and stops on a communication timeout only if its panel says
so. `PumpCapabilities` says which of these a pump has, so that pumpd does what the pump
cannot (the daemon's own stop at the plan's volume), refuses what cannot be made safe (live
use without a pump-side watchdog, unless that risk is accepted in the configuration), and
never shows an absent reading as a measured zero.

A driver declares its record in code (`NewEraPumpDriver.capabilities`); a Modbus profile
declares it in its TOML as a ``[capabilities]`` table, validated by `parse_capabilities`
with errors naming the key (docs/driver.md, "Capabilities").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from pumpd.drivers.base import AlarmFlag, ProfileError

NOT_REPORTED = "not reported by this pump"
"""What every view shows in place of a reading the pump cannot give."""


class Confirmation(enum.StrEnum):
    """How the driver knows a command was executed."""

    SEQUENCE_ECHO = "sequence-echo"
    """The pump echoes the command's sequence number with its result (GIP-MB1)."""
    STATE_READBACK = "state-readback"
    """The driver reads the pump's state back and sees the command's effect (New Era)."""


class MaxRateSource(enum.StrEnum):
    """Where the pump's maximum rate comes from."""

    REGISTER = "register"
    """The pump reports it in every status (`PumpStatus.max_rate_ml_h`)."""
    SYRINGE_TABLE = "syringe-table"
    """Derived from the syringe's inside diameter and the pump's fastest plunger travel."""
    PROFILE = "profile"
    """A fixed figure from the pump's manual, written in the register-map profile."""
    CONFIG = "config"
    """Given in the site's configuration for this pump."""
    PUMP_REFUSES = "pump-refuses"
    """No figure is known before programming: the pump refuses a rate beyond its range
    when it is written (New Era ``?OOR``), and the driver reads every setpoint back."""

    @property
    def has_figure(self) -> bool:
        """Whether the record itself carries the figure (not read live, not pump-checked)."""
        return self not in (MaxRateSource.REGISTER, MaxRateSource.PUMP_REFUSES)


class WatchdogSetter(enum.StrEnum):
    """Who sets the pump-side communication watchdog's timeout."""

    PUMPD = "pumpd"
    """Armed by pumpd over the link from ``heartbeat_timeout_s`` (GIP-MB1, New Era SAF)."""
    PUMP_PANEL = "pump-panel"
    """Set at the pump and only read over the link; pumpd checks it against
    ``heartbeat_timeout_s`` and refuses live use when it is off or longer."""


class RestartEvidence(enum.StrEnum):
    """What the pump itself gives to show it restarted (lost power, rebooted).

    Never the driver's own connect: pumpd restarting renews that, and a pump that kept
    running would read as restarted (its volume recounted, the session stopped)."""

    UPTIME_REGISTER = "uptime-register"
    """It reports its uptime, which falls on a restart, and a command number it forgets
    (GIP-MB1): ``PumpStatus.uptime_s``, ``last_cmd_seq``."""
    SWITCH_ON_COUNTER = "switch-on-counter"
    """It keeps a count of its power-ups across power loss (DULCO flex register 1026): a
    change of it is a restart; a count that was read and can no longer be is judged as
    lost state (``PumpStatus.switch_on_count``)."""
    RESET_ALARM = "reset-alarm"
    """It reports a power-on reset as an alarm to the next request, whoever sends it (New
    Era ``A?R``): ``PumpStatus.resets_seen`` counts them from the driver's connect."""


@dataclass(frozen=True, slots=True)
class CommWatchdog:
    """The pump stops by itself when the link is quiet for the timeout (seconds)."""

    min_s: Decimal
    max_s: Decimal
    set_by: WatchdogSetter

    def __post_init__(self) -> None:
        if not (isinstance(self.min_s, Decimal) and isinstance(self.max_s, Decimal)):
            raise ValueError("watchdog min_s and max_s must be Decimal seconds")
        if not self.min_s.is_finite() or not self.max_s.is_finite():
            raise ValueError("watchdog min_s and max_s must be finite")
        if self.min_s <= 0:
            raise ValueError(f"watchdog min_s={self.min_s} must be above 0 (0 means off)")
        if self.max_s < self.min_s:
            raise ValueError(f"watchdog max_s={self.max_s} is below min_s={self.min_s}")

    def accepts(self, seconds: Decimal) -> bool:
        return self.min_s <= seconds <= self.max_s


@dataclass(frozen=True, slots=True)
class PumpCapabilities:
    """One pump kind's abilities. Every field is a fact the safety argument relies on."""

    confirmation: Confirmation
    pump_vtbi_stop: bool
    """The pump stops by itself at the programmed volume. Without it the daemon's stop at
    the plan's volume is the primary stop, not the backstop."""
    watchdog: CommWatchdog | None
    """None: the pump goes on delivering when the link (or pumpd) dies."""
    detected_alarms: AlarmFlag
    """The alarm causes the pump itself detects; anything else only pumpd can notice."""
    priming: bool
    kvo: bool
    reports_pressure: bool
    reports_battery: bool
    max_rate_source: MaxRateSource
    restart_evidence: RestartEvidence
    """How a restart of the pump shows; pumpd judges a restart on this evidence only."""
    max_rate_ml_h: Decimal | None = None
    """The fixed maximum; None exactly when the source has no figure of its own (REGISTER:
    read with each status; PUMP_REFUSES: checked by the pump when a rate is written)."""

    def __post_init__(self) -> None:
        if not self.max_rate_source.has_figure:
            if self.max_rate_ml_h is not None:
                raise ValueError(
                    f"max_rate_ml_h must be absent with max_rate_source {self.max_rate_source}"
                )
        elif self.max_rate_ml_h is None:
            raise ValueError(f"max_rate_source {self.max_rate_source} needs max_rate_ml_h")
        elif not self.max_rate_ml_h.is_finite() or self.max_rate_ml_h <= 0:
            raise ValueError(f"max_rate_ml_h={self.max_rate_ml_h} must be positive")
        if self.detected_alarms & AlarmFlag.UNKNOWN:
            raise ValueError("UNKNOWN is not an alarm a pump detects; name the causes")

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the control socket and the audit show."""
        wd = self.watchdog
        return {
            "confirmation": self.confirmation.value,
            "pump_vtbi_stop": self.pump_vtbi_stop,
            "watchdog": None
            if wd is None
            else {"min_s": str(wd.min_s), "max_s": str(wd.max_s), "set_by": wd.set_by.value},
            "detected_alarms": alarm_names(self.detected_alarms),
            "priming": self.priming,
            "kvo": self.kvo,
            "reports_pressure": self.reports_pressure,
            "reports_battery": self.reports_battery,
            "max_rate_source": self.max_rate_source.value,
            "restart_evidence": self.restart_evidence.value,
            "max_rate_ml_h": None if self.max_rate_ml_h is None else str(self.max_rate_ml_h),
        }


def alarm_names(flags: AlarmFlag) -> list[str]:
    """The named members of ``flags`` in bit order (for views and TOML)."""
    return [m.name for m in AlarmFlag if m and m.name and flags & m]


# --------------------------------------------------------------- the profile's table

_DETECTABLE = Literal[
    "OCCLUSION_DOWNSTREAM",
    "OCCLUSION_UPSTREAM",
    "AIR_IN_LINE",
    "DOOR_OPEN",
    "SYSTEM_FAULT",
    "COMM_LOSS",
    "BATTERY_DEPLETED",
]
_SECONDS = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchdogTable(_Table):
    min_s: _SECONDS
    max_s: _SECONDS
    set_by: Literal["pumpd", "pump-panel"]


class CapabilitiesTable(_Table):
    """The ``[capabilities]`` table of a register-map profile, as written."""

    confirmation: Literal["sequence-echo", "state-readback"]
    pump_vtbi_stop: StrictBool
    watchdog: WatchdogTable | Literal[False]
    """A table, or ``false`` when the pump has none (then live use needs the site's
    ``accept_no_pump_watchdog = true``)."""
    detected_alarms: list[_DETECTABLE]
    priming: StrictBool
    kvo: StrictBool
    reports_pressure: StrictBool
    reports_battery: StrictBool
    max_rate_source: Literal["register", "profile", "config", "syringe-table", "pump-refuses"]
    restart_evidence: Literal["uptime-register", "switch-on-counter", "reset-alarm"]
    max_rate_ml_h: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None

    def record(self) -> PumpCapabilities:
        flags = AlarmFlag.NONE
        for name in self.detected_alarms:
            flags |= AlarmFlag[name]
        wd = self.watchdog
        return PumpCapabilities(
            confirmation=Confirmation(self.confirmation),
            pump_vtbi_stop=self.pump_vtbi_stop,
            watchdog=None
            if wd is False
            else CommWatchdog(Decimal(wd.min_s), Decimal(wd.max_s), WatchdogSetter(wd.set_by)),
            detected_alarms=flags,
            priming=self.priming,
            kvo=self.kvo,
            reports_pressure=self.reports_pressure,
            reports_battery=self.reports_battery,
            max_rate_source=MaxRateSource(self.max_rate_source),
            restart_evidence=RestartEvidence(self.restart_evidence),
            max_rate_ml_h=self.max_rate_ml_h,
        )


def parse_capabilities(data: Mapping[str, Any], key: str = "capabilities") -> PumpCapabilities:
    """Validate a ``[capabilities]`` table; raise ProfileError naming the first bad key."""
    try:
        table = CapabilitiesTable.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"] if not str(p)[:1].isupper() and "[" not in str(p)]
        raise ProfileError(".".join([key, *loc]), err["msg"]) from None
    return record_of(table, key)


def record_of(table: CapabilitiesTable, key: str = "capabilities") -> PumpCapabilities:
    """The record of an already validated table; the cross-field rules raise ProfileError."""
    if len(set(table.detected_alarms)) != len(table.detected_alarms):
        raise ProfileError(f"{key}.detected_alarms", "names an alarm twice")
    try:
        return table.record()
    except ValueError as exc:
        text = str(exc)
        field = "watchdog" if text.startswith("watchdog") else "max_rate_ml_h"
        raise ProfileError(f"{key}.{field}", text) from None

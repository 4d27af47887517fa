"""What pumpd does, or refuses, because of what a pump cannot do.

A pump declares its abilities (the driver's capability record); the controller hands the
kernel the few facts that decide patient safety as plain values, and these rules say:

- :func:`volume_stop_role`: a pump that stops by itself at its programmed volume has
  pumpd's stop at the plan's volume as a backstop, and a pump seen running past it is at
  fault (alarm). A pump without that stop relies on pumpd's stop as the primary one:
  running at the plan's volume is then expected, not a fault;
- :func:`next_read_in_s`: for that primary stop, pumpd reads the pump at the moment the
  plan's volume is due rather than at the next poll, so the overshoot is a round trip of
  flow, not a poll period of it;
- :func:`live_use`: a pump without a pump-side communication watchdog keeps delivering
  when the link or pumpd dies; it is refused for live use unless the site's configuration
  accepts that residual risk for that pump (and the acceptance is recorded);
- :func:`program_fit`: a plan asking for keep-vein-open, or a prime, of a pump that has
  none is refused before anything is written (the pump would refuse or ignore it).

Pure: no I/O, no clock, no imports from ``pumpd``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal

from safety.verdicts import Severity, Verdict

READ_AHEAD_FLOOR = 10
"""The earliest read of the primary stop is one tenth of a poll period away: the last
reads before the volume is due come at most ten times as often as the normal poll."""
_UL_PER_S_PER_ML_H = Decimal(1000) / Decimal(3600)


class InvalidAbilities(ValueError):
    """A capability fact of the wrong type (a caller bug, not a patient finding)."""


@dataclass(frozen=True, slots=True)
class PumpAbilities:
    """The capability facts the kernel's rules use, as plain values."""

    stops_at_vtbi: bool
    """The pump stops by itself when its programmed volume is delivered."""
    has_comm_watchdog: bool
    """The pump stops by itself when the link is quiet for its timeout."""
    has_kvo: bool
    can_prime: bool

    def __post_init__(self) -> None:
        for name in ("stops_at_vtbi", "has_comm_watchdog", "has_kvo", "can_prime"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidAbilities(f"{name} must be a bool, got {getattr(self, name)!r}")


class VolumeStop(enum.Enum):
    """Which stop at the plan's volume the safety argument rests on."""

    BACKSTOP = "backstop"
    """The pump's own stop is primary; pumpd's stop catches a pump that misses it."""
    PRIMARY = "primary"
    """The pump has no stop of its own: pumpd's stop is the one that ends the infusion."""


def volume_stop_role(abilities: PumpAbilities) -> VolumeStop:
    return VolumeStop.BACKSTOP if abilities.stops_at_vtbi else VolumeStop.PRIMARY


def running_past_volume_is_fault(abilities: PumpAbilities) -> bool:
    """A pump still delivering when pumpd stops it at the plan's volume has failed its own
    stop only if it has one; otherwise that is how the infusion is meant to end."""
    return volume_stop_role(abilities) is VolumeStop.BACKSTOP


def next_read_in_s(
    abilities: PumpAbilities, poll_period_s: float, remaining_ul: int, rate_ml_h: Decimal
) -> float:
    """Seconds until the controller should read the pump again.

    The poll period, except where pumpd's stop is primary and the plan's volume falls due
    before the next poll at the commanded rate: then the read comes when it is due (never
    sooner than a tenth of a poll period, so a pump whose counter lags cannot make the
    controller spin).
    """
    if not math.isfinite(poll_period_s) or poll_period_s <= 0:
        raise InvalidAbilities(f"poll_period_s must be finite and > 0, got {poll_period_s!r}")
    if not isinstance(rate_ml_h, Decimal) or not rate_ml_h.is_finite():
        raise InvalidAbilities(f"rate_ml_h must be a finite Decimal, got {rate_ml_h!r}")
    if volume_stop_role(abilities) is VolumeStop.BACKSTOP or rate_ml_h <= 0 or remaining_ul <= 0:
        return poll_period_s
    due_s = float(Decimal(remaining_ul) / (rate_ml_h * _UL_PER_S_PER_ML_H))
    return min(poll_period_s, max(poll_period_s / READ_AHEAD_FLOOR, due_s))


def live_use(
    abilities: PumpAbilities, *, simulation: bool, no_watchdog_accepted: bool
) -> list[Verdict]:
    """Whether this pump may deliver to a patient.

    Without a pump-side watchdog, a crash of pumpd, a cut cable or a hung host leaves the
    pump delivering at its last rate with nobody supervising it. That is refused for live
    use; the site may accept the risk for one pump in its configuration
    (``accept_no_pump_watchdog = true``), and the acceptance is a note every program
    carries into the audit. In simulation nobody is at risk.
    """
    if abilities.has_comm_watchdog or simulation:
        return []
    if no_watchdog_accepted:
        return [
            Verdict(
                "pump.no_watchdog_accepted",
                Severity.NOTE,
                "This pump has no watchdog of its own: if pumpd or its link fails it goes "
                "on delivering; the site accepted this risk in its configuration.",
                "pump.watchdog_required",
            )
        ]
    return [
        Verdict(
            "pump.no_watchdog",
            Severity.HARD,
            "This pump has no watchdog of its own: if pumpd or its link fails it goes on "
            "delivering, so it is not used for a patient unless the site accepts that risk "
            "(accept_no_pump_watchdog = true for this pump).",
            "pump.watchdog_required",
        )
    ]


def program_fit(
    abilities: PumpAbilities, kvo_rate_ml_h: Decimal, prime_volume_ul: int
) -> list[Verdict]:
    """A plan this pump can carry out: no keep-vein-open or prime it does not have.

    A pump without KVO stops at the volume where the protocol wanted the vein kept open
    (or refuses the setpoint); a pump that cannot prime would leave the line dry, or the
    prime would be improvised as an infusion. Either is refused before anything is sent.
    A prime of 0 µL means the line is primed by hand, which any pump allows.
    """
    found: list[Verdict] = []
    if kvo_rate_ml_h > 0 and not abilities.has_kvo:
        found.append(
            Verdict(
                "pump.no_kvo",
                Severity.HARD,
                f"The protocol keeps the vein open at {kvo_rate_ml_h} mL/h after the volume, "
                "and this pump has no keep-vein-open rate; use a pump that has one.",
                "pump.capability_fit",
            )
        )
    if prime_volume_ul > 0 and not abilities.can_prime:
        found.append(
            Verdict(
                "pump.no_priming",
                Severity.HARD,
                f"The protocol primes {prime_volume_ul} µL with the pump, and this pump cannot "
                "prime; use a pump that can.",
                "pump.capability_fit",
            )
        )
    return found

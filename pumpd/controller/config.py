"""How one pump is supervised: poll rate, the pump's own failsafe, command timeouts.

Durations that the controller measures are in *clock* seconds (the :class:`~pumpd.clock.Clock`
the daemon runs on), so a simulation at a time scale polls and times out in simulated time.
The driver's own timeouts are real seconds: they bound a wire exchange, which a time scale
does not speed up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pumpd.clock import Clock, ScaledClock
from safety.syringe import SyringeCapacity
from safety.tick import DEFAULT_POLICY, SupervisionPolicy


class InvalidControllerConfig(ValueError):
    """A controller setting that would leave a pump unsupervised or unprotected."""


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """One pump's supervision settings.

    ``heartbeat_timeout_s`` is written into the pump (whole seconds of the pump's time): if
    the daemon dies, the pump stops itself after that long. ``intent_wait_s`` bounds how long
    a start, prime, resume or rate change waits for its intent to be durable (not sent
    without it), and how long after a STOP or PAUSE has gone out its intent may take before
    the audit alarm (a halt is never held back for its intent).
    """

    pump_id: str
    poll_period_s: float = 0.1
    heartbeat_timeout_s: int = 10
    command_timeout_s: float = 2.0
    stop_attempts: int = 3
    intent_wait_s: float = 0.5
    checkpoint_every_s: float = 10.0
    policy: SupervisionPolicy = field(default=DEFAULT_POLICY)
    syringe: SyringeCapacity | None = None
    """The syringe a syringe pump holds (None: the pump is fed from a bag); every order and
    moving command on this pump is checked against it (``safety.syringe``)."""
    simulation: bool = False
    """Whether no patient can be at risk (the daemon's ``simulation``); live by default."""
    accept_no_pump_watchdog: bool = False
    """The site accepts that this pump has no watchdog of its own (audited at each use)."""

    def __post_init__(self) -> None:
        if not isinstance(self.pump_id, str) or not self.pump_id.strip():
            raise InvalidControllerConfig(f"pump_id must be a non-empty string: {self.pump_id!r}")
        for name in ("poll_period_s", "command_timeout_s", "intent_wait_s", "checkpoint_every_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidControllerConfig(f"{name} must be a number of seconds: {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise InvalidControllerConfig(f"{name} must be finite and > 0: {value!r}")
        hb = self.heartbeat_timeout_s
        if isinstance(hb, bool) or not isinstance(hb, int) or not 1 <= hb <= 0xFFFF:
            # 0 would switch the pump's failsafe off: never allowed under supervision.
            raise InvalidControllerConfig(f"heartbeat_timeout_s must be 1..65535 s, got {hb!r}")
        if self.heartbeat_timeout_s <= self.poll_period_s:
            raise InvalidControllerConfig(
                "heartbeat_timeout_s must be longer than one poll period, or the pump's "
                "failsafe trips between two heartbeats"
            )
        if isinstance(self.stop_attempts, bool) or not 1 <= self.stop_attempts <= 10:
            raise InvalidControllerConfig(f"stop_attempts must be 1..10: {self.stop_attempts!r}")
        if not isinstance(self.policy, SupervisionPolicy):
            raise InvalidControllerConfig(f"policy must be a SupervisionPolicy: {self.policy!r}")


def real_seconds(clock: Clock, clock_s: float) -> float:
    """How long to sleep in real time for ``clock_s`` of the controller's clock."""
    if isinstance(clock, ScaledClock):
        return clock_s / clock.scale
    return clock_s

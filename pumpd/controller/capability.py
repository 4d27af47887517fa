"""The pump's capability record, applied by the controller through the kernel's rules.

The controller holds one `CapabilityGate` per pump. It turns the driver's record into the
kernel's plain facts (`safety.capability.PumpAbilities`) once, and answers the few
questions the controller asks on the way: may this step go ahead on this pump, is a pump
running past the plan's volume at fault, when is the next read due, which maximum rate
applies, which accepted residual risk a program or start writes into the audit, and how
long the pump runs on by itself when pumpd falls silent (its watchdog in wall-clock
seconds, for the kernel's run-on refusal). The decisions themselves are the kernel's
(safety/capability.py, safety/runon.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from pumpd.audit import Actor, NewEvent
from pumpd.clock import Clock
from pumpd.controller.config import ControllerConfig, real_seconds
from pumpd.controller.journal import Journal
from pumpd.drivers import (
    PumpCapabilities,
    PumpDriver,
    PumpStatus,
    ReadsPumpTimeout,
    WatchdogSetter,
)
from pumpd.session import PumpCommand, Session, Step
from safety.capability import (
    PumpAbilities,
    VolumeStop,
    live_use,
    next_read_in_s,
    program_fit,
    running_past_volume_is_fault,
    volume_stop_role,
)
from safety.plan import Plan
from safety.runon import watchdog_run_on
from safety.tick import DEFAULT_POLICY
from safety.verdicts import Severity, Verdict

ACCEPT_NO_WATCHDOG_KEY = "accept_no_pump_watchdog"
"""The ``[[pump]]`` key by which a site accepts a pump without a watchdog of its own."""


def abilities_of(caps: PumpCapabilities) -> PumpAbilities:
    """The kernel's facts from a driver's capability record."""
    return PumpAbilities(
        stops_at_vtbi=caps.pump_vtbi_stop,
        has_comm_watchdog=caps.watchdog is not None,
        has_kvo=caps.kvo,
        can_prime=caps.priming,
    )


@dataclass(frozen=True, slots=True)
class AcceptedRisk:
    """A residual risk the site accepted for this pump, as the audit records it."""

    reason_code: str
    detail: str
    config_key: str


class CapabilityGate:
    """One pump's capabilities, and the kernel's rules on them, for its controller."""

    def __init__(
        self,
        caps: PumpCapabilities,
        *,
        simulation: bool,
        no_watchdog_accepted: bool,
        watchdog_s: Callable[[], Decimal | None] = lambda: None,
        overrun_ul: int = DEFAULT_POLICY.vtbi_overrun_ul,
    ) -> None:
        self.capabilities = caps
        self.abilities = abilities_of(caps)
        self.volume_stop: VolumeStop = volume_stop_role(self.abilities)
        """Whose stop at the plan's volume ends the infusion: fixed by the record, so
        judged once here rather than at every tick."""
        self._live = live_use(
            self.abilities, simulation=simulation, no_watchdog_accepted=no_watchdog_accepted
        )
        self._watchdog_s = watchdog_s
        self._overrun_ul = overrun_ul

    @classmethod
    def of(cls, driver: PumpDriver, config: ControllerConfig, clock: Clock) -> CapabilityGate:
        """The gate of ``driver``'s pump under ``config``, its watchdog read as it stands."""
        caps = driver.capabilities
        return cls(
            caps,
            simulation=config.simulation,
            no_watchdog_accepted=config.accept_no_pump_watchdog,
            watchdog_s=lambda: watchdog_wall_s(caps, driver, config, clock),
            overrun_ul=config.policy.vtbi_overrun_ul,
        )

    def refusals(self, plan: Plan, *, prime_volume_ul: int) -> list[Verdict]:
        """The kernel's hard verdicts against moving fluid with this plan on this pump:
        live use, what the pump cannot do, and its run-on past the volume at the plan's
        rate when pumpd's stop is primary."""
        found = [v for v in self._live if v.severity is Severity.HARD]
        found += program_fit(self.abilities, plan.kvo_rate_ml_h, prime_volume_ul)
        return found + watchdog_run_on(
            self.abilities,
            watchdog_s=self._watchdog_s(),
            rate_ml_h=plan.rate_ml_h,
            overrun_ul=self._overrun_ul,
        )

    def accepted_risks(self) -> list[AcceptedRisk]:
        """What a program or a start records: the risks the site accepted for this pump."""
        return [
            AcceptedRisk(v.code, v.message, ACCEPT_NO_WATCHDOG_KEY)
            for v in self._live
            if v.severity is Severity.NOTE
        ]

    def risk_events(self, step: Step, journal: Journal, session: Session | None) -> list[NewEvent]:
        """``pump.risk.accepted`` for each accepted risk, with a program and with a start:
        the audit then shows, at the moment it mattered, what the site agreed to."""
        kind = None if step.command is None else step.command.kind
        if step.trigger != "program" and kind is not PumpCommand.START:
            return []
        return [
            journal.event(
                "pump.risk.accepted",
                {"reason_code": r.reason_code, "detail": r.detail, "config_key": r.config_key},
                Actor.daemon(),
                session=session,
            )
            for r in self.accepted_risks()
        ]

    def past_volume_is_fault(self) -> bool:
        return running_past_volume_is_fault(self.abilities)

    def next_read_in_s(self, poll_period_s: float, remaining_ul: int, rate_ml_h: Decimal) -> float:
        return next_read_in_s(self.abilities, poll_period_s, remaining_ul, rate_ml_h)

    def max_rate_ml_h(self, status: PumpStatus | None) -> Decimal | None:
        """The pump's maximum rate: the record's own figure, else what the pump reports."""
        if self.capabilities.max_rate_ml_h is not None:
            return self.capabilities.max_rate_ml_h
        return None if status is None else status.max_rate_ml_h


def watchdog_wall_s(
    caps: PumpCapabilities, driver: PumpDriver, config: ControllerConfig, clock: Clock
) -> Decimal | None:
    """How long (wall-clock seconds) the pump runs on after pumpd's last request reached it.

    None without a watchdog. A timeout set at the pump's panel is what the driver read at
    connect (the DULCO's register 61; the driver refuses one longer than
    ``heartbeat_timeout_s``), else that bound; one pumpd arms is ``heartbeat_timeout_s``,
    which the controller holds in its clock's seconds (scaled in a simulation), so it is
    turned back into wall seconds: the pump's timer is not sped up with the plan's rate.
    """
    if caps.watchdog is None:
        return None
    if caps.watchdog.set_by is WatchdogSetter.PUMP_PANEL and isinstance(driver, ReadsPumpTimeout):
        read_ms = driver.pump_timeout_ms
        if read_ms is not None:
            return Decimal(read_ms) / 1000
    wall = real_seconds(clock, config.heartbeat_timeout_s)
    return Decimal(str(round(wall, 3)))

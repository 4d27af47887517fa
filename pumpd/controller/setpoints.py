"""The program a session command puts on the pump, and whether this pump can run it.

Pure: the session's plan (or its pending adjustment), the protocol's priming, and the
counter the pump's VTBI register counts on (from the ledger). The kernel's ``pump_fit``
refuses setpoints the pump cannot run (its reported maximum rate) or the prepared
container cannot give, before any intent is written.
"""

from __future__ import annotations

from decimal import Decimal

from pumpd.session import PumpCommand, Session, Step
from safety.guards import pump_fit
from safety.start import start_requirements
from safety.verdicts import Verdict

from .executor import Setpoints

MOVING = frozenset({PumpCommand.PRIME, PumpCommand.START, PumpCommand.RESUME, PumpCommand.SET_RATE})
"""The commands that move fluid: their intent must be durable before they are sent."""


def setpoints(s: Session, kind: PumpCommand, base_ul: int) -> Setpoints | None:
    """The program for ``kind`` (None for STOP and PAUSE); ``base_ul`` is the counter the
    VTBI register counts on."""
    if kind in (PumpCommand.STOP, PumpCommand.PAUSE):
        return None
    proto = s.protocol.protocol
    plan = s.plan
    rate, vtbi = plan.rate_ml_h, plan.vtbi_ul
    pending = s.data.pending_adjustment
    if kind is PumpCommand.SET_RATE and pending is not None:
        rate, vtbi = pending.rate_ml_h, pending.vtbi_ul
    return Setpoints(
        rate_ml_h=rate,
        vtbi_ul=base_ul + vtbi,
        kvo_rate_ml_h=plan.kvo_rate_ml_h,
        prime_volume_ul=start_requirements(proto).prime_volume_ul,
        prime_rate_ml_h=proto.priming.rate_ml_h,
    )


def unfit(s: Session | None, step: Step, max_rate: Decimal | None) -> list[Verdict]:
    """The kernel's refusal of setpoints this pump cannot run (its reported maximum
    rate) or the prepared container cannot give; checked before the intent is written,
    and already when the order is programmed (against the pump's last reading)."""
    if s is not None and step.trigger == "program":
        return pump_fit(s.plan.rate_ml_h, s.plan.vtbi_ul, max_rate, None)
    kind = None if step.command is None else step.command.kind
    if s is None or kind not in MOVING:
        return []
    if kind is PumpCommand.PRIME:
        proto = s.protocol.protocol
        prime_ul = start_requirements(proto).prime_volume_ul
        return pump_fit(proto.priming.rate_ml_h, prime_ul, max_rate, None)
    rate, vtbi = s.plan.rate_ml_h, s.plan.vtbi_ul
    pending = s.data.pending_adjustment
    if kind is PumpCommand.SET_RATE and pending is not None:
        rate, vtbi = pending.rate_ml_h, pending.vtbi_ul
    return pump_fit(rate, vtbi, max_rate, s.data.container_ul)

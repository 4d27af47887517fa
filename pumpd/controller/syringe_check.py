"""Which figures of a session step the syringe-capacity rule judges.

The rule itself (``safety.syringe``) decides; this picks the volume the step asks the pump
for (the plan's, or a pending adjustment's new total) and the protocol's prime, for the
order being programmed and for every command that moves fluid. Checked before the step's
intent is written, so a refused order leaves nothing in the audit log or on the pump.
"""

from __future__ import annotations

from collections.abc import Collection

from pumpd.audit.catalogue import PumpCommand
from pumpd.session import Session, Step
from safety.start import start_requirements
from safety.syringe import SyringeCapacity, syringe_fit
from safety.verdicts import Verdict


def syringe_unfit(
    session: Session | None,
    step: Step,
    syringe: SyringeCapacity | None,
    moving: Collection[PumpCommand],
) -> list[Verdict]:
    """The rule's verdicts for ``step`` on a pump holding ``syringe`` (None: no syringe)."""
    kind = None if step.command is None else step.command.kind
    if session is None or syringe is None:
        return []
    if step.trigger != "program" and kind not in moving:
        return []
    vtbi_ul = session.plan.vtbi_ul
    pending = session.data.pending_adjustment
    if kind is PumpCommand.SET_RATE and pending is not None:
        vtbi_ul = pending.vtbi_ul
    prime_ul = start_requirements(session.protocol.protocol).prime_volume_ul
    return syringe_fit(vtbi_ul, prime_ul, syringe)

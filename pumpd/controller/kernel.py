"""Asking the safety kernel at a tick, with the controller's own rule beside it.

The kernel (``safety.tick.evaluate``) judges the inputs the pump observation made. Two
things are added here and nothing else: bookkeeping the kernel refuses
(``InvalidTickInput``) is a STOP with a high alarm, as the kernel's docstring asks; and
priming must end (the kernel has no rule for a prime counter that stops).
"""

from __future__ import annotations

from pumpd.session import Session, State
from safety.actions import Action, ActionKind, Priority
from safety.capability import VolumeStop
from safety.start import start_requirements
from safety.tick import InvalidTickInput, SupervisionLimits, TickDecision, evaluate

from .observation import PumpObservation


def decide(
    limits: SupervisionLimits,
    pump: PumpObservation,
    s: Session,
    now: float,
    volume_stop: VolumeStop = VolumeStop.BACKSTOP,
) -> TickDecision:
    """The kernel's decision for ``s`` at ``now``, the controller's own rules merged in
    (strongest kind first, then the highest priority); ``volume_stop`` says whose stop at
    the plan's volume ends the infusion (the pump's capability record)."""
    try:
        primary = volume_stop is VolumeStop.PRIMARY
        decision = evaluate(limits, pump.tick_inputs(s, now, volume_stop_primary=primary))
    except InvalidTickInput as exc:
        # The kernel says: broken bookkeeping is treated as a stop with a high alarm.
        decision = TickDecision(
            (
                Action(
                    ActionKind.STOP,
                    Priority.HIGH,
                    "controller.bookkeeping",
                    f"pumpd's own figures are inconsistent ({exc}); the infusion is stopped.",
                    "controller.tick",
                ),
            )
        )
    own = own_rules(s, now)
    if own:
        merged = sorted((*own, *decision.actions), key=lambda a: (-a.kind.rank, -a.priority.rank))
        decision = TickDecision(tuple(merged))
    return decision


def own_rules(s: Session, now_s: float) -> list[Action]:
    """The controller's own check where the kernel has none: priming must end.

    A pump whose prime counter stops (a stuck sensor) would prime for ever; twice the
    planned priming time plus ten seconds is the bound, counted from when the pump was
    shown priming (``priming_since``). Not from the nurse's request: the program written
    and read back before the prime's RUN is not priming, and on a slow or shared serial
    line (New Era: some twenty exchanges) it took most of the bound at a simulation's time
    scale (docs/soak.md). A session restored from before that stamp counts from the request.
    """
    d = s.data
    since = d.priming_since or d.prime_requested_at
    if s.state is not State.PRIMING or since is None:
        return []
    proto = s.protocol.protocol
    rate_ul_s = proto.priming.rate_ml_h * 1000 / 3600
    planned_s = float(start_requirements(proto).prime_volume_ul / rate_ul_s)
    running_s = now_s - since.mono_s
    if running_s <= 2 * planned_s + 10:
        return []
    return [
        Action(
            ActionKind.STOP,
            Priority.MEDIUM,
            "controller.prime.too_long",
            f"Priming has run {running_s:.0f} s, planned {planned_s:.0f} s; the pump's "
            "prime counter may be stuck, so priming is stopped.",
            "controller.prime",
        )
    ]

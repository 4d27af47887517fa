"""A pump whose stop at the plan's volume is pumpd's: what pumpd does when it cannot reach it.

A pump without a volume target of its own (the DULCO flex: ``PumpAbilities.stops_at_vtbi``
false) ends its infusion when pumpd stops it. If pumpd cannot reach it just then (a cut
link, a hung host, pumpd itself dead), it runs on until its own communication watchdog
stops it. Two rules bound that run-on (hazard H74):

- :func:`volume_due_unanswered`: at a tick where the pump does not answer and pumpd's own
  count (the expected volume from the last confirmed rate and the time) says the plan's
  volume is due, pumpd does not wait for ``comm_timeout_s``: a STOP with a high alarm at
  once, and :func:`stop_repeats_unanswered` tells the controller to send that STOP at every
  tick until the pump answers (other halts go once per outage);
- :func:`watchdog_run_on`: a program or a start is refused when the pump's own watchdog,
  at the plan's rate, would let it run on past the plan's volume by more than the overrun
  the kernel allows above it (``SupervisionPolicy.vtbi_overrun_ul``). The watchdog counts
  wall-clock seconds and the rate is the plan's real rate, so a simulation at a time scale
  is judged as the same plan on a real pump would be.

Pure: no I/O, no clock, no imports from ``pumpd``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from safety.actions import Action, ActionKind, Priority
from safety.capability import InvalidAbilities, PumpAbilities, VolumeStop, volume_stop_role
from safety.verdicts import Severity, Verdict

VOLUME_DUE_RULE = "tick.comm.volume_due"
"""The rule (and alarm code) of a plan's volume falling due on a pump that does not answer."""
RUN_ON_RULE = "pump.watchdog_run_on"
_S_PER_H = Decimal(3600)


def _ml(volume_ul: int) -> str:
    return f"{Decimal(volume_ul) / 1000:f}"


def volume_due_unanswered(
    *,
    volume_stop_primary: bool,
    answered: bool,
    timed_phase: bool,
    rate_ml_h: Decimal,
    expected_ul: int,
    vtbi_ul: int,
    silent_s: float,
) -> Action | None:
    """The STOP and its high alarm when the plan's volume falls due on a silent pump.

    ``volume_stop_primary``: pumpd's stop at the plan's volume is the one that ends the
    infusion; ``answered``: the pump answered at this tick; ``timed_phase``: the session
    is infusing, or held (an alarm, a pause) with the pump possibly still running;
    ``rate_ml_h``: the last confirmed rate pumpd counts the expected volume with (0 once a
    halt was confirmed); ``expected_ul``: that count now. Not judged on a pump with its
    own volume stop (it ends the infusion itself; ``tick.comm`` judges the silence) nor on
    one that answers (``tick.vtbi`` judges its reading).
    """
    if (
        not volume_stop_primary
        or answered
        or not timed_phase
        or rate_ml_h <= 0
        or expected_ul < vtbi_ul
    ):
        return None
    return Action(
        ActionKind.STOP,
        Priority.HIGH,
        VOLUME_DUE_RULE,
        f"The pump has not answered for {silent_s:.1f} s and its volume of {_ml(vtbi_ul)} mL "
        f"is due by pumpd's count ({_ml(expected_ul)} mL at {rate_ml_h} mL/h). This pump "
        "has no volume stop of its own and pumpd cannot confirm it stopped: stop it at the "
        "pump now and check its connection. pumpd sends STOP until the pump answers.",
        VOLUME_DUE_RULE,
    )


def stop_repeats_unanswered(actions: Iterable[Action]) -> bool:
    """Whether a halt demanded without a reading goes to the pump at every tick.

    A halt on a pump that does not answer is otherwise sent once per outage (on a dead
    link it cannot arrive, and the pump's own watchdog ends delivery). When the plan's
    volume is due and pumpd's stop is the one that ends it, every STOP that arrives before
    the watchdog runs out is flow saved, so it is sent again at every tick.
    """
    return any(a.rule == VOLUME_DUE_RULE and a.kind is ActionKind.STOP for a in actions)


def _finite_decimal(name: str, value: object) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidAbilities(f"{name} must be a finite Decimal ≥ 0, got {value!r}")
    return value


def watchdog_run_on(
    abilities: PumpAbilities,
    *,
    watchdog_s: Decimal | None,
    rate_ml_h: Decimal,
    overrun_ul: int,
) -> list[Verdict]:
    """A program or start refused when the pump's watchdog lets it overrun the plan.

    ``watchdog_s``: the pump's own communication timeout in wall-clock seconds (the
    ``heartbeat_timeout_s`` pumpd arms, or what is set at the pump's panel and read at
    connect); None for a pump without one (``live_use`` judges that). ``rate_ml_h``: the
    plan's rate (real, not scaled). ``overrun_ul``: the delivery above the plan's volume
    the kernel tolerates before ``tick.vtbi.exceeded``. Only where pumpd's stop is primary:
    a pump with its own volume stop ends the infusion itself whatever pumpd does.
    """
    rate = _finite_decimal("rate_ml_h", rate_ml_h)
    if isinstance(overrun_ul, bool) or not isinstance(overrun_ul, int) or overrun_ul < 0:
        raise InvalidAbilities(f"overrun_ul must be an integer ≥ 0, got {overrun_ul!r}")
    if watchdog_s is None or volume_stop_role(abilities) is VolumeStop.BACKSTOP:
        return []
    seconds = _finite_decimal("watchdog_s", watchdog_s)
    # Compared in µL × 3.6 (s × mL/h): exact, where a rate constant of 1000/3600 rounded
    # to the context's precision could refuse the very timeout the sentence names.
    if seconds * rate * 1000 <= overrun_ul * _S_PER_H:
        return []
    run_on_ul = int((seconds * rate * 1000 / _S_PER_H).to_integral_value(rounding=ROUND_CEILING))
    longest_s = (overrun_ul * _S_PER_H / (rate * 1000)).quantize(
        Decimal("0.1"), rounding=ROUND_FLOOR
    )
    return [
        Verdict(
            RUN_ON_RULE,
            Severity.HARD,
            "This pump has no volume stop of its own: pumpd's stop ends the infusion, and if "
            "pumpd or its link falls silent as the volume falls due the pump runs on for its "
            f"own communication timeout of {seconds.normalize():f} s. At "
            f"{rate.normalize():f} mL/h that is {run_on_ul} µL past the plan, more than the "
            f"{overrun_ul} µL allowed above it. Set the pump's timeout (heartbeat_timeout_s, "
            f"or at the pump) to at most {longest_s} s, or lower the rate.",
            RUN_ON_RULE,
            value=str(run_on_ul),
            limit=str(overrun_ul),
            unit="µL",
        )
    ]

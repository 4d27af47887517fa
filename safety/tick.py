"""Tick evaluation: one pure function that says, every poll, what must happen now.

``evaluate(limits, inputs)`` reads no clock and keeps no state: the controller passes the
monotonic time and everything it has observed, and obeys the returned actions. Each rule
is a small function that only *adds* actions; the outcome is the strongest action kind, so
no rule can loosen what another demanded (the AndroidAPS constraint-chain idea), and the
decision lists every rule that contributed. See docs/safety/supervision-rules.md for the
choice and justification of every threshold.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from safety.actions import Action, ActionKind, Priority
from safety.constraints import ceiling
from safety.plan import Plan
from safety.protocol import Protocol
from safety.pump import (
    MAX_RATE_ML_H,
    PumpMode,
    PumpSnapshot,
    PumpWarning,
    flag_names,
    restart_evidence,
)
from safety.runon import volume_due_unanswered
from safety.vitals import VitalsReading, VitalsRules, breaches, missing_kinds


class InvalidTickInput(ValueError):
    """Tick limits or inputs of the wrong type, or times that contradict each other.

    The controller must treat this error like a STOP with a high-priority alarm: it means
    its own bookkeeping is broken.
    """


class SessionPhase(enum.Enum):
    """The phase the controller believes the session is in."""

    READY = "ready"
    PRIMING = "priming"
    INFUSING = "infusing"
    PAUSED = "paused"
    KVO = "kvo"
    OBSERVATION = "observation"
    ENDED = "ended"


class PendingInput(enum.Enum):
    """What a session waits for from a person (GIP 2.2.1 re-alerts while it waits)."""

    DOUBLE_CHECK = "double_check"
    START = "start"
    ADJUST_CONFIRMATION = "adjust_confirmation"
    ACKNOWLEDGEMENT = "acknowledgement"


_PENDING_WORDS: dict[PendingInput, tuple[str, str]] = {
    PendingInput.DOUBLE_CHECK: ("The programmed infusion", "for its double-check"),
    PendingInput.START: ("The checked infusion", "to be started"),
    PendingInput.ADJUST_CONFIRMATION: ("The proposed adjustment", "to be confirmed or cancelled"),
    PendingInput.ACKNOWLEDGEMENT: ("The latched alarm", "to be acknowledged"),
}

# Which pump modes that move fluid each phase allows; any other delivering mode is a stop.
_ALLOWED_DELIVERY: dict[SessionPhase, frozenset[PumpMode]] = {
    SessionPhase.READY: frozenset(),
    SessionPhase.PRIMING: frozenset({PumpMode.PRIMING}),
    SessionPhase.INFUSING: frozenset({PumpMode.INFUSING, PumpMode.KVO}),
    SessionPhase.PAUSED: frozenset(),
    SessionPhase.KVO: frozenset({PumpMode.KVO}),
    SessionPhase.OBSERVATION: frozenset(),
    SessionPhase.ENDED: frozenset(),
}
_DELIVERY_PHASES = frozenset({SessionPhase.INFUSING, SessionPhase.KVO})
_ACCOUNTED_PHASES = frozenset({SessionPhase.INFUSING, SessionPhase.PAUSED, SessionPhase.KVO})
# The pump mode whose rate the rate rule judges in each phase.
_RATE_JUDGED: dict[SessionPhase, PumpMode] = {
    SessionPhase.INFUSING: PumpMode.INFUSING,
    SessionPhase.KVO: PumpMode.KVO,
}
# Phases in which the prescribed KVO volume may be part of what was delivered.
_AFTER_VTBI_PHASES = frozenset({SessionPhase.KVO, SessionPhase.OBSERVATION})
# Phases whose delivery time counts against the planned duration (KVO has its own bound).
_TIMED_PHASES = frozenset({SessionPhase.INFUSING, SessionPhase.PAUSED})
_VITALS_PHASES = frozenset(
    {SessionPhase.INFUSING, SessionPhase.PAUSED, SessionPhase.KVO, SessionPhase.OBSERVATION}
)


def _seconds(name: str, value: object, *, positive: bool = False) -> float:
    number = _instant(name, value)
    if number < 0 or (positive and number == 0):
        bound = "> 0" if positive else "≥ 0"
        raise InvalidTickInput(f"{name} must be finite and {bound} s, got {value!r}")
    return number


def _instant(name: str, value: object) -> float:
    """A point on the controller's monotonic axis. Its origin is arbitrary (boot, or a
    process's start), so an instant may be negative: a session restored after a restart
    or a reboot holds times from before the new origin. Only its order against ``now_s``
    means something, and that is checked by the caller."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTickInput(f"{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidTickInput(f"{name} is too large to be a time in seconds") from None
    if not math.isfinite(number):
        raise InvalidTickInput(f"{name} must be a finite time in seconds, got {value!r}")
    return number


# No infusion comes near these; they keep arithmetic and messages on ordinary numbers.
MAX_VOLUME_UL = 10**12


def _microlitres(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VOLUME_UL:
        raise InvalidTickInput(
            f"{name} must be an integer between 0 and {MAX_VOLUME_UL} µL, got {value!r}"
        )
    return value


def _decimal(name: str, value: object, *, upper: Decimal | None = None) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidTickInput(f"{name} must be a finite Decimal ≥ 0, got {value!r}")
    if upper is not None and value > upper:
        raise InvalidTickInput(f"{name} must be ≤ {upper}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class SupervisionLimits:
    """Every threshold the tick applies, fixed for one session.

    Tolerances are relative *and* absolute: a band is ``max(rel × reference, abs)``, so a
    small reference (early in an infusion, a slow rate) is not judged on noise, while a
    large one is held to the relative band.
    """

    vtbi_ul: int
    vtbi_overrun_ul: int
    kvo_max_ul: int
    comm_timeout_s: float
    rate_tolerance_rel: Decimal
    rate_tolerance_abs_ml_h: Decimal
    rate_settle_s: float
    volume_tolerance_rel: Decimal
    volume_tolerance_abs_ul: int
    pause_remind_after_s: float
    pause_remind_every_s: float
    pause_stop_after_s: float
    max_delivery_s: float | None = None
    vitals: VitalsRules | None = None
    provenance: tuple[str, ...] = ()
    input_remind_every_s: float = 900.0

    def __post_init__(self) -> None:
        _microlitres("vtbi_ul", self.vtbi_ul)
        _microlitres("vtbi_overrun_ul", self.vtbi_overrun_ul)
        _microlitres("kvo_max_ul", self.kvo_max_ul)
        _microlitres("volume_tolerance_abs_ul", self.volume_tolerance_abs_ul)
        if self.vtbi_ul == 0:
            raise InvalidTickInput("vtbi_ul must be > 0")
        _seconds("comm_timeout_s", self.comm_timeout_s, positive=True)
        _seconds("rate_settle_s", self.rate_settle_s)
        _seconds("pause_remind_after_s", self.pause_remind_after_s)
        _seconds("pause_remind_every_s", self.pause_remind_every_s, positive=True)
        _seconds("pause_stop_after_s", self.pause_stop_after_s, positive=True)
        if self.max_delivery_s is not None:
            _seconds("max_delivery_s", self.max_delivery_s, positive=True)
        _decimal("rate_tolerance_rel", self.rate_tolerance_rel, upper=Decimal(1))
        _decimal("rate_tolerance_abs_ml_h", self.rate_tolerance_abs_ml_h, upper=MAX_RATE_ML_H)
        _decimal("volume_tolerance_rel", self.volume_tolerance_rel, upper=Decimal(1))
        if self.pause_remind_after_s > self.pause_stop_after_s:
            raise InvalidTickInput(
                f"pause_remind_after_s ({self.pause_remind_after_s}) is after "
                f"pause_stop_after_s ({self.pause_stop_after_s}): the stop would come first"
            )
        if self.vitals is not None and not isinstance(self.vitals, VitalsRules):
            raise InvalidTickInput(f"vitals must be VitalsRules or None, got {self.vitals!r}")
        if _seconds("input_remind_every_s", self.input_remind_every_s) < 1:
            raise InvalidTickInput("input_remind_every_s must be at least 1 s")


@dataclass(frozen=True, slots=True)
class TickInputs:
    """What the controller knows at ``now_s`` (its monotonic clock, like every ``*_s`` here).

    ``expected_volume_ul`` is integrated by the controller from the rates it commanded
    (zero while paused), independently of the pump's counter; ``volume_at_start_ul`` is the
    pump counter when this session began, so delivered = counter − that;
    ``delivery_elapsed_s`` is the time spent delivering since the start, pauses excluded.

    A pump that restarted (or whose counter went back) counts again from its new counter:
    the controller then keeps what the session had delivered before in
    ``delivered_before_ul`` and re-anchors ``volume_at_start_ul`` on the new counter, so
    delivered = delivered_before + counter − volume_at_start (docs/controller.md).
    """

    now_s: float
    phase: SessionPhase
    commanded_rate_ml_h: Decimal
    commanded_vtbi_ul: int
    rate_commanded_at_s: float
    snapshot: PumpSnapshot | None
    previous_snapshot: PumpSnapshot | None
    last_good_comm_s: float
    delivery_elapsed_s: float | None
    expected_volume_ul: int
    volume_at_start_ul: int = 0
    delivered_before_ul: int = 0
    vitals: VitalsReading | None = None
    vitals_taken_s: float | None = None
    paused_since_s: float | None = None
    pending_input: PendingInput | None = None
    input_pending_since_s: float | None = None
    latched_alarm_priority: Priority | None = None
    vitals_acknowledged: bool = False
    """A nurse has acknowledged the alarm this very reading raised (the session knows which
    reading it was): while nothing is delivered, its out-of-band values remind instead of
    alarming again, so an acknowledgement is not followed by the same alarm at the next
    tick. A new reading is judged afresh."""
    vtbi_exceeded_acknowledged_ul: int | None = None
    """The delivered volume (same account as the tick's: delivered before + counter − start)
    at which a nurse acknowledged ``tick.vtbi.exceeded`` on a pump read just then, stopped;
    None while no such alarm was acknowledged. While the pump does not deliver and the
    volume has not grown past it (by more than :data:`VTBI_ACK_COUNTER_NOISE_UL`), that
    exceedance reminds instead of stopping and alarming again; any growth, or delivery, is
    judged afresh."""
    volume_stop_primary: bool = False
    """pumpd's stop at the plan's volume is the one that ends the infusion (the pump has
    no volume stop of its own: ``safety.capability.volume_stop_role``)."""

    def __post_init__(self) -> None:
        now = _instant("now_s", self.now_s)
        if not isinstance(self.volume_stop_primary, bool):
            raise InvalidTickInput(
                f"volume_stop_primary must be a bool, got {self.volume_stop_primary!r}"
            )
        if not isinstance(self.phase, SessionPhase):
            raise InvalidTickInput(f"phase must be a SessionPhase, got {self.phase!r}")
        _decimal("commanded_rate_ml_h", self.commanded_rate_ml_h, upper=MAX_RATE_ML_H)
        _microlitres("commanded_vtbi_ul", self.commanded_vtbi_ul)
        _microlitres("expected_volume_ul", self.expected_volume_ul)
        _microlitres("volume_at_start_ul", self.volume_at_start_ul)
        _microlitres("delivered_before_ul", self.delivered_before_ul)
        if self.vtbi_exceeded_acknowledged_ul is not None:
            _microlitres("vtbi_exceeded_acknowledged_ul", self.vtbi_exceeded_acknowledged_ul)
        for snap_name in ("snapshot", "previous_snapshot"):
            snap = getattr(self, snap_name)
            if snap is not None and not isinstance(snap, PumpSnapshot):
                raise InvalidTickInput(f"{snap_name} must be a PumpSnapshot or None, got {snap!r}")
        times = {
            "rate_commanded_at_s": self.rate_commanded_at_s,
            "last_good_comm_s": self.last_good_comm_s,
            "vitals_taken_s": self.vitals_taken_s,
            "paused_since_s": self.paused_since_s,
        }
        if self.delivery_elapsed_s is not None:
            _seconds("delivery_elapsed_s", self.delivery_elapsed_s)
        for name, value in times.items():
            if value is not None and _instant(name, value) > now:
                raise InvalidTickInput(f"{name} ({value}) is after now_s ({now})")
        if self.rate_commanded_at_s is None or self.last_good_comm_s is None:
            raise InvalidTickInput("rate_commanded_at_s and last_good_comm_s are required")
        if self.vitals is not None and not isinstance(self.vitals, VitalsReading):
            raise InvalidTickInput(f"vitals must be a VitalsReading or None, got {self.vitals!r}")
        if (self.vitals is None) != (self.vitals_taken_s is None):
            raise InvalidTickInput("vitals and vitals_taken_s must be given together")
        if not isinstance(self.vitals_acknowledged, bool) or (
            self.vitals_acknowledged and self.vitals is None
        ):
            raise InvalidTickInput("vitals_acknowledged is a bool, true only with a reading")
        if (self.phase is SessionPhase.PAUSED) != (self.paused_since_s is not None):
            raise InvalidTickInput("paused_since_s must be given exactly when the phase is paused")
        self._check_pending(now)

    def _check_pending(self, now: float) -> None:
        """What a person must still do, since when, and the alarm priority that is latched."""
        kind, since = self.pending_input, self.input_pending_since_s
        if kind is not None and not isinstance(kind, PendingInput):
            raise InvalidTickInput(f"pending_input must be a PendingInput or None, got {kind!r}")
        if (kind is None) != (since is None):
            raise InvalidTickInput("pending_input and input_pending_since_s go together")
        if since is not None and _instant("input_pending_since_s", since) > now:
            raise InvalidTickInput(f"input_pending_since_s ({since}) is after now_s ({now})")
        latched = self.latched_alarm_priority
        if latched is not None and not isinstance(latched, Priority):
            raise InvalidTickInput(f"latched_alarm_priority must be a Priority, got {latched!r}")
        if kind is PendingInput.ACKNOWLEDGEMENT and latched is None:
            raise InvalidTickInput("an acknowledgement is pending only while an alarm is latched")


class Outcome(enum.Enum):
    """The decision as one word: the strongest action kind, or continue."""

    CONTINUE = "continue"
    REMIND = "remind"
    ALARM = "alarm"
    PAUSE = "pause"
    STOP = "stop"

    @property
    def rank(self) -> int:
        return 0 if self is Outcome.CONTINUE else ActionKind(self.value).rank


@dataclass(frozen=True, slots=True)
class TickDecision:
    """Every action demanded at this tick, strongest first, and the resulting outcome."""

    actions: tuple[Action, ...] = field(default=())

    @property
    def outcome(self) -> Outcome:
        if not self.actions:
            return Outcome.CONTINUE
        return Outcome(max((a.kind for a in self.actions), key=lambda k: k.rank).value)

    @property
    def priority(self) -> Priority | None:
        """The highest alarm priority to signal, or None when nothing is demanded."""
        if not self.actions:
            return None
        return max((a.priority for a in self.actions), key=lambda p: p.rank)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.actions)

    @property
    def rules(self) -> tuple[str, ...]:
        """The distinct rules that contributed, in the order of ``actions``."""
        return tuple(dict.fromkeys(a.rule for a in self.actions))


_Rule = Callable[[SupervisionLimits, TickInputs], Iterator[Action]]


def _delivered_ul(inputs: TickInputs, snapshot: PumpSnapshot) -> int:
    return inputs.delivered_before_ul + snapshot.volume_infused_ul - inputs.volume_at_start_ul


def _restarted(prev: PumpSnapshot | None, snap: PumpSnapshot) -> bool:
    """The pump restarted between the previous snapshot and this one."""
    return prev is not None and restart_evidence(prev, snap) is not None


def _band(rel: Decimal, reference: Decimal, absolute: Decimal) -> Decimal:
    return max(rel * reference, absolute)


def rule_pump_alarm(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Any alarm flag (or the pump's alarm mode) stops the infusion with a high alarm."""
    snap = inputs.snapshot
    if snap is None:
        return
    rule = "tick.pump_alarm"
    for name in flag_names(snap.alarms):
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            f"tick.pump.alarm.{name}",
            f"The pump reports {name.replace('_', ' ')}; the infusion is stopped.",
            rule,
        )
    if snap.mode is PumpMode.ALARM and not snap.alarms:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.alarm_mode",
            "The pump is in its alarm mode without a known alarm flag; the infusion is stopped.",
            rule,
        )
    if PumpWarning.LOW_BATTERY in snap.warnings:
        yield Action(
            ActionKind.ALARM,
            Priority.LOW,
            "tick.pump.battery_low",
            "The pump battery is low; connect mains power.",
            rule,
        )


def rule_comm(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """A pump silent for longer than the timeout is a pump whose delivery is unknown."""
    silent_s = inputs.now_s - inputs.last_good_comm_s
    if silent_s > limits.comm_timeout_s:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.comm.lost",
            f"No answer from the pump for {silent_s:.1f} s (limit {limits.comm_timeout_s} s); "
            "stop the infusion at the pump and check the connection.",
            "tick.comm",
        )


def rule_volume_due_unanswered(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """A pump whose stop at the plan's volume is pumpd's, silent when pumpd's own count
    says that volume is due: STOP with a high alarm now, not ``comm_timeout_s`` later
    (safety/runon.py; the controller sends that STOP at every tick until the pump answers)."""
    found = volume_due_unanswered(
        volume_stop_primary=inputs.volume_stop_primary,
        answered=inputs.snapshot is not None,
        timed_phase=inputs.phase in _TIMED_PHASES,
        rate_ml_h=inputs.commanded_rate_ml_h,
        expected_ul=inputs.expected_volume_ul,
        vtbi_ul=limits.vtbi_ul,
        silent_s=inputs.now_s - inputs.last_good_comm_s,
    )
    if found is not None:
        yield found


def rule_phase(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """The pump moves fluid only in the modes the session phase allows."""
    snap = inputs.snapshot
    if snap is None:
        return
    rule = "tick.phase"
    allowed = _ALLOWED_DELIVERY[inputs.phase]
    if snap.mode.delivers and snap.mode not in allowed:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.delivering_unexpectedly",
            f"The pump is {snap.mode.value} while the session is {inputs.phase.value}; "
            "the infusion is stopped.",
            rule,
        )
    elif not snap.mode.delivers and snap.rate_actual_ml_h > 0:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.flow_while_stopped",
            f"The pump reports {snap.rate_actual_ml_h} mL/h while {snap.mode.value}; "
            "the infusion is stopped.",
            rule,
        )
    elif (
        inputs.phase in _DELIVERY_PHASES
        and snap.mode in (PumpMode.IDLE, PumpMode.PAUSED)
        and not _restarted(inputs.previous_snapshot, snap)
    ):
        # A pump that has just restarted is idle because it restarted: tick.counters
        # names that, once, with a stop.
        yield Action(
            ActionKind.ALARM,
            Priority.MEDIUM,
            "tick.pump.not_delivering",
            f"The pump is {snap.mode.value} although the session is {inputs.phase.value}; "
            "check the pump.",
            rule,
        )


def rule_counters(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """A reboot or a counter running backwards makes every later reading untrustworthy.

    Both are events between two snapshots, so each is demanded at one tick only. A restart
    is named once: its counter going to zero is part of it, not a second fault. A counter
    below the session's start is a standing condition: the controller re-anchors the start
    on the new counter when it sees the restart (``delivered_before_ul`` keeps what had been
    delivered), so while it fires the controller's own figures are wrong.
    """
    snap, prev = inputs.snapshot, inputs.previous_snapshot
    if snap is None:
        return
    rule = "tick.counters"
    evidence = None if prev is None else restart_evidence(prev, snap)
    if evidence is not None:
        kept = max(0, _delivered_ul(inputs, snap))
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.rebooted",
            f"The pump restarted ({evidence}): its program "
            f"is gone and its volume counter was lost; {kept} µL had been delivered; the "
            "infusion is stopped.",
            rule,
        )
    elif prev is not None and snap.volume_infused_ul < prev.volume_infused_ul:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.counter_backwards",
            f"The pump's infused volume went down ({prev.volume_infused_ul} µL → "
            f"{snap.volume_infused_ul} µL); the infusion is stopped.",
            rule,
        )
    if snap.volume_infused_ul < inputs.volume_at_start_ul:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.pump.counter_below_start",
            f"The pump's infused volume ({snap.volume_infused_ul} µL) is below its value at "
            f"the start of this session ({inputs.volume_at_start_ul} µL); the infusion is stopped.",
            rule,
        )


def rule_vtbi(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Never deliver beyond the plan's VTBI, whatever the pump is programmed to do.

    An exceedance stops the infusion with a high alarm. Once a nurse has acknowledged it on
    a stopped pump (``vtbi_exceeded_acknowledged_ul``) it reminds instead, so the session
    can be finished, for as long as the pump stays stopped and its volume has not grown;
    the first alarm, with its figures, stays in the audit, and any growth or delivery stops
    and alarms again."""
    rule = "tick.vtbi"
    if inputs.commanded_vtbi_ul > limits.vtbi_ul:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.vtbi.commanded_above_plan",
            f"The pump was commanded a VTBI of {inputs.commanded_vtbi_ul} µL, above the "
            f"plan's {limits.vtbi_ul} µL; the infusion is stopped.",
            rule,
        )
    snap = inputs.snapshot
    if snap is None:
        return
    delivered = _delivered_ul(inputs, snap)
    allowance = limits.vtbi_ul + limits.vtbi_overrun_ul
    if inputs.phase in _AFTER_VTBI_PHASES:
        # What keep-vein-open was allowed to add stays allowed once it has ended.
        allowance += limits.kvo_max_ul
    if delivered > allowance and _exceedance_acknowledged(inputs, snap, delivered):
        yield Action(
            ActionKind.REMIND,
            Priority.LOW,
            "tick.vtbi.exceeded_acknowledged",
            f"{delivered} µL delivered, {delivered - limits.vtbi_ul} µL over the VTBI of "
            f"{limits.vtbi_ul} µL (more than the {allowance} µL allowed); acknowledged, the "
            "pump is stopped: watch the patient.",
            rule,
        )
    elif delivered > allowance:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.vtbi.exceeded",
            f"{delivered} µL delivered, more than the {allowance} µL allowed (VTBI "
            f"{limits.vtbi_ul} µL); the infusion is stopped.",
            rule,
        )
    elif snap.mode is PumpMode.INFUSING and delivered >= limits.vtbi_ul:
        yield Action(
            ActionKind.STOP,
            Priority.LOW,
            "tick.vtbi.reached",
            f"{delivered} µL delivered: the VTBI of {limits.vtbi_ul} µL is reached and the "
            "pump is still infusing; stop it.",
            rule,
        )
    elif (
        inputs.phase is SessionPhase.KVO
        and snap.mode is PumpMode.KVO
        and kvo_complete(limits, delivered, inputs.expected_volume_ul)
    ):
        used = max(delivered, inputs.expected_volume_ul) - limits.vtbi_ul
        yield Action(
            ActionKind.STOP,
            Priority.LOW,
            "tick.vtbi.kvo_complete",
            f"Keep-vein-open has used its allowance ({used} µL after the VTBI, at most "
            f"{limits.kvo_max_ul} µL); stop the pump.",
            rule,
        )


VTBI_ACK_COUNTER_NOISE_UL = 2
"""How far the delivered volume may read above an acknowledged exceedance and still be the
same stopped pump. A pump at rest does not move its counter; what may move is rounding: a
driver rounds the pump's own unit to whole µL (the DULCO's counter is float32 litres, so a
figure the pump recomputes may land on the other side of a half µL: 1 µL), and a counter lost
meanwhile is re-anchored as what was kept plus the rise since, each rounded (1 µL). Anything
more is delivery, judged afresh. At the most concentrated ketamine a protocol allows this
is micrograms."""


def _exceedance_acknowledged(inputs: TickInputs, snap: PumpSnapshot, delivered: int) -> bool:
    """The exceedance a nurse acknowledged, still as it was: the pump neither delivers (by
    its mode, its rate, or the session's phase) nor has delivered more since."""
    acked = inputs.vtbi_exceeded_acknowledged_ul
    return (
        acked is not None
        and delivered <= acked + VTBI_ACK_COUNTER_NOISE_UL
        and not snap.mode.delivers
        and snap.rate_actual_ml_h == 0
        and inputs.phase not in _DELIVERY_PHASES
    )


def kvo_complete(limits: SupervisionLimits, delivered_ul: int, expected_ul: int) -> bool:
    """Keep-vein-open after the VTBI has run its course.

    KVO may add at most ``kvo_max_ul`` (the KVO rate for the protocol's observation time)
    after the VTBI. It is used up when either the pump's counter *or* the independently
    integrated expected volume says so: the expected volume grows with the clock alone, so
    this is also a time limit that a stuck or slow counter cannot stretch. The controller
    asks the same question to end KVO normally; the tick's rule is the backstop.
    """
    return max(delivered_ul, expected_ul) >= limits.vtbi_ul + limits.kvo_max_ul


def rule_rate(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """The pump's actual rate matches the commanded one once it has had time to settle.

    Judged while the pump runs the mode the phase commanded: infusing at the plan's rate,
    or keeping the vein open at the KVO rate (the controller then commands the KVO rate).
    A pump that went to KVO by itself while the phase is still infusing is not judged
    here: that is the moment the controller notices the VTBI.
    """
    snap = inputs.snapshot
    if snap is None or _RATE_JUDGED.get(inputs.phase) is not snap.mode:
        return
    if inputs.now_s - inputs.rate_commanded_at_s < limits.rate_settle_s:
        return
    commanded = inputs.commanded_rate_ml_h
    band = _band(limits.rate_tolerance_rel, commanded, limits.rate_tolerance_abs_ml_h)
    actual = snap.rate_actual_ml_h
    if abs(actual - commanded) > band:
        yield Action(
            ActionKind.PAUSE,
            Priority.HIGH,
            "tick.rate.mismatch",
            f"The pump runs at {actual} mL/h but {commanded} mL/h was commanded (tolerance "
            f"±{band:.2f} mL/h); the infusion is paused.",
            "tick.rate",
        )


def _stopped_by_its_alarm(snap: PumpSnapshot) -> bool:
    """The pump reports an alarm (a flag, or its alarm mode): ``rule_pump_alarm`` stops the
    infusion with a high alarm that names the cause."""
    return bool(snap.alarms) or snap.mode is PumpMode.ALARM


def rule_volume(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Delivered volume tracks the independently integrated expected volume.

    Under-infusion is not claimed while the pump reports its own alarm: a pump that
    stopped itself (an occlusion, air) delivers nothing from that moment while the expected
    volume runs on until pumpd's STOP, and the pump's alarm already stops the infusion and
    says why; a second, medium alarm telling the nurse to "check the line" would only have
    to be acknowledged as well. Nor is it claimed while the session is paused: the pause
    it demands is in effect, and demanding it again would turn the acknowledged pause into
    a stop with a second alarm (the nurse trapped in a repeating alarm while checking the
    line). Over-infusion is judged whatever the pump says."""
    snap = inputs.snapshot
    if snap is None or inputs.phase not in _ACCOUNTED_PHASES:
        return
    delivered = _delivered_ul(inputs, snap)
    expected = inputs.expected_volume_ul
    band = _band(
        limits.volume_tolerance_rel, Decimal(expected), Decimal(limits.volume_tolerance_abs_ul)
    )
    rule = "tick.volume"
    if delivered - expected > band:
        yield Action(
            ActionKind.STOP,
            Priority.HIGH,
            "tick.volume.over_infusion",
            f"{delivered} µL delivered but {expected} µL expected (tolerance +{band:.0f} µL); "
            "over-infusion, the infusion is stopped.",
            rule,
        )
    elif (
        expected - delivered > band
        and inputs.phase is not SessionPhase.PAUSED
        and not _stopped_by_its_alarm(snap)
    ):
        yield Action(
            ActionKind.PAUSE,
            Priority.MEDIUM,
            "tick.volume.under_infusion",
            f"{delivered} µL delivered but {expected} µL expected (tolerance −{band:.0f} µL); "
            "under-infusion, the infusion is paused: check the line for occlusion or leak.",
            rule,
        )


def rule_pause(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """A pause reminds on a ladder and ends the infusion when it lasts too long."""
    if inputs.paused_since_s is None:
        return
    paused_s = inputs.now_s - inputs.paused_since_s
    rule = "tick.pause"
    if paused_s >= limits.pause_stop_after_s:
        yield Action(
            ActionKind.STOP,
            Priority.MEDIUM,
            "tick.pause.too_long",
            f"Paused for {paused_s / 60:.1f} min, the limit is "
            f"{limits.pause_stop_after_s / 60:.1f} min; the infusion is ended.",
            rule,
        )
    elif paused_s >= limits.pause_remind_after_s:
        number = 1 + int((paused_s - limits.pause_remind_after_s) // limits.pause_remind_every_s)
        last = paused_s + limits.pause_remind_every_s >= limits.pause_stop_after_s
        yield Action(
            ActionKind.REMIND,
            Priority.MEDIUM if last else Priority.LOW,
            f"tick.pause.reminder.{number}",
            f"Paused for {paused_s / 60:.1f} min (reminder {number}); the infusion ends at "
            f"{limits.pause_stop_after_s / 60:.1f} min of pause.",
            rule,
        )


def rule_input_pending(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """GIP 2.2.1: while a person's input is pending, re-alert every interval.

    A double-check, a start, an adjustment's confirmation or an alarm's acknowledgement
    left waiting reminds at each full ``input_remind_every_s`` of waiting; the number in
    the code makes each a new reminder. Low priority (awareness) unless an alarm is
    latched: then the reminder carries that alarm's priority, since the alarm still waits.
    """
    kind, since = inputs.pending_input, inputs.input_pending_since_s
    if kind is None or since is None:
        return
    waited_s = inputs.now_s - since
    every_s = limits.input_remind_every_s
    if waited_s < every_s:
        return
    number = int(waited_s // every_s)
    what, waits_for = _PENDING_WORDS[kind]
    yield Action(
        ActionKind.REMIND,
        inputs.latched_alarm_priority or Priority.LOW,
        f"tick.input.{kind.value}.reminder.{number}",
        f"{what} has waited {waited_s / 60:.0f} min {waits_for} (reminder {number}, every "
        f"{every_s / 60:.0f} min).",
        "tick.input",
    )


def _vitals_rules(limits: SupervisionLimits, inputs: TickInputs) -> VitalsRules | None:
    if limits.vitals is None or inputs.phase not in _VITALS_PHASES:
        return None
    return limits.vitals


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def rule_vitals_range(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Vitals outside the stop band stop, outside the pause band pause (alarm when idle)."""
    rules = _vitals_rules(limits, inputs)
    reading = inputs.vitals
    if rules is None or reading is None:
        return
    delivering = inputs.phase in _DELIVERY_PHASES
    stop_effect = "the infusion is stopped" if delivering else "see the patient now"
    pause_effect = "the infusion is paused" if delivering else "see the patient"
    # Not delivering: an alarm, once; after its acknowledgement a reminder until a new
    # reading (the nurse is not made to acknowledge the same reading again and again).
    idle_kind = ActionKind.REMIND if inputs.vitals_acknowledged else ActionKind.ALARM
    stop_found = breaches(rules.stop, reading)
    stop_measures = {b.measure for b in stop_found}
    for breach in stop_found:
        yield Action(
            ActionKind.STOP if delivering else idle_kind,
            Priority.HIGH,
            f"tick.vitals.stop.{breach.code_suffix}",
            _sentence(f"{breach.describe()} of the stop band; {stop_effect}."),
            "tick.vitals.range",
        )
    for breach in breaches(rules.pause, reading):
        if breach.measure in stop_measures:
            continue
        yield Action(
            ActionKind.PAUSE if delivering else idle_kind,
            Priority.MEDIUM,
            f"tick.vitals.pause.{breach.code_suffix}",
            _sentence(f"{breach.describe()} of the pause band; {pause_effect}."),
            "tick.vitals.range",
        )


def rule_vitals_due(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Vitals are due every interval while infusing and observing; overdue ones remind louder."""
    rules = _vitals_rules(limits, inputs)
    if rules is None:
        return
    rule = "tick.vitals.due"
    if inputs.vitals is None or inputs.vitals_taken_s is None:
        yield Action(
            ActionKind.REMIND,
            Priority.MEDIUM,
            "tick.vitals.none",
            "No vital signs are recorded for this session; record them now.",
            rule,
        )
        return
    age_s = inputs.now_s - inputs.vitals_taken_s
    due_s = rules.interval_min * 60
    if age_s > due_s + rules.overdue_grace_min * 60:
        yield Action(
            ActionKind.REMIND,
            Priority.MEDIUM,
            "tick.vitals.overdue",
            f"Vital signs are {age_s / 60:.0f} min old; they are due every "
            f"{rules.interval_min} min and now overdue.",
            rule,
        )
    elif age_s >= due_s:
        yield Action(
            ActionKind.REMIND,
            Priority.LOW,
            "tick.vitals.due",
            f"Vital signs are due (every {rules.interval_min} min).",
            rule,
        )
    missing = missing_kinds(rules, inputs.vitals)
    if missing:
        yield Action(
            ActionKind.REMIND,
            Priority.LOW,
            "tick.vitals.incomplete",
            f"The last vital signs lack {', '.join(missing)}.",
            rule,
        )


def rule_duration(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Delivery running far longer than planned means something is not as programmed.

    The planned duration is the infusion's; keep-vein-open after the VTBI is bounded by
    its own allowance (``kvo_complete``), so the KVO phase is not timed here.
    """
    if limits.max_delivery_s is None or inputs.delivery_elapsed_s is None:
        return
    if inputs.phase not in _TIMED_PHASES:
        return
    running_s = inputs.delivery_elapsed_s
    if running_s > limits.max_delivery_s:
        yield Action(
            ActionKind.ALARM,
            Priority.MEDIUM,
            "tick.duration.exceeded",
            f"The infusion has run {running_s / 60:.1f} min, longer than the "
            f"{limits.max_delivery_s / 60:.1f} min allowed; review it.",
            "tick.duration",
        )


RULES: tuple[_Rule, ...] = (
    rule_pump_alarm,
    rule_comm,
    rule_volume_due_unanswered,
    rule_phase,
    rule_counters,
    rule_vtbi,
    rule_rate,
    rule_volume,
    rule_pause,
    rule_vitals_range,
    rule_vitals_due,
    rule_duration,
    rule_input_pending,
)


def evaluate(limits: SupervisionLimits, inputs: TickInputs) -> TickDecision:
    """Run every rule; the decision keeps every action, strongest and most urgent first."""
    if not isinstance(limits, SupervisionLimits):
        raise InvalidTickInput(f"limits must be SupervisionLimits, got {limits!r}")
    if not isinstance(inputs, TickInputs):
        raise InvalidTickInput(f"inputs must be TickInputs, got {inputs!r}")
    actions = [action for rule in RULES for action in rule(limits, inputs)]
    actions.sort(key=lambda a: (-a.kind.rank, -a.priority.rank))
    return TickDecision(tuple(actions))


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """The kernel's own supervision thresholds: engineering choices, not clinic policy.

    docs/safety/supervision-rules.md justifies each figure. ``max_unplanned_dose_mg`` caps
    the absolute volume band by drug content, so a concentrated solution gets a narrower
    band in µL than a dilute one.
    """

    comm_timeout_s: float = 5.0
    rate_tolerance_rel: Decimal = Decimal("0.05")
    rate_tolerance_abs_ml_h: Decimal = Decimal("0.5")
    rate_settle_s: float = 10.0
    volume_tolerance_rel: Decimal = Decimal("0.05")
    volume_tolerance_abs_ul: int = 500
    max_unplanned_dose_mg: Decimal = Decimal("1")
    vtbi_overrun_ul: int = 200
    duration_overrun_rel: Decimal = Decimal("0.25")
    input_reminder_every_s: float = 900.0


DEFAULT_POLICY = SupervisionPolicy()


def _ceil_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def supervision_limits(
    protocol: Protocol, plan: Plan, policy: SupervisionPolicy = DEFAULT_POLICY
) -> SupervisionLimits:
    """The limits one session is supervised with, from its protocol, its plan and the policy.

    Where several sources bound one figure they form a constraint chain that keeps the
    strictest; each chain's explanation goes into ``provenance`` for the audit record.
    """
    if not isinstance(protocol, Protocol) or not isinstance(plan, Plan):
        raise InvalidTickInput("supervision_limits needs a Protocol and its Plan")
    volume_band = ceiling("volume_tolerance_abs", "µL").tighten(
        Decimal(policy.volume_tolerance_abs_ul), rule="policy.volume_band", reason="kernel default"
    )
    if plan.concentration_mg_per_ml > 0:
        volume_band = volume_band.tighten(
            (policy.max_unplanned_dose_mg / plan.concentration_mg_per_ml * 1000).to_integral_value(
                rounding=ROUND_FLOOR
            ),
            rule="policy.max_unplanned_dose",
            reason=f"{policy.max_unplanned_dose_mg} mg at {plan.concentration_mg_per_ml} mg/mL",
        )
    delivery = (
        ceiling("delivery_time", "min")
        .tighten(
            protocol.limits.duration_min.hard_max,
            rule="protocol.limits.duration_min.hard_max",
            reason=protocol.key,
        )
        .tighten(
            plan.duration_min * (1 + policy.duration_overrun_rel),
            rule="policy.duration_overrun",
            reason=f"planned {plan.duration_min} min + {policy.duration_overrun_rel:%}",
        )
    )
    pause = protocol.pause
    kvo_ul = protocol.kvo_rate_ml_h * protocol.observation_min / 60 * 1000
    # Both chains start from a bound, so clamping that bound yields the chain's strictest.
    band_ul = volume_band.clamp(Decimal(policy.volume_tolerance_abs_ul))
    delivery_min = delivery.clamp(protocol.limits.duration_min.hard_max)
    return SupervisionLimits(
        vtbi_ul=plan.vtbi_ul,
        vtbi_overrun_ul=policy.vtbi_overrun_ul,
        kvo_max_ul=_ceil_int(kvo_ul),
        comm_timeout_s=policy.comm_timeout_s,
        rate_tolerance_rel=policy.rate_tolerance_rel,
        rate_tolerance_abs_ml_h=policy.rate_tolerance_abs_ml_h,
        rate_settle_s=policy.rate_settle_s,
        volume_tolerance_rel=policy.volume_tolerance_rel,
        volume_tolerance_abs_ul=int(band_ul),
        pause_remind_after_s=float(pause.reminder_after_min * 60),
        pause_remind_every_s=float(pause.reminder_interval_min * 60),
        pause_stop_after_s=float(pause.stop_after_min * 60),
        max_delivery_s=float(delivery_min * 60),
        vitals=protocol.vitals,
        provenance=(volume_band.explain(), delivery.explain()),
        # GIP 2.2.1's 15 min; the protocol format has no figure of its own for it.
        input_remind_every_s=policy.input_reminder_every_s,
    )

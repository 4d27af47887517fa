"""The tick's rules about delivery: the pump's own alarms, the link, the phase the pump is
in, its counters, the plan's volume and rate, the pause and the duration. Each rule only
*adds* actions (``safety.tick.evaluate`` keeps the strongest); docs/safety/supervision-rules.md
justifies every threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from safety.actions import Action, ActionKind, Priority
from safety.pump import PumpMode, PumpSnapshot, PumpWarning, flag_names, restart_evidence
from safety.runon import volume_due_unanswered
from safety.supervision import DELIVERY_PHASES, SessionPhase, SupervisionLimits, TickInputs

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
        inputs.phase in DELIVERY_PHASES
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
        and inputs.phase not in DELIVERY_PHASES
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

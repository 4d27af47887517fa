"""The infusion session: a pure state machine the controller drives, one per pump.

Nothing here does I/O or reads a clock. A nurse command or a device fact comes in with the
moment it happened (:class:`~pumpd.clock.Stamp`); the session checks it against the safety
kernel, and either refuses it (a typed error, nothing changed) or moves and returns a
:class:`Step` that names the pump command the controller must now carry out and the audit
events it must write. The controller writes the intent, commands the pump, reads the
result, and reports the confirmed fact back (``start_confirmed``, ``command_uncertain`` ...).

Every command is decided in full before anything changes: the guard and the routing run
first and produce the new data; then one ``transitions`` trigger moves the state, and its
``before`` callback swaps in the new data with a single assignment that cannot fail. The
machine is synchronous and unqueued because no callback awaits or fires another event, so
nothing can interrupt a transition halfway (docs/session.md has the reasoning).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from pydantic import ValidationError
from transitions import EventData, Machine, MachineError

from pumpd.clock import Stamp
from pumpd.protocols import LoadedProtocol
from safety.actions import Priority
from safety.course import InvalidCourseHistory, PriorSession
from safety.order import Override
from safety.plan import Order, Patient, Plan, compute_plan
from safety.pump import InvalidPumpSnapshot, PumpMode, PumpSnapshot
from safety.start import InvalidStartInput, StartInputs, check_start, start_requirements
from safety.tick import SessionPhase
from safety.verdicts import Verdict
from safety.vitals import InvalidVitals, VitalsReading

from . import rules
from .errors import (
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
    ReentrantTrigger,
    RestoreError,
)
from .records import (
    AcknowledgedAlarm,
    AdjustmentRecord,
    AlarmRecord,
    AlarmSource,
    At,
    NoteRecord,
    OrderRecord,
    OverrideRecord,
    PatientRecord,
    SessionData,
    UncertainRecord,
    VerdictRecord,
    VitalsRecord,
)
from .states import _PHASE, EDGES, CommandKind, State, allowed_triggers

SNAPSHOT_FORMAT: Final = 1
ALARM_SOURCES: Final = ("pump", "kernel", "vitals", "daemon")

# Audit event types the session names that the audit catalogue does not define yet
# (reported to the audit owner); every other name is a catalogue entry.
PROPOSED_EVENTS: Final = frozenset({"session.adjusted", "session.note"})


@dataclass(frozen=True, slots=True)
class CommandIntent:
    """A pump command the session now wants; the controller audits it, then sends it."""

    kind: CommandKind
    rate_ml_h: Decimal | None = None
    vtbi_ul: int | None = None
    reason_code: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one accepted trigger did, and what the controller must do next."""

    trigger: str
    source: State
    dest: State
    command: CommandIntent | None
    audit_events: tuple[str, ...]


_REQUESTED: Final = {
    CommandKind.PRIME: State.PRIME_REQUESTED,
    CommandKind.START: State.START_REQUESTED,
    CommandKind.PAUSE: State.PAUSE_REQUESTED,
    CommandKind.RESUME: State.RESUME_REQUESTED,
    CommandKind.SET_RATE: State.ADJUSTING,
}


class _Keep:
    """Marker: the proposed plan stays as it is."""


_KEEP: Final = _Keep()


@dataclass(frozen=True, slots=True)
class _Decision:
    dest: State
    data: SessionData
    plan: Plan
    proposed_plan: Plan | None
    command: CommandIntent | None
    audit: tuple[str, ...]


class _Core:
    """The object the machine moves: the state name and a way back to its session."""

    def __init__(self, session: Session, state: State) -> None:
        self.session = session
        self.state = state.value

    def edge_matches(self, event: EventData) -> bool:
        return self.session._edge_matches(event)

    def apply(self, event: EventData) -> None:
        self.session._apply(event)


def _check_stamp(at: object) -> Stamp:
    if not isinstance(at, Stamp):
        raise InvalidCommandInput(f"at must be a pumpd.clock.Stamp, got {at!r}")
    return at


def _check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidCommandInput(f"{name} must be a string, got {value!r}")
    return value


def _check_type(name: str, value: object, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        raise InvalidCommandInput(f"{name} has the wrong type: {value!r}")


def _refuse_if(trigger: str, verdicts: Sequence[Verdict]) -> None:
    if verdicts:
        raise CommandRefused(trigger, verdicts)


def _build_machine() -> Machine:
    # One machine for every session: the edge table is the same for all of them, and the
    # models are passed per trigger, so the machine itself holds no session (and no state).
    return Machine(
        model=None,
        states=[s.value for s in State],
        transitions=[
            {
                "trigger": edge.trigger,
                "source": [s.value for s in edge.sources],
                "dest": None if edge.dest is None else edge.dest.value,
                "conditions": ["edge_matches"],
                "before": ["apply"],
            }
            for edge in EDGES
        ],
        initial=State.PROGRAMMED.value,
        auto_transitions=False,
        send_event=True,
        queued=False,
    )


MACHINE: Final = _build_machine()
"""The transitions machine of every session (the diagram is drawn from it)."""


class Session:
    """One infusion session: its state, its data, and the commands that move it."""

    def __init__(
        self,
        protocol: LoadedProtocol,
        data: SessionData,
        state: State,
        plan: Plan,
        proposed_plan: Plan | None,
    ) -> None:
        self._protocol = protocol
        self._data = data
        self._plan = plan
        self._proposed_plan = proposed_plan
        self._firing = False
        self._core = _Core(self, state)

    # -- reading ---------------------------------------------------------------------

    @property
    def state(self) -> State:
        return State(self._core.state)

    @property
    def data(self) -> SessionData:
        return self._data

    @property
    def plan(self) -> Plan:
        """The plan in effect (after any confirmed adjustment)."""
        return self._plan

    @property
    def proposed_plan(self) -> Plan | None:
        """The plan an adjustment proposes, shown to the nurse before confirmation."""
        return self._proposed_plan

    @property
    def protocol(self) -> LoadedProtocol:
        return self._protocol

    @property
    def latched_alarm(self) -> AlarmRecord | None:
        """The most urgent latched alarm (the earliest among equals), or None."""
        if not self._data.alarms:
            return None
        return max(self._data.alarms, key=lambda a: a.priority.rank)

    def allowed(self) -> tuple[str, ...]:
        """The triggers that exist in the current state (guards may still refuse them)."""
        return allowed_triggers(self.state)

    def phase(self) -> SessionPhase:
        """The phase the safety kernel's tick must be told for this state."""
        return self._phase_of(self.state)

    def _phase_of(self, state: State) -> SessionPhase:
        d = self._data
        if state in _PHASE:
            return _PHASE[state]
        if state is State.UNCERTAIN and d.pending_command in _REQUESTED:
            # While the outcome is unknown the tick allows what was asked for, no more.
            return _PHASE[_REQUESTED[d.pending_command]]
        if state in (State.STOP_REQUESTED, State.UNCERTAIN) and d.requested_in in _PHASE:
            return _PHASE[d.requested_in]
        if not d.start_commanded:
            return SessionPhase.READY
        if state is State.STOPPED or d.completed_at or d.observation_started_at:
            return SessionPhase.OBSERVATION
        return SessionPhase.PAUSED

    def paused_since_s(self) -> float | None:
        """Monotonic start of the pause, exactly when :meth:`phase` is PAUSED (the tick's rule)."""
        if self.phase() is not SessionPhase.PAUSED:
            return None
        d = self._data
        if d.paused_at is not None:
            return d.paused_at.mono_s
        first = d.alarms[0].at if d.alarms else None
        return first.mono_s if first is not None else d.programmed_at.mono_s

    # -- the firing mechanism -------------------------------------------------------

    def _edge_matches(self, event: EventData) -> bool:
        decision: _Decision = event.kwargs["decision"]
        transition = event.transition
        if transition is None:
            return False
        dest = transition.dest if transition.dest is not None else transition.source
        return bool(dest == decision.dest.value)

    def _apply(self, event: EventData) -> None:
        decision: _Decision = event.kwargs["decision"]
        self._data, self._plan, self._proposed_plan = (
            decision.data,
            decision.plan,
            decision.proposed_plan,
        )

    def _require(self, trigger: str) -> State:
        state = self.state
        if self._firing:
            raise ReentrantTrigger(f"{trigger} fired while another trigger was running")
        if trigger not in allowed_triggers(state):
            raise InvalidInState(trigger, state.value, allowed_triggers(state))
        return state

    def _fire(
        self,
        trigger: str,
        source: State,
        dest: State,
        data: SessionData,
        *,
        command: CommandIntent | None = None,
        audit: Iterable[str] = (),
        plan: Plan | None = None,
        proposed_plan: Plan | _Keep | None = _KEEP,
    ) -> Step:
        proposed = self._proposed_plan if isinstance(proposed_plan, _Keep) else proposed_plan
        if proposed is None and data.pending_adjustment is not None:
            # A proposal is dropped together with the plan it showed, never one without the other.
            data = data.model_copy(update={"pending_adjustment": None})
        decision = _Decision(
            dest=dest,
            data=data,
            plan=self._plan if plan is None else plan,
            proposed_plan=proposed,
            command=command,
            audit=tuple(audit),
        )
        self._firing = True
        try:
            moved = MACHINE.events[trigger].trigger(self._core, decision=decision)
        except MachineError as exc:
            raise InvalidInState(trigger, source.value, allowed_triggers(source)) from exc
        finally:
            self._firing = False
        if not moved:
            raise AssertionError(f"unreachable: no edge {trigger} {source} -> {dest}")
        return Step(trigger, source, dest, command, decision.audit)

    def _update(self, **changes: object) -> SessionData:
        return self._data.model_copy(update=changes)

    # -- opening and programming ----------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        session_id: str,
        pump_id: str,
        patient_ref: str,
        protocol: LoadedProtocol,
        by: str,
        patient: Patient,
        order: Order,
        at: Stamp,
        override: Override | None = None,
    ) -> tuple[Session, Step]:
        """Program a new session; refused (CommandRefused) when the kernel refuses the plan."""
        for name, value in (("session_id", session_id), ("pump_id", pump_id)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidCommandInput(f"{name} must be a non-empty string, got {value!r}")
        if not isinstance(patient_ref, str) or not patient_ref.strip():
            raise InvalidCommandInput(
                f"patient_ref must be a non-empty string, got {patient_ref!r}"
            )
        _check_type("protocol", protocol, LoadedProtocol)
        stamp = _check_stamp(at)
        plan, dest, verdicts = cls._program_checks(protocol, by, patient, order, override)
        _refuse_if("program", verdicts)
        assert plan is not None
        proto = protocol.protocol
        data = SessionData(
            session_id=session_id,
            pump_id=pump_id,
            patient_ref=patient_ref,
            protocol_id=proto.id,
            protocol_version=proto.version,
            protocol_sha256=protocol.sha256,
            patient=PatientRecord.of(patient),
            order=OrderRecord.of(order),
            plan_override=None if override is None else OverrideRecord.of(override),
            programmed_by=by,
            programmed_at=At.of(stamp),
        )
        session = cls(protocol, data, dest, plan, None)
        step = Step("program", dest, dest, None, cls._program_audit(plan, override))
        return session, step

    @staticmethod
    def _program_checks(
        protocol: LoadedProtocol,
        by: object,
        patient: object,
        order: object,
        override: object,
    ) -> tuple[Plan | None, State, list[Verdict]]:
        _check_type("patient", patient, Patient)
        _check_type("order", order, Order)
        if override is not None:
            _check_type("override", override, Override)
        assert isinstance(patient, Patient)
        assert isinstance(order, Order)
        assert override is None or isinstance(override, Override)
        verdicts = rules.person("program", by, "programming")
        plan, found = rules.plan_or_refusal(protocol.protocol, patient, order, override)
        verdicts += found
        dest = State.PROGRAMMED if protocol.protocol.double_check_required else State.VERIFIED
        return plan, dest, verdicts

    @staticmethod
    def _program_audit(plan: Plan, override: Override | None) -> tuple[str, ...]:
        if override is not None and plan.override.required:
            return ("session.programmed", "override.granted")
        return ("session.programmed",)

    def program(
        self,
        *,
        by: str,
        patient: Patient,
        order: Order,
        at: Stamp,
        override: Override | None = None,
    ) -> Step:
        """Program again before priming: a new plan, and the double-check starts over."""
        source = self._require("program")
        stamp = _check_stamp(at)
        plan, dest, verdicts = self._program_checks(self._protocol, by, patient, order, override)
        _refuse_if("program", verdicts)
        assert plan is not None
        data = self._update(
            patient=PatientRecord.of(patient),
            order=OrderRecord.of(order),
            plan_override=None if override is None else OverrideRecord.of(override),
            programmed_by=by,
            programmed_at=At.of(stamp),
            confirmed_by=None,
            confirmed_at=None,
        )
        return self._fire(
            "program", source, dest, data, plan=plan, audit=self._program_audit(plan, override)
        )

    def confirm(self, *, by: str, weight: str, at: Stamp) -> Step:
        """The independent double-check: a second person, who types the weight again."""
        source = self._require("confirm")
        stamp = _check_stamp(at)
        verdicts = rules.person("double_check", by, "double-check")
        if not verdicts:
            verdicts += rules.double_check(self._data.programmed_by, by)
        verdicts += rules.weight_reentry(self._data.patient.weight_kg, weight)
        _refuse_if("confirm", verdicts)
        data = self._update(confirmed_by=by, confirmed_at=At.of(stamp))
        return self._fire(
            "confirm", source, State.VERIFIED, data, audit=("double_check.completed",)
        )

    # -- priming and starting -------------------------------------------------------

    def request_prime(self, *, by: str, line_disconnected: bool, at: Stamp) -> Step:
        """Ask to prime; needs the nurse's word that the line is off the patient."""
        source = self._require("request_prime")
        stamp = _check_stamp(at)
        verdicts = rules.person("prime", by, "prime request")
        verdicts += rules.prime_allowed(self._data.start_commanded, line_disconnected)
        _refuse_if("request_prime", verdicts)
        req = start_requirements(self._protocol.protocol)
        data = self._update(
            line_disconnected_by=by,
            prime_requested_at=At.of(stamp),
            pending_command=CommandKind.PRIME,
            requested_in=source,
        )
        command = CommandIntent(
            CommandKind.PRIME,
            rate_ml_h=self._protocol.protocol.priming.rate_ml_h,
            vtbi_ul=req.prime_volume_ul,
            reason_code="nurse.prime",
        )
        return self._fire(
            "request_prime",
            source,
            State.PRIME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def request_start(
        self,
        *,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        at: Stamp,
        primed_confirmed: bool = False,
        override: Override | None = None,
    ) -> Step:
        """Ask to start; every start check of the kernel must pass (soft ones overridden)."""
        source = self._require("request_start")
        stamp = _check_stamp(at)
        if override is not None:
            _check_type("override", override, Override)
        if pump is not None:
            _check_type("pump", pump, PumpSnapshot)
        if isinstance(prior_sessions, str) or not all(
            isinstance(p, PriorSession) for p in prior_sessions
        ):
            raise InvalidCommandInput("prior_sessions must be a sequence of PriorSession")
        verdicts = rules.person("start", by, "start request")
        if verdicts:
            raise CommandRefused("request_start", verdicts)
        vitals = self._data.vitals[-1].reading() if self._data.vitals else None
        try:
            inputs = StartInputs(
                snapshot=pump,
                primed_confirmed=primed_confirmed,
                operator_id=by,
                double_checker_id=self._data.confirmed_by,
                baseline_vitals=vitals,
                prior_sessions=tuple(prior_sessions),
                planned_dose_mg_per_kg=self._plan.dose_mg_per_kg,
                now=stamp.utc,
            )
            assessment = check_start(start_requirements(self._protocol.protocol), inputs)
        except (InvalidStartInput, InvalidVitals, InvalidCourseHistory, InvalidPumpSnapshot) as e:
            raise InvalidCommandInput(f"start input: {e}") from e
        found = rules.start_override(self._protocol.protocol, assessment.verdicts, override)
        _refuse_if("request_start", found)
        data = self._update(
            start_requested_by=by,
            start_requested_at=At.of(stamp),
            start_override=None if override is None else OverrideRecord.of(override),
            start_verdicts=tuple(VerdictRecord.of(v) for v in assessment.verdicts),
            pending_command=CommandKind.START,
            requested_in=source,
        )
        command = CommandIntent(
            CommandKind.START,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.start",
        )
        audit = ["pump.command.requested"]
        if override is not None:
            audit.insert(0, "override.granted")
        return self._fire(
            "request_start", source, State.START_REQUESTED, data, command=command, audit=audit
        )

    # -- pause, resume, adjust, stop ------------------------------------------------

    def pause(self, *, by: str, at: Stamp, reason_code: str = "nurse.pause") -> Step:
        """Pause the infusion (a nurse, or the controller obeying the kernel)."""
        source = self._require("pause")
        _check_stamp(at)
        _check_text("reason_code", reason_code)
        _refuse_if("pause", rules.person("pause", by, "pause"))
        command = CommandIntent(CommandKind.PAUSE, reason_code=reason_code)
        if source is State.ALARM:
            data = self._update(pause_reason_code=reason_code)
            return self._fire(
                "pause", source, source, data, command=command, audit=("pump.command.requested",)
            )
        data = self._update(
            pause_reason_code=reason_code,
            pending_command=CommandKind.PAUSE,
            requested_in=source,
        )
        return self._fire(
            "pause",
            source,
            State.PAUSE_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def resume(self, *, by: str, at: Stamp) -> Step:
        """Resume a paused infusion at the plan in effect; never out of ALARM."""
        source = self._require("resume")
        _check_stamp(at)
        _refuse_if("resume", rules.person("resume", by, "resume"))
        data = self._update(pending_command=CommandKind.RESUME, requested_in=source)
        command = CommandIntent(
            CommandKind.RESUME,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.resume",
        )
        return self._fire(
            "resume",
            source,
            State.RESUME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def adjust(
        self,
        *,
        by: str,
        reason: str,
        order: Order,
        delivered_ul: int,
        at: Stamp,
        override: Override | None = None,
        protocol: LoadedProtocol | None = None,
    ) -> Step:
        """Propose a new plan for the infusion (step one of two); nothing changes at the pump.

        ``protocol`` is what the caller believes it is adjusting under; a different one is
        refused (changing drug or protocol mid-infusion means stop and program anew).
        """
        source = self._require("adjust")
        stamp = _check_stamp(at)
        _check_type("order", order, Order)
        if override is not None:
            _check_type("override", override, Override)
        if protocol is not None:
            _check_type("protocol", protocol, LoadedProtocol)
        verdicts = rules.person("adjust", by, "adjustment")
        verdicts += rules.reason_text("adjust.reason_missing", reason, "adjustment")
        plan, found = rules.plan_or_refusal(
            self._protocol.protocol, self._data.patient.patient(), order, override
        )
        verdicts += found
        verdicts += rules.adjust_allowed(
            self._protocol.protocol.key,
            self._protocol.sha256,
            None if protocol is None else protocol.protocol.key,
            None if protocol is None else protocol.sha256,
            plan,
            delivered_ul,
        )
        _refuse_if("adjust", verdicts)
        assert plan is not None
        proposal = AdjustmentRecord(
            order=OrderRecord.of(order),
            reason=reason,
            proposed_by=by,
            proposed_at=At.of(stamp),
            override=None if override is None else OverrideRecord.of(override),
            rate_ml_h=plan.rate_ml_h,
            vtbi_ul=plan.vtbi_ul,
        )
        data = self._update(pending_adjustment=proposal)
        return self._fire("adjust", source, source, data, proposed_plan=plan)

    def _nothing_proposed(self, trigger: str) -> None:
        if self._data.pending_adjustment is None or self._proposed_plan is None:
            raise CommandRefused(
                trigger,
                [rules.hard("adjust.nothing_proposed", "There is no proposed adjustment.")],
            )

    def confirm_adjust(self, *, by: str, at: Stamp) -> Step:
        """Step two: the nurse has seen the new plan and confirms it."""
        source = self._require("confirm_adjust")
        stamp = _check_stamp(at)
        _refuse_if("confirm_adjust", rules.person("adjust", by, "confirmation"))
        self._nothing_proposed("confirm_adjust")
        pending = self._data.pending_adjustment
        new_plan = self._proposed_plan
        assert pending is not None
        assert new_plan is not None
        confirmed = pending.model_copy(update={"confirmed_by": by, "confirmed_at": At.of(stamp)})
        if source is State.PAUSED:
            data = self._update(
                order=confirmed.order,
                pending_adjustment=None,
                adjustments=(*self._data.adjustments, confirmed),
            )
            return self._fire(
                "confirm_adjust",
                source,
                source,
                data,
                plan=new_plan,
                proposed_plan=None,
                audit=("session.adjusted",),
            )
        data = self._update(
            pending_adjustment=confirmed,
            pending_command=CommandKind.SET_RATE,
            requested_in=source,
        )
        command = CommandIntent(
            CommandKind.SET_RATE,
            rate_ml_h=new_plan.rate_ml_h,
            vtbi_ul=new_plan.vtbi_ul,
            reason_code="nurse.adjust",
        )
        return self._fire(
            "confirm_adjust",
            source,
            State.ADJUSTING,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def cancel_adjust(self, *, by: str, at: Stamp) -> Step:
        source = self._require("cancel_adjust")
        _check_stamp(at)
        _refuse_if("cancel_adjust", rules.person("adjust", by, "cancellation"))
        self._nothing_proposed("cancel_adjust")
        data = self._update(pending_adjustment=None)
        return self._fire("cancel_adjust", source, source, data, proposed_plan=None)

    def stop(self, *, by: str, reason: str, at: Stamp, reason_code: str = "nurse.stop") -> Step:
        """Stop delivery; a reason is required. Allowed while a command is in doubt, too.

        Stopping is the one command that can never give more drug, so it is not held back
        by an uncertain command or a latched alarm (in ALARM it stays latched).
        """
        source = self._require("stop")
        _check_stamp(at)
        _check_text("reason_code", reason_code)
        verdicts = rules.person("stop", by, "stop")
        verdicts += rules.reason_text("stop.reason_missing", reason, "stop")
        _refuse_if("stop", verdicts)
        changes: dict[str, object] = {
            "stop_requested_by": by,
            "stop_reason_code": reason_code,
            "stop_reason": reason,
            "pending_adjustment": None,
        }
        command = CommandIntent(CommandKind.STOP, reason_code=reason_code)
        dest = source
        if source in (State.ALARM, State.STOP_REQUESTED):
            data = self._update(**changes)
        else:
            dest = State.STOP_REQUESTED
            data = self._update(**changes, pending_command=CommandKind.STOP, requested_in=source)
        return self._fire(
            "stop",
            source,
            dest,
            data,
            command=command,
            audit=("pump.command.requested",),
            proposed_plan=None,
        )

    # -- alarms ---------------------------------------------------------------------

    def acknowledge(
        self, *, by: str, pump_mode: PumpMode, at: Stamp, note: str | None = None
    ) -> Step:
        """A nurse acknowledges the latched alarms; the pump's mode decides where to go.

        Never to INFUSING: a paused pump leads to PAUSED (the nurse resumes explicitly), an
        idle one to STOPPED, OBSERVATION or back before the start. A pump still delivering
        or still in alarm is refused: the controller must stop it, or the pump's own alarm
        be cleared, first.
        """
        source = self._require("acknowledge")
        stamp = _check_stamp(at)
        _check_type("pump_mode", pump_mode, PumpMode)
        _check_text("note", note, optional=True)
        verdicts = rules.person("acknowledge", by, "acknowledgement")
        d = self._data
        post_delivery = d.completed_at is not None or d.observation_started_at is not None
        if pump_mode.delivers:
            verdicts.append(
                rules.hard(
                    "ack.pump_delivering",
                    f"The pump is still {pump_mode.value}; stop it before acknowledging.",
                )
            )
        elif pump_mode is PumpMode.ALARM:
            verdicts.append(
                rules.hard(
                    "ack.pump_in_alarm",
                    "The pump is still in alarm; clear the cause at the pump first.",
                )
            )
        elif (
            pump_mode is PumpMode.PAUSED
            and d.start_commanded
            and (post_delivery or d.stopped_at is not None)
        ):
            verdicts.append(
                rules.hard(
                    "ack.pump_not_idle",
                    "The pump still holds a paused program after the infusion ended; stop it "
                    "before acknowledging.",
                )
            )
        _refuse_if("acknowledge", verdicts)
        at_rec = At.of(stamp)
        acked = tuple(AcknowledgedAlarm(alarm=a, by=by, note=note, at=at_rec) for a in d.alarms)
        changes: dict[str, object] = {
            "alarms": (),
            "acknowledged_alarms": (*d.acknowledged_alarms, *acked),
            "pending_command": None,
        }
        audit = ["alarm.acknowledged"]
        if not d.start_commanded:
            checked = d.confirmed_by is not None
            needed = self._protocol.protocol.double_check_required
            dest = State.PROGRAMMED if needed and not checked else State.VERIFIED
        elif post_delivery:
            dest = State.OBSERVATION
            if d.observation_started_at is None:
                changes["observation_started_at"] = at_rec
                audit.append("observation.started")
        elif d.stopped_at is not None:
            dest = State.STOPPED
        elif pump_mode is PumpMode.PAUSED:
            dest = State.PAUSED
            if d.paused_at is None:
                changes["paused_at"] = d.alarms[0].at if d.alarms else at_rec
        else:
            dest = State.STOPPED
            changes["stopped_at"] = at_rec
            if d.stop_reason_code is None:
                first = d.alarms[0] if d.alarms else None
                changes["stop_reason_code"] = first.code if first else "alarm"
                changes["stop_reason"] = first.message if first else "stopped by an alarm"
            audit.append("session.stopped")
        if d.last_uncertain is not None and d.last_uncertain.resolved_to is None:
            changes["last_uncertain"] = d.last_uncertain.model_copy(
                update={"resolved_to": dest, "resolved_at": at_rec}
            )
        return self._fire(
            "acknowledge", source, dest, self._update(**changes), audit=audit, proposed_plan=None
        )

    # -- records --------------------------------------------------------------------

    def record_vitals(self, *, by: str, reading: VitalsReading, at: Stamp) -> Step:
        source = self._require("record_vitals")
        stamp = _check_stamp(at)
        _check_type("reading", reading, VitalsReading)
        _refuse_if("record_vitals", rules.person("vitals", by, "vital signs"))
        record = VitalsRecord.of(reading, by, stamp)
        data = self._update(vitals=(*self._data.vitals, record))
        return self._fire("record_vitals", source, source, data, audit=("vitals.recorded",))

    def note(self, *, by: str, text: str, at: Stamp) -> Step:
        source = self._require("note")
        stamp = _check_stamp(at)
        verdicts = rules.person("note", by, "note")
        if not isinstance(text, str) or not text.strip():
            verdicts.append(rules.hard("note.empty", "A note needs some text."))
        _refuse_if("note", verdicts)
        data = self._update(
            notes=(*self._data.notes, NoteRecord(text=text, by=by, at=At.of(stamp)))
        )
        return self._fire("note", source, source, data, audit=("session.note",))

    # -- ending ---------------------------------------------------------------------

    def observe(self, *, by: str, at: Stamp) -> Step:
        """After an early stop, start watching the patient (drug was given)."""
        source = self._require("observe")
        stamp = _check_stamp(at)
        verdicts = rules.person("observe", by, "observation")
        if not self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "observe.nothing_given",
                    "No infusion was started, so there is nothing to observe; abort instead.",
                )
            )
        _refuse_if("observe", verdicts)
        data = self._update(observation_started_at=At.of(stamp))
        return self._fire(
            "observe", source, State.OBSERVATION, data, audit=("observation.started",)
        )

    def discharge(self, *, by: str, checklist_confirmed: Collection[str], at: Stamp) -> Step:
        """Discharge after the protocol's observation time, with every checklist item ticked."""
        source = self._require("discharge")
        stamp = _check_stamp(at)
        if isinstance(checklist_confirmed, str) or not all(
            isinstance(item, str) for item in checklist_confirmed
        ):
            raise InvalidCommandInput("checklist_confirmed must be a collection of item strings")
        started = self._data.observation_started_at
        if started is None:
            raise AssertionError("unreachable: OBSERVATION is always entered with its start")
        proto = self._protocol.protocol
        verdicts = rules.person("discharge", by, "discharge")
        verdicts += rules.discharge_allowed(
            stamp.mono_s - started.mono_s,
            proto.observation_min,
            proto.discharge_checklist,
            set(checklist_confirmed),
        )
        _refuse_if("discharge", verdicts)
        data = self._update(
            discharged_by=by,
            discharged_at=At.of(stamp),
            checklist_confirmed=tuple(i for i in proto.discharge_checklist),
        )
        return self._fire(
            "discharge",
            source,
            State.DISCHARGED,
            data,
            audit=("observation.ended", "patient.discharged"),
        )

    def abort(self, *, by: str, reason: str, at: Stamp) -> Step:
        """Abandon a session before any drug was given; after a start, stop and observe."""
        source = self._require("abort")
        _check_stamp(at)
        verdicts = rules.person("abort", by, "abort")
        verdicts += rules.reason_text("abort.reason_missing", reason, "abort")
        if self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "abort.after_start",
                    "Drug may have reached the patient; the session must end in observation.",
                )
            )
        _refuse_if("abort", verdicts)
        data = self._update(aborted_by=by, abort_reason=reason)
        return self._fire("abort", source, State.ABORTED, data, audit=("session.stopped",))

    # -- device facts ---------------------------------------------------------------

    def _confirmed(self, trigger: str, dest: State, *extra: str, **changes: object) -> Step:
        source = self._require(trigger)
        data = self._update(pending_command=None, **changes)
        return self._fire(trigger, source, dest, data, audit=("pump.command.confirmed", *extra))

    def prime_confirmed(self, *, at: Stamp) -> Step:
        _check_stamp(at)
        return self._confirmed("prime_confirmed", State.PRIMING)

    def prime_complete(self, *, volume_primed_ul: int, at: Stamp) -> Step:
        source = self._require("prime_complete")
        stamp = _check_stamp(at)
        v = volume_primed_ul
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidCommandInput(f"volume_primed_ul must be an integer ≥ 0, got {v!r}")
        data = self._update(primed_at=At.of(stamp), volume_primed_ul=v)
        return self._fire("prime_complete", source, State.PRIMED, data)

    def start_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("start_confirmed")
        stamp = _check_stamp(at)
        if source is State.RESUME_REQUESTED:
            return self._confirmed(
                "start_confirmed", State.INFUSING, "session.resumed", paused_at=None
            )
        return self._confirmed(
            "start_confirmed", State.INFUSING, "session.started", started_at=At.of(stamp)
        )

    def pause_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("pause_confirmed")
        at_rec = At.of(_check_stamp(at))
        if source is State.ALARM:
            paused = self._data.paused_at or at_rec
            return self._confirmed("pause_confirmed", source, paused_at=paused)
        return self._confirmed("pause_confirmed", State.PAUSED, "session.paused", paused_at=at_rec)

    def stop_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("stop_confirmed")
        at_rec = At.of(_check_stamp(at))
        if source is State.COMPLETE:
            return self._confirmed(
                "stop_confirmed",
                State.OBSERVATION,
                "observation.started",
                observation_started_at=at_rec,
            )
        settled: dict[str, object] = {}
        doubt = self._data.last_uncertain
        if doubt is not None and doubt.resolved_to is None:
            # A pump confirmed stopped settles any command that was still in doubt.
            dest = State.ALARM if source is State.ALARM else State.STOPPED
            settled["last_uncertain"] = doubt.model_copy(
                update={"resolved_to": dest, "resolved_at": at_rec}
            )
        if source is State.ALARM:
            stopped = self._data.stopped_at or at_rec
            return self._confirmed("stop_confirmed", source, stopped_at=stopped, **settled)
        return self._confirmed(
            "stop_confirmed", State.STOPPED, "session.stopped", stopped_at=at_rec, **settled
        )

    def _applied_adjustment(self, changes: dict[str, object]) -> Plan:
        pending = self._data.pending_adjustment
        new_plan = self._proposed_plan
        assert pending is not None
        assert new_plan is not None
        changes["order"] = pending.order
        changes["pending_adjustment"] = None
        changes["adjustments"] = (*self._data.adjustments, pending)
        return new_plan

    def adjust_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("adjust_confirmed")
        _check_stamp(at)
        changes: dict[str, object] = {"pending_command": None}
        new_plan = self._applied_adjustment(changes)
        return self._fire(
            "adjust_confirmed",
            source,
            State.INFUSING,
            self._update(**changes),
            plan=new_plan,
            proposed_plan=None,
            audit=("pump.command.confirmed", "session.adjusted"),
        )

    def vtbi_reached(self, *, at: Stamp) -> Step:
        """The planned volume is in; the controller must end delivery (KVO or idle)."""
        source = self._require("vtbi_reached")
        stamp = _check_stamp(at)
        data = self._update(
            completed_at=At.of(stamp),
            pending_command=CommandKind.STOP,
            requested_in=State.COMPLETE,
            pending_adjustment=None,
        )
        command = CommandIntent(CommandKind.STOP, reason_code="infusion.complete")
        return self._fire(
            "vtbi_reached",
            source,
            State.COMPLETE,
            data,
            command=command,
            audit=("infusion.completed", "pump.command.requested"),
            proposed_plan=None,
        )

    def alarm(
        self,
        *,
        code: str,
        priority: Priority,
        message: str,
        source: AlarmSource,
        at: Stamp,
    ) -> Step:
        """Latch an alarm (from the pump, the kernel, vitals or the daemon itself)."""
        state = self._require("alarm")
        stamp = _check_stamp(at)
        _check_type("priority", priority, Priority)
        if source not in ALARM_SOURCES:
            raise InvalidCommandInput(f"source must be one of {ALARM_SOURCES}, got {source!r}")
        for name, value in (("code", code), ("message", message)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidCommandInput(f"an alarm needs a {name}, got {value!r}")
        record = AlarmRecord(
            code=code,
            priority=priority,
            message=message,
            source=source,
            raised_in=state,
            at=At.of(stamp),
        )
        data = self._update(alarms=(*self._data.alarms, record), pending_command=None)
        return self._fire(
            "alarm", state, State.ALARM, data, audit=("alarm.raised",), proposed_plan=None
        )

    def _check_command(self, command: object) -> CommandKind:
        if not isinstance(command, CommandKind):
            raise InvalidCommandInput(f"command must be a CommandKind, got {command!r}")
        pending = self._data.pending_command
        if self.state is not State.ALARM and pending is not None and command is not pending:
            raise InvalidCommandInput(
                f"the outstanding command is {pending.value}, not {command.value}"
            )
        return command

    def command_uncertain(self, *, command: CommandKind, detail: str, at: Stamp) -> Step:
        """The command went out and its outcome is unknown: nothing more until reconciled."""
        source = self._require("command_uncertain")
        stamp = _check_stamp(at)
        kind = self._check_command(command)
        if not isinstance(detail, str) or not detail.strip():
            raise InvalidCommandInput("an uncertain command needs a detail")
        record = UncertainRecord(
            command=kind,
            detail=detail,
            requested_in=self._data.requested_in if source is not State.ALARM else source,
            at=At.of(stamp),
        )
        dest = State.ALARM if source is State.ALARM else State.UNCERTAIN
        data = self._update(last_uncertain=record, pending_command=kind)
        if source is State.ALARM:
            data = data.model_copy(update={"pending_command": None})
        return self._fire(
            "command_uncertain", source, dest, data, audit=("pump.command.uncertain",)
        )

    def command_failed(self, *, command: CommandKind, detail: str, at: Stamp) -> Step:
        """The pump refused the command outright: an alarm, latched until acknowledged."""
        source = self._require("command_failed")
        stamp = _check_stamp(at)
        kind = self._check_command(command)
        if not isinstance(detail, str) or not detail.strip():
            raise InvalidCommandInput("a failed command needs a detail")
        record = AlarmRecord(
            code=f"command.{kind.value}.failed",
            priority=Priority.HIGH if kind is CommandKind.STOP else Priority.MEDIUM,
            message=f"The pump refused the {kind.value} command: {detail}",
            source="pump",
            raised_in=source,
            at=At.of(stamp),
        )
        data = self._update(alarms=(*self._data.alarms, record), pending_command=None)
        return self._fire(
            "command_failed",
            source,
            State.ALARM,
            data,
            audit=("pump.command.failed", "alarm.raised"),
            proposed_plan=None,
        )

    def reconciled(
        self, *, pump_mode: PumpMode, at: Stamp, rate_ml_h: Decimal | None = None
    ) -> Step:
        """A status read settles the uncertain command; a mismatch with the intent is an alarm."""
        source = self._require("reconciled")
        stamp = _check_stamp(at)
        _check_type("pump_mode", pump_mode, PumpMode)
        if rate_ml_h is not None and (
            not isinstance(rate_ml_h, Decimal) or not rate_ml_h.is_finite()
        ):
            raise InvalidCommandInput(f"rate_ml_h must be a finite Decimal, got {rate_ml_h!r}")
        d = self._data
        uncertain = d.last_uncertain
        if uncertain is None:
            raise RestoreError("UNCERTAIN without a record of the uncertain command")
        kind = uncertain.command
        at_rec = At.of(stamp)
        changes: dict[str, object] = {"pending_command": None}
        audit: list[str] = []
        plan: Plan | None = None
        dest: State | None = None
        mode = pump_mode
        delivering = mode in (PumpMode.INFUSING, PumpMode.KVO)
        if mode is PumpMode.ALARM:
            dest = None
        elif kind is CommandKind.PRIME and mode is PumpMode.PRIMING:
            dest = State.PRIMING
        elif kind in (CommandKind.START, CommandKind.RESUME) and delivering:
            dest = State.INFUSING
            if kind is CommandKind.START:
                changes["started_at"] = at_rec
                audit.append("session.started")
            else:
                changes["paused_at"] = None
                audit.append("session.resumed")
        elif (
            kind is CommandKind.SET_RATE
            and delivering
            and d.pending_adjustment is not None
            and rate_ml_h == d.pending_adjustment.rate_ml_h
        ):
            dest = State.INFUSING
            plan = self._applied_adjustment(changes)
            audit.append("session.adjusted")
        elif kind is CommandKind.PAUSE and mode is PumpMode.PAUSED:
            dest = State.PAUSED
            changes["paused_at"] = at_rec
            audit.append("session.paused")
        elif kind is CommandKind.STOP and mode is PumpMode.IDLE:
            if uncertain.requested_in is State.COMPLETE:
                dest = State.OBSERVATION
                changes["observation_started_at"] = at_rec
                audit.append("observation.started")
            else:
                dest = State.STOPPED
                changes["stopped_at"] = at_rec
                audit.append("session.stopped")
        if dest is None:
            dest = State.ALARM
            pump_alarm = mode is PumpMode.ALARM
            code = "pump.alarm" if pump_alarm else f"command.{kind.value}.not_applied"
            message = (
                f"After the uncertain {kind.value} command the pump is in alarm."
                if pump_alarm
                else f"The {kind.value} command did not take effect: the pump is {mode.value}."
            )
            record = AlarmRecord(
                code=code,
                priority=Priority.HIGH if (pump_alarm or mode.delivers) else Priority.MEDIUM,
                message=message,
                source="daemon",
                raised_in=source,
                at=at_rec,
            )
            changes["alarms"] = (*d.alarms, record)
            audit.append("alarm.raised")
        changes["last_uncertain"] = uncertain.model_copy(
            update={"resolved_to": dest, "resolved_at": at_rec}
        )
        return self._fire(
            "reconciled",
            source,
            dest,
            self._update(**changes),
            plan=plan,
            proposed_plan=None if plan is not None or dest is State.ALARM else _KEEP,
            audit=audit,
        )

    # -- snapshot and restore -------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON (Decimals and monotonic seconds as strings) for audit payloads."""
        return {
            "format": SNAPSHOT_FORMAT,
            "state": self.state.value,
            "data": self._data.model_dump(mode="json"),
            "plan": self._plan.as_dict(),
            "proposed_plan": None if self._proposed_plan is None else self._proposed_plan.as_dict(),
        }

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        protocol: LoadedProtocol,
        rebase_to: Stamp | None = None,
    ) -> Session:
        """The session a snapshot was taken of, in the same state with the same data.

        The plan is recomputed from the protocol and compared with the recorded one, so a
        changed protocol file or calculator cannot slip into a running session. After a
        restart, ``rebase_to`` (the new process's now) re-expresses every stored monotonic
        time on the new monotonic clock through its UTC time: the only bridge a restart
        leaves between two monotonic clocks.
        """
        if not isinstance(snapshot, Mapping) or snapshot.get("format") != SNAPSHOT_FORMAT:
            raise RestoreError(f"not a session snapshot of format {SNAPSHOT_FORMAT}")
        _check_type("protocol", protocol, LoadedProtocol)
        try:
            state = State(snapshot["state"])
            raw = snapshot["data"]
            if rebase_to is not None:
                raw = _rebased(raw, _check_stamp(rebase_to))
            data = SessionData.model_validate(raw)
        except (KeyError, ValueError, ValidationError) as exc:
            raise RestoreError(f"snapshot unreadable: {exc}") from exc
        proto = protocol.protocol
        if (data.protocol_id, data.protocol_version, data.protocol_sha256) != (
            proto.id,
            proto.version,
            protocol.sha256,
        ):
            raise RestoreError(
                f"snapshot is for {data.protocol_id}@{data.protocol_version} "
                f"({data.protocol_sha256[:12]}), not {proto.key} ({protocol.sha256[:12]})"
            )
        if bool(data.alarms) != (state is State.ALARM):
            raise RestoreError("latched alarms and the ALARM state disagree")
        if (state is State.UNCERTAIN) and (
            data.last_uncertain is None or data.last_uncertain.resolved_to is not None
        ):
            raise RestoreError("UNCERTAIN without an open uncertain command")
        if state in (State.OBSERVATION, State.DISCHARGED) and data.observation_started_at is None:
            raise RestoreError(f"{state.value} without the start of the observation")
        plan = compute_plan(proto, data.patient.patient(), data.order.order())
        if plan.as_dict() != snapshot.get("plan"):
            raise RestoreError("the recomputed plan differs from the recorded one")
        proposed: Plan | None = None
        if data.pending_adjustment is not None:
            proposed = compute_plan(
                proto, data.patient.patient(), data.pending_adjustment.order.order()
            )
        recorded_proposed = snapshot.get("proposed_plan")
        if (None if proposed is None else proposed.as_dict()) != recorded_proposed:
            raise RestoreError("the recomputed proposed plan differs from the recorded one")
        return cls(protocol, data, state, plan, proposed)


def _rebased(raw: Any, now: Stamp) -> Any:
    """``raw`` with every stored moment's monotonic seconds moved onto ``now``'s clock."""
    if isinstance(raw, dict):
        if set(raw) == {"mono_s", "utc"}:
            utc = dt.datetime.fromisoformat(raw["utc"])
            mono = now.mono_s - (now.utc - utc).total_seconds()
            return {"mono_s": repr(mono), "utc": raw["utc"]}
        return {k: _rebased(v, now) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_rebased(v, now) for v in raw]
    return raw

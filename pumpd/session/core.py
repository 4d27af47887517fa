"""The session's core: its data, the shared ``transitions`` machine, and how a trigger fires.

Every command is decided in full before anything changes: the guard and the routing run
first and produce the new data; then one ``transitions`` trigger moves the state, and its
``before`` callback swaps in the new data with a single assignment that cannot fail. The
machine is synchronous and unqueued because no callback awaits or fires another event, so
nothing can interrupt a transition halfway (docs/session.md has the reasoning). Snapshot
and restore live here too: they are the other way data enters and leaves a session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Self

from pydantic import ValidationError
from transitions import EventData, Machine, MachineError

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from pumpd.protocols import LoadedProtocol
from safety.continuation import delivery_ended
from safety.plan import Plan, compute_plan
from safety.pump import PumpSnapshot
from safety.tick import SessionPhase
from safety.verdicts import Verdict

from . import formats
from .errors import (
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
    ReentrantTrigger,
    RestoreError,
)
from .records import (
    AlarmRecord,
    At,
    SessionData,
)
from .states import EDGES, TICK_PHASE, State, allowed_triggers

SNAPSHOT_FORMAT: Final = formats.CURRENT
ALARM_SOURCES: Final = ("pump", "kernel", "vitals", "daemon")

# Audit event types the session names that the audit catalogue does not define yet.
# Empty: every name the session uses is a catalogue entry (tests/session/test_guards.py).
PROPOSED_EVENTS: Final[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class CommandIntent:
    """A pump command the session now wants; the controller audits it, then sends it."""

    kind: PumpCommand
    rate_ml_h: Decimal | None = None
    vtbi_ul: int | None = None
    reason_code: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    """What the controller knows of the delivery when a nurse asks to continue it: the
    pump as just read, the volume by the pump's counter and by the independent account,
    the time spent delivering, and the longest delivery the tick supervises with."""

    pump: PumpSnapshot | None
    delivered_ul: int
    expected_ul: int
    delivery_elapsed_s: float
    max_delivery_s: float


@dataclass(frozen=True, slots=True)
class Step:
    """What one accepted trigger did, and what the controller must do next."""

    trigger: str
    source: State
    dest: State
    command: CommandIntent | None
    audit_events: tuple[str, ...]


_REQUESTED: Final = {
    PumpCommand.PRIME: State.PRIME_REQUESTED,
    PumpCommand.START: State.START_REQUESTED,
    PumpCommand.PAUSE: State.PAUSE_REQUESTED,
    PumpCommand.RESUME: State.RESUME_REQUESTED,
    PumpCommand.SET_RATE: State.ADJUSTING,
}


class KeepProposal:
    """Marker: the proposed plan stays as it is."""


KEEP_PROPOSAL: Final = KeepProposal()


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

    def __init__(self, session: SessionCore, state: State) -> None:
        self.session = session
        self.state = state.value

    def edge_matches(self, event: EventData) -> bool:
        return self.session._edge_matches(event)

    def apply(self, event: EventData) -> None:
        self.session._apply(event)


def check_stamp(at: object) -> Stamp:
    if not isinstance(at, Stamp):
        raise InvalidCommandInput(f"at must be a pumpd.clock.Stamp, got {at!r}")
    return at


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidCommandInput(f"{name} must be a string, got {value!r}")
    return value


def check_type(name: str, value: object, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        raise InvalidCommandInput(f"{name} has the wrong type: {value!r}")


def refuse_if(trigger: str, verdicts: Sequence[Verdict]) -> None:
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


class SessionCore:
    """State, data and plans of one session; the commands live in the subclasses."""

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
        if state in TICK_PHASE:
            return TICK_PHASE[state]
        if state is State.UNCERTAIN and d.pending_command in _REQUESTED:
            # While the outcome is unknown the tick allows what was asked for, no more.
            return TICK_PHASE[_REQUESTED[d.pending_command]]
        if state in (State.STOP_REQUESTED, State.UNCERTAIN) and d.requested_in in TICK_PHASE:
            return TICK_PHASE[d.requested_in]
        if not d.start_commanded:
            return SessionPhase.READY
        if state is State.STOPPED or d.stopped_at or d.completed_at or d.observation_started_at:
            # A confirmed stop ends delivery for good (no resume leaves STOPPED), also when
            # an alarm is latched on top of it: no pause ladder, no volume judged any more.
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
        proposed_plan: Plan | KeepProposal | None = KEEP_PROPOSAL,
    ) -> Step:
        proposed = self._proposed_plan if isinstance(proposed_plan, KeepProposal) else proposed_plan
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

    def _interruption(self, code: str, at: At) -> dict[str, object]:
        """The changes that record ``code`` among the reasons delivery is interrupted: only
        between a start and the end of delivery (a continuation is judged on them)."""
        d = self._data
        if not d.start_commanded or d.completed_at or d.observation_started_at:
            return {}
        codes = d.interrupted_by if code in d.interrupted_by else (*d.interrupted_by, code)
        return {"interrupted_by": codes, "interrupted_at": d.interrupted_at or at}

    def _ended(self, at: At) -> tuple[dict[str, object], tuple[str, ...]]:
        """Called once the pump's halt is confirmed (at ``at``): when the kernel says the
        interruption ended delivery for good (``safety.continuation.delivery_ended``), the
        changes that end the session and start the observation then, and their audit
        events; nothing otherwise (the session stops, and a nurse continues or ends it)."""
        d = self._data
        if not d.start_commanded or d.completed_at or d.observation_started_at:
            return {}, ()
        verdict = delivery_ended(d.interrupted_by)
        if verdict is None:
            return {}, ()
        changes: dict[str, object] = {
            "observation_started_at": at,
            "end_reason": verdict.message,
            "end_rule": verdict.rule,
        }
        return changes, ("session.ended", "observation.started")

    def _delivering_again(self, at: At) -> dict[str, object]:
        """The changes when the pump confirms it delivers again after a pause or a stop: the
        interruption's time joins the earlier ones, and its record is closed."""
        d = self._data
        began = [t.mono_s for t in (d.paused_at, d.interrupted_at, d.stopped_at) if t is not None]
        spent = max(0.0, at.mono_s - min(began)) if began else 0.0
        return {
            "paused_at": None,
            "stopped_at": None,
            "stop_requested_by": None,
            "stop_reason_code": None,
            "stop_reason": None,
            "interrupted_by": (),
            "interrupted_at": None,
            "interrupted_before_s": d.interrupted_before_s + spent,
        }

    def _applied_adjustment(self, changes: dict[str, object]) -> Plan:
        pending = self._data.pending_adjustment
        new_plan = self._proposed_plan
        assert pending is not None
        assert new_plan is not None
        changes["order"] = pending.order
        changes["pending_adjustment"] = None
        changes["last_adjustment"] = pending
        changes["adjustments_confirmed"] = self._data.adjustments_confirmed + 1
        return new_plan

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
    ) -> Self:
        """The session a snapshot was taken of, in the same state with the same data.

        The plan is recomputed from the protocol and compared with the recorded one, so a
        changed protocol file or calculator cannot slip into a running session. After a
        restart, ``rebase_to`` (the new process's now) re-expresses every stored monotonic
        time on the new monotonic clock through its UTC time: the only bridge a restart
        leaves between two monotonic clocks.
        """
        fmt = snapshot.get("format") if isinstance(snapshot, Mapping) else None
        if isinstance(fmt, bool) or fmt not in formats.READABLE:
            readable = " or ".join(str(f) for f in sorted(formats.READABLE))
            raise RestoreError(f"not a session snapshot of format {readable}")
        check_type("protocol", protocol, LoadedProtocol)
        try:
            state = State(snapshot["state"])
            raw = snapshot["data"]
            if fmt == 1:
                raw = formats.data_of_format_1(raw)
            if rebase_to is not None:
                raw = _rebased(raw, check_stamp(rebase_to))
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
        if data.end_rule is not None and data.observation_started_at is None:
            raise RestoreError("ended by the kernel's rule without the start of the observation")
        if state is State.KVO and data.completed_at is None:
            raise RestoreError("KVO without the completion of the infusion")
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

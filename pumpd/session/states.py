"""The states, the triggers and every edge between them, as data.

The edge table is the single source of the machine: :mod:`pumpd.session.machine` builds
the ``transitions`` machine from it, the diagram in docs/ is generated from that machine,
and the tests walk it. Requested states (``START_REQUESTED`` ...) make the split between
a nurse's intent and the pump's confirmed fact visible: the controller writes the intent
event, commands the pump, and only a confirmed device fact moves the session on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from safety.tick import SessionPhase


class State(enum.StrEnum):
    PROGRAMMED = "PROGRAMMED"
    VERIFIED = "VERIFIED"
    PRIME_REQUESTED = "PRIME_REQUESTED"
    PRIMING = "PRIMING"
    PRIMED = "PRIMED"
    START_REQUESTED = "START_REQUESTED"
    INFUSING = "INFUSING"
    PAUSE_REQUESTED = "PAUSE_REQUESTED"
    PAUSED = "PAUSED"
    RESUME_REQUESTED = "RESUME_REQUESTED"
    ADJUSTING = "ADJUSTING"
    STOP_REQUESTED = "STOP_REQUESTED"
    COMPLETE = "COMPLETE"
    KVO = "KVO"
    OBSERVATION = "OBSERVATION"
    DISCHARGED = "DISCHARGED"
    STOPPED = "STOPPED"
    ABORTED = "ABORTED"
    ALARM = "ALARM"
    UNCERTAIN = "UNCERTAIN"


NURSE_TRIGGERS: tuple[str, ...] = (
    "program",
    "confirm",
    "request_prime",
    "request_start",
    "pause",
    "resume",
    "adjust",
    "confirm_adjust",
    "cancel_adjust",
    "approve",
    "stop",
    "acknowledge",
    "record_vitals",
    "note",
    "observe",
    "discharge",
    "abort",
    "end",
)
DEVICE_TRIGGERS: tuple[str, ...] = (
    "prime_confirmed",
    "prime_complete",
    "start_confirmed",
    "pause_confirmed",
    "stop_confirmed",
    "adjust_confirmed",
    "vtbi_reached",
    "alarm",
    "command_uncertain",
    "command_failed",
    "reconciled",
)
TRIGGERS: tuple[str, ...] = NURSE_TRIGGERS + DEVICE_TRIGGERS

S = State
TERMINAL = frozenset({S.DISCHARGED, S.ABORTED})
ALL = tuple(State)
LIVE = tuple(s for s in State if s not in TERMINAL)
# States in which a pump command is outstanding (the controller awaits its confirmation).
AWAITING = (
    S.PRIME_REQUESTED,
    S.START_REQUESTED,
    S.PAUSE_REQUESTED,
    S.RESUME_REQUESTED,
    S.ADJUSTING,
    S.STOP_REQUESTED,
    S.COMPLETE,
)
STOPPABLE = (
    S.PRIME_REQUESTED,
    S.PRIMING,
    S.START_REQUESTED,
    S.INFUSING,
    S.PAUSE_REQUESTED,
    S.PAUSED,
    S.RESUME_REQUESTED,
    S.ADJUSTING,
    S.KVO,
    S.UNCERTAIN,
)


@dataclass(frozen=True, slots=True)
class Edge:
    """``trigger`` from any of ``sources`` to ``dest``; ``dest`` None keeps the state."""

    trigger: str
    sources: tuple[State, ...]
    dest: State | None


EDGES: tuple[Edge, ...] = (
    # nurse commands
    Edge("program", (S.PROGRAMMED, S.VERIFIED), S.PROGRAMMED),
    Edge("program", (S.PROGRAMMED, S.VERIFIED), S.VERIFIED),
    Edge("confirm", (S.PROGRAMMED,), S.VERIFIED),
    Edge("request_prime", (S.VERIFIED, S.PRIMED), S.PRIME_REQUESTED),
    Edge("request_start", (S.VERIFIED, S.PRIMED), S.START_REQUESTED),
    Edge("request_start", (S.VERIFIED, S.PRIMED), None),
    Edge("approve", (S.VERIFIED, S.PRIMED), S.START_REQUESTED),
    Edge("approve", (S.INFUSING,), S.ADJUSTING),
    Edge("approve", (S.PAUSED,), None),
    Edge("pause", (S.INFUSING,), S.PAUSE_REQUESTED),
    Edge("pause", (S.ALARM,), None),
    Edge("resume", (S.PAUSED, S.STOPPED), S.RESUME_REQUESTED),
    Edge("adjust", (S.INFUSING, S.PAUSED), None),
    Edge("confirm_adjust", (S.INFUSING,), S.ADJUSTING),
    Edge("confirm_adjust", (S.PAUSED,), None),
    Edge("cancel_adjust", (S.INFUSING, S.PAUSED), None),
    Edge("stop", STOPPABLE, S.STOP_REQUESTED),
    Edge("stop", (S.ALARM, S.STOP_REQUESTED), None),
    Edge("acknowledge", (S.ALARM,), S.PROGRAMMED),
    Edge("acknowledge", (S.ALARM,), S.VERIFIED),
    Edge("acknowledge", (S.ALARM,), S.PAUSED),
    Edge("acknowledge", (S.ALARM,), S.STOPPED),
    Edge("acknowledge", (S.ALARM,), S.OBSERVATION),
    Edge("record_vitals", LIVE, None),
    Edge("note", ALL, None),
    Edge("observe", (S.STOPPED,), S.OBSERVATION),
    Edge("observe", (S.KVO,), S.COMPLETE),
    Edge("end", (S.STOPPED,), S.OBSERVATION),
    Edge("discharge", (S.OBSERVATION,), S.DISCHARGED),
    Edge("abort", (S.PROGRAMMED, S.VERIFIED, S.PRIMED, S.STOPPED), S.ABORTED),
    # device facts, reported by the controller after it has read the pump
    Edge("prime_confirmed", (S.PRIME_REQUESTED,), S.PRIMING),
    Edge("prime_complete", (S.PRIMING,), S.PRIMED),
    Edge("start_confirmed", (S.START_REQUESTED, S.RESUME_REQUESTED), S.INFUSING),
    Edge("pause_confirmed", (S.PAUSE_REQUESTED,), S.PAUSED),
    Edge("pause_confirmed", (S.ALARM,), None),
    Edge("stop_confirmed", (S.STOP_REQUESTED,), S.STOPPED),
    Edge("stop_confirmed", (S.STOP_REQUESTED,), S.OBSERVATION),
    Edge("stop_confirmed", (S.COMPLETE,), S.OBSERVATION),
    Edge("stop_confirmed", (S.ALARM,), None),
    Edge("adjust_confirmed", (S.ADJUSTING,), S.INFUSING),
    Edge("vtbi_reached", (S.INFUSING, S.PAUSE_REQUESTED, S.ADJUSTING), S.COMPLETE),
    Edge("vtbi_reached", (S.INFUSING, S.PAUSE_REQUESTED, S.ADJUSTING), S.KVO),
    Edge("alarm", tuple(s for s in LIVE if s is not S.ALARM), S.ALARM),
    Edge("alarm", (S.ALARM,), None),
    Edge("command_uncertain", AWAITING, S.UNCERTAIN),
    Edge("command_uncertain", (S.ALARM,), None),
    Edge("command_failed", AWAITING, S.ALARM),
    Edge("command_failed", (S.ALARM,), None),
    Edge("reconciled", (S.UNCERTAIN,), S.PRIMING),
    Edge("reconciled", (S.UNCERTAIN,), S.INFUSING),
    Edge("reconciled", (S.UNCERTAIN,), S.PAUSED),
    Edge("reconciled", (S.UNCERTAIN,), S.STOPPED),
    Edge("reconciled", (S.UNCERTAIN,), S.OBSERVATION),
    Edge("reconciled", (S.UNCERTAIN,), S.ALARM),
)


def allowed_triggers(state: State) -> tuple[str, ...]:
    """Every trigger with an edge out of ``state``, in table order."""
    seen: list[str] = []
    for edge in EDGES:
        if state in edge.sources and edge.trigger not in seen:
            seen.append(edge.trigger)
    return tuple(seen)


# What the safety kernel's tick is told. A requested state carries the phase of the
# delivery it asked for, so the tick does not stop a pump for obeying; every state in
# which the pump must not move fluid maps to a phase that allows no delivery.
TICK_PHASE: dict[State, SessionPhase] = {
    S.PROGRAMMED: SessionPhase.READY,
    S.VERIFIED: SessionPhase.READY,
    S.PRIME_REQUESTED: SessionPhase.PRIMING,
    S.PRIMING: SessionPhase.PRIMING,
    S.PRIMED: SessionPhase.READY,
    S.START_REQUESTED: SessionPhase.INFUSING,
    S.INFUSING: SessionPhase.INFUSING,
    S.PAUSE_REQUESTED: SessionPhase.INFUSING,
    S.PAUSED: SessionPhase.PAUSED,
    S.RESUME_REQUESTED: SessionPhase.INFUSING,
    S.ADJUSTING: SessionPhase.INFUSING,
    S.COMPLETE: SessionPhase.KVO,
    S.KVO: SessionPhase.KVO,
    S.OBSERVATION: SessionPhase.OBSERVATION,
    S.DISCHARGED: SessionPhase.ENDED,
    S.ABORTED: SessionPhase.ENDED,
}

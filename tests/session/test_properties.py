"""Properties over random sessions: snapshot/restore is exact, refusals change nothing,
and no sequence of commands and device facts reaches INFUSING with an alarm latched."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pumpd.session import (
    TRIGGERS,
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
    PumpCommand,
    Session,
    State,
)
from safety.actions import Priority
from safety.plan import Order
from safety.pump import PumpMode

from .conftest import CHECKER, PROGRAMMER, Bedside, drive
from .test_table import ARGS

# Mostly valid arguments, so that random runs get deep into the machine, with enough bad
# ones (blank names and reasons, the programmer as checker) to exercise every refusal.
PEOPLE = st.sampled_from([PROGRAMMER] * 4 + [CHECKER] * 2 + [" nurse.ada ", "", "  "])
REASONS = st.sampled_from(["patient asked", "blood pressure 172/104"] * 3 + ["", "   "])
MODES = st.sampled_from(list(PumpMode) + [PumpMode.IDLE, PumpMode.PAUSED] * 2)
KINDS = st.sampled_from(list(PumpCommand))
PRIORITIES = st.sampled_from(list(Priority))
DURATIONS = st.sampled_from([Decimal(30), Decimal(45), Decimal(60), Decimal(200)])
WEIGHTS = st.sampled_from(["80 kg"] * 4 + ["81 kg", "176 lb", "80"])
CHECKERS = st.sampled_from([CHECKER] * 4 + [PROGRAMMER, " NURSE.ADA", ""])
STEP_S = st.sampled_from([0.1, 5.0, 60.0, 10 * 60.0, 31 * 60.0])


def _no_floats(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_floats(v) for v in value)
    return True


def assert_round_trip(session: Session, *, check_floats: bool = True) -> None:
    snap = session.snapshot()
    assert not check_floats or _no_floats(snap)
    wire = json.loads(json.dumps(snap))
    restored = Session.restore(wire, session.protocol)
    assert restored.state is session.state
    assert restored.snapshot() == snap
    assert restored.data == session.data
    assert restored.allowed() == session.allowed()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=st.sampled_from(list(State)),
    notes=st.lists(st.text(min_size=1, max_size=20).filter(str.strip), max_size=3),
)
def test_snapshot_restore_round_trip_in_every_state(state: State, notes: list[str]) -> None:
    bedside, session = drive(state)
    for text in notes:
        session.note(by=PROGRAMMER, text=text, at=bedside.at(0.001))
    assert_round_trip(session)


def allows(*triggers: str) -> Any:
    """Run the rule only where one of ``triggers`` exists, so random runs go deep;
    ``any_trigger`` below still fires everything everywhere."""
    return precondition(lambda m: any(t in m.session.allowed() for t in triggers))


class SessionMachine(RuleBasedStateMachine):
    """Random nurse commands and device facts, with random arguments, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.bedside = Bedside()
        self.session = self.bedside.open()

    @initialize(
        state=st.sampled_from([s for s in State if s not in (State.DISCHARGED, State.ABORTED)])
    )
    def start_somewhere(self, state: State) -> None:
        self.bedside, self.session = drive(state)

    def attempt(self, call: Any) -> None:
        before = self.session.snapshot()
        state = self.session.state
        try:
            call()
        except (InvalidInState, CommandRefused, InvalidCommandInput):
            assert self.session.snapshot() == before
            assert self.session.state is state
            return
        # Every session a command produced must come back whole from its snapshot.
        assert_round_trip(self.session, check_floats=False)

    @rule(trigger=st.sampled_from(TRIGGERS))
    def any_trigger(self, trigger: str) -> None:
        self.attempt(lambda: ARGS[trigger](self.bedside, self.session))

    # -- time ------------------------------------------------------------------------

    @rule(seconds=STEP_S)
    def time_passes(self, seconds: float) -> None:
        self.bedside.clock.advance(seconds)

    # -- nurse -----------------------------------------------------------------------

    @rule(by=CHECKERS, weight=WEIGHTS)
    @allows("confirm")
    def confirm(self, by: str, weight: str) -> None:
        self.attempt(lambda: self.session.confirm(by=by, weight=weight, at=self.bedside.at(0)))

    @rule(by=PEOPLE, disconnected=st.booleans())
    @allows("request_prime")
    def request_prime(self, by: str, disconnected: bool) -> None:
        self.attempt(
            lambda: self.session.request_prime(
                by=by, line_disconnected=disconnected, at=self.bedside.at(0)
            )
        )

    @rule(by=PEOPLE, mode=MODES, manual=st.booleans())
    @allows("request_start")
    def request_start(self, by: str, mode: PumpMode, manual: bool) -> None:
        b = self.bedside
        self.attempt(
            lambda: self.session.request_start(
                by=by, pump=b.pump(mode), prior_sessions=(), primed_confirmed=manual, at=b.at(0)
            )
        )

    @rule(by=PEOPLE)
    def record_vitals(self, by: str) -> None:
        b = self.bedside
        self.attempt(lambda: self.session.record_vitals(by=by, reading=b.vitals(), at=b.at(0)))

    @rule(by=PEOPLE, text=st.sampled_from(["patient calm", "", "dissociated, talking"]))
    def note(self, by: str, text: str) -> None:
        self.attempt(lambda: self.session.note(by=by, text=text, at=self.bedside.at(0)))

    @rule(by=PEOPLE)
    @allows("pause")
    def pause(self, by: str) -> None:
        self.attempt(lambda: self.session.pause(by=by, at=self.bedside.at(0)))

    @rule(by=PEOPLE)
    @allows("resume")
    def resume(self, by: str) -> None:
        self.attempt(lambda: self.session.resume(by=by, at=self.bedside.at(0)))

    @rule(by=PEOPLE, reason=REASONS, delivered=st.sampled_from([0, 1_000, 50_000, 120_000]))
    @allows("resume")
    def continue_infusion(self, by: str, reason: str, delivered: int) -> None:
        self.attempt(
            lambda: self.session.resume(
                by=by,
                reason=reason,
                delivery=self.bedside.delivery(delivered),
                at=self.bedside.at(0),
            )
        )

    @rule(by=PEOPLE, reason=REASONS)
    @allows("end")
    def end(self, by: str, reason: str) -> None:
        self.attempt(lambda: self.session.end(by=by, reason=reason, at=self.bedside.at(0)))

    @rule(
        by=PEOPLE,
        reason=REASONS,
        duration=DURATIONS,
        delivered=st.sampled_from([0, 1_000, 50_000, 120_000]),
    )
    @allows("adjust")
    def adjust(self, by: str, reason: str, duration: Decimal, delivered: int) -> None:
        self.attempt(
            lambda: self.session.adjust(
                by=by,
                reason=reason,
                order=Order(duration_min=duration),
                delivered_ul=delivered,
                at=self.bedside.at(0),
            )
        )

    @rule(by=PEOPLE, confirm=st.booleans())
    @allows("confirm_adjust", "cancel_adjust")
    def settle_adjust(self, by: str, confirm: bool) -> None:
        at = self.bedside.at(0)
        if confirm:
            self.attempt(lambda: self.session.confirm_adjust(by=by, at=at))
        else:
            self.attempt(lambda: self.session.cancel_adjust(by=by, at=at))

    @rule(by=PEOPLE, reason=REASONS)
    @allows("stop")
    def stop(self, by: str, reason: str) -> None:
        self.attempt(lambda: self.session.stop(by=by, reason=reason, at=self.bedside.at(0)))

    @rule(by=PEOPLE, mode=MODES)
    @allows("acknowledge")
    def acknowledge(self, by: str, mode: PumpMode) -> None:
        self.attempt(lambda: self.session.acknowledge(by=by, pump_mode=mode, at=self.bedside.at(0)))

    @rule(mode=st.sampled_from([PumpMode.IDLE, PumpMode.PAUSED]))
    @allows("acknowledge")
    def acknowledge_a_quiet_pump(self, mode: PumpMode) -> None:
        """Alarms come from many rules; a second way out keeps runs from piling up in ALARM."""
        self.attempt(
            lambda: self.session.acknowledge(by=CHECKER, pump_mode=mode, at=self.bedside.at(0))
        )

    @rule(by=PEOPLE)
    @allows("observe")
    def observe(self, by: str) -> None:
        self.attempt(lambda: self.session.observe(by=by, at=self.bedside.at(0)))

    @rule(by=PEOPLE, drop=st.sampled_from([0, 0, 0, 1, 4]))
    @allows("discharge")
    def discharge(self, by: str, drop: int) -> None:
        items = self.bedside.protocol.protocol.discharge_checklist[drop:]
        self.attempt(
            lambda: self.session.discharge(by=by, checklist_confirmed=items, at=self.bedside.at(0))
        )

    @rule(by=PEOPLE, reason=REASONS)
    @allows("abort")
    def abort(self, by: str, reason: str) -> None:
        self.attempt(lambda: self.session.abort(by=by, reason=reason, at=self.bedside.at(0)))

    # -- device facts ----------------------------------------------------------------

    @rule(
        fact=st.sampled_from(
            [
                "prime_confirmed",
                "start_confirmed",
                "pause_confirmed",
                "stop_confirmed",
                "adjust_confirmed",
                "vtbi_reached",
            ]
        )
    )
    @allows(
        "prime_confirmed",
        "start_confirmed",
        "pause_confirmed",
        "stop_confirmed",
        "adjust_confirmed",
        "vtbi_reached",
    )
    def confirmed(self, fact: str) -> None:
        self.attempt(lambda: getattr(self.session, fact)(at=self.bedside.at(0)))

    @rule(volume=st.sampled_from([0, 14_999, 15_000]))
    @allows("prime_complete")
    def prime_complete(self, volume: int) -> None:
        self.attempt(
            lambda: self.session.prime_complete(volume_primed_ul=volume, at=self.bedside.at(0))
        )

    @precondition(lambda m: m.session.state is not State.ALARM)
    @rule(priority=PRIORITIES, source=st.sampled_from(["pump", "kernel", "vitals", "daemon"]))
    def alarm(self, priority: Priority, source: Any) -> None:
        self.attempt(
            lambda: self.session.alarm(
                code="random.alarm",
                priority=priority,
                message="A random alarm",
                source=source,
                at=self.bedside.at(0),
            )
        )

    @rule(kind=KINDS, failed=st.booleans(), use_pending=st.booleans())
    @allows("command_uncertain", "command_failed")
    def command_outcome(self, kind: PumpCommand, failed: bool, use_pending: bool) -> None:
        pending = self.session.data.pending_command
        command = pending if use_pending and pending is not None else kind
        at = self.bedside.at(0)
        if failed:
            self.attempt(
                lambda: self.session.command_failed(command=command, detail="REJECTED", at=at)
            )
        else:
            self.attempt(
                lambda: self.session.command_uncertain(command=command, detail="timeout", at=at)
            )

    @rule(mode=MODES, proposed_rate=st.booleans())
    @allows("reconciled")
    def reconciled(self, mode: PumpMode, proposed_rate: bool) -> None:
        plan = self.session.proposed_plan if proposed_rate else self.session.plan
        rate = None if plan is None else plan.rate_ml_h
        self.attempt(
            lambda: self.session.reconciled(pump_mode=mode, rate_ml_h=rate, at=self.bedside.at(0))
        )

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def never_infusing_with_an_alarm_latched(self) -> None:
        data = self.session.data
        assert not (self.session.state is State.INFUSING and data.alarms)
        assert bool(data.alarms) == (self.session.state is State.ALARM)

    @invariant()
    def a_proposal_always_has_its_plan(self) -> None:
        assert (self.session.data.pending_adjustment is None) == (
            self.session.proposed_plan is None
        )


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

"""Session fixtures: the shipped protocols, a manual clock, and a driver that can bring a
session into any state through its public commands only (no state is ever set by hand)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from pumpd.clock import ManualClock, Stamp, stamp
from pumpd.protocols import Library, LoadedProtocol, load_library
from pumpd.session import DeliveryFacts, PumpCommand, Session, State, Step
from safety.actions import Priority
from safety.plan import Order, Patient
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.vitals import VitalsReading

from .kvo import kvo_protocol

PROGRAMMER = "nurse.ada"
CHECKER = "nurse.grace"
WEIGHT = Decimal("80")

_LIBRARY: Library | None = None


def library() -> Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = load_library()
    return _LIBRARY


def trd() -> LoadedProtocol:
    return library().get("ketamine-trd-standard")


class Bedside:
    """A clock and the few readings a nurse and a pump provide, for one session."""

    def __init__(self, protocol: LoadedProtocol | None = None) -> None:
        self.clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
        self.protocol = protocol or trd()

    def at(self, advance_s: float = 1.0) -> Stamp:
        self.clock.advance(advance_s)
        return stamp(self.clock)

    def vitals(self) -> VitalsReading:
        return VitalsReading(
            taken_at=self.clock.now_utc(),
            systolic_mmhg=120,
            diastolic_mmhg=80,
            heart_rate_bpm=72,
            spo2_percent=98,
            resp_rate_per_min=14,
        )

    def pump(self, mode: PumpMode = PumpMode.IDLE, primed_ul: int = 15_000) -> PumpSnapshot:
        return PumpSnapshot(
            mode=mode,
            alarms=PumpAlarm.NONE,
            warnings=PumpWarning.NONE,
            rate_actual_ml_h=Decimal(0),
            volume_infused_ul=0,
            volume_primed_ul=primed_ul,
            uptime_s=100,
        )

    def delivery(
        self, delivered_ul: int = 1_000, pump: PumpSnapshot | None = None
    ) -> DeliveryFacts:
        """What the controller would report when a nurse continues an interrupted infusion."""
        return DeliveryFacts(
            pump=self.pump() if pump is None else pump,
            delivered_ul=delivered_ul,
            expected_ul=delivered_ul,
            delivery_elapsed_s=60.0,
            max_delivery_s=50 * 60.0,
        )

    def open(self, weight_kg: Decimal = WEIGHT) -> Session:
        session, _ = Session.open(
            session_id="s-1",
            pump_id="chair-2",
            patient_ref="p-7f3a",
            protocol=self.protocol,
            by=PROGRAMMER,
            patient=Patient(weight_kg=weight_kg),
            order=Order(),
            at=self.at(),
        )
        return session

    # each step takes a session one edge further along a path to a named state
    def confirm(self, s: Session) -> Step:
        return s.confirm(by=CHECKER, weight="80 kg", at=self.at())

    def prime(self, s: Session) -> None:
        s.request_prime(by=PROGRAMMER, line_disconnected=True, at=self.at())
        s.prime_confirmed(at=self.at())
        s.prime_complete(volume_primed_ul=15_000, at=self.at(10))
        s.record_vitals(by=PROGRAMMER, reading=self.vitals(), at=self.at())

    def start(self, s: Session) -> Step:
        return s.request_start(by=PROGRAMMER, pump=self.pump(), prior_sessions=(), at=self.at())

    def alarm(self, s: Session) -> Step:
        return s.alarm(
            code="tick.pump.occlusion",
            priority=Priority.HIGH,
            message="Downstream occlusion on chair-2: infusion stopped at 1.0 of 100 mL",
            source="kernel",
            at=self.at(),
        )


Path = list[Callable[[Bedside, Session], object]]


def _c(name: str, **kw: object) -> Callable[[Bedside, Session], object]:
    """A device fact or simple command with a fresh stamp."""

    def call(b: Bedside, s: Session) -> object:
        return getattr(s, name)(at=b.at(), **kw)

    call.__name__ = name
    return call


# The shortest public path from a fresh session to each state.
PATHS: dict[State, Path] = {
    State.PROGRAMMED: [],
    State.VERIFIED: [Bedside.confirm],
    State.PRIME_REQUESTED: [
        Bedside.confirm,
        lambda b, s: s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at()),
    ],
}
PATHS[State.PRIMING] = [*PATHS[State.PRIME_REQUESTED], _c("prime_confirmed")]
PATHS[State.PRIMED] = [Bedside.confirm, Bedside.prime]
PATHS[State.START_REQUESTED] = [*PATHS[State.PRIMED], Bedside.start]
PATHS[State.INFUSING] = [*PATHS[State.START_REQUESTED], _c("start_confirmed")]
PATHS[State.PAUSE_REQUESTED] = [*PATHS[State.INFUSING], _c("pause", by=PROGRAMMER)]
PATHS[State.PAUSED] = [*PATHS[State.PAUSE_REQUESTED], _c("pause_confirmed")]
PATHS[State.RESUME_REQUESTED] = [*PATHS[State.PAUSED], _c("resume", by=PROGRAMMER)]
PATHS[State.ADJUSTING] = [
    *PATHS[State.INFUSING],
    lambda b, s: s.adjust(
        by=PROGRAMMER,
        reason="blood pressure rising",
        order=Order(duration_min=Decimal(50)),
        delivered_ul=1000,
        at=b.at(),
    ),
    _c("confirm_adjust", by=PROGRAMMER),
]
PATHS[State.STOP_REQUESTED] = [*PATHS[State.INFUSING], _c("stop", by=PROGRAMMER, reason="test")]
PATHS[State.STOPPED] = [*PATHS[State.STOP_REQUESTED], _c("stop_confirmed")]
PATHS[State.COMPLETE] = [*PATHS[State.INFUSING], _c("vtbi_reached")]
PATHS[State.OBSERVATION] = [*PATHS[State.COMPLETE], _c("stop_confirmed")]
# KVO needs a protocol that prescribes it (tests/session/kvo.py); drive() takes that one.
PATHS[State.KVO] = [*PATHS[State.INFUSING], _c("vtbi_reached", pump_mode=PumpMode.KVO)]
PATHS[State.DISCHARGED] = [
    *PATHS[State.OBSERVATION],
    lambda b, s: s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at(31 * 60)),
    lambda b, s: s.discharge(
        by=PROGRAMMER,
        checklist_confirmed=b.protocol.protocol.discharge_checklist,
        at=b.at(),
    ),
]
PATHS[State.ABORTED] = [lambda b, s: s.abort(by=PROGRAMMER, reason="patient declined", at=b.at())]
PATHS[State.ALARM] = [*PATHS[State.INFUSING], Bedside.alarm]
PATHS[State.UNCERTAIN] = [
    *PATHS[State.START_REQUESTED],
    _c("command_uncertain", command=PumpCommand.START, detail="reply timed out"),
]


def drive(target: State, protocol: LoadedProtocol | None = None) -> tuple[Bedside, Session]:
    if protocol is None and target is State.KVO:
        protocol = kvo_protocol()
    bedside = Bedside(protocol)
    session = bedside.open()
    for step in PATHS[target]:
        step(bedside, session)
    assert session.state is target
    return bedside, session


@pytest.fixture
def bedside() -> Bedside:
    return Bedside()

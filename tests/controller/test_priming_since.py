"""The prime bound counts from when the pump was shown priming, not from the request.

``controller.prime.too_long`` (the controller's own rule, ``pumpd/controller/kernel.py``)
stops a prime that has run twice its planned time plus 10 s. It counted from the nurse's
request, so the writes and read-backs before the prime's RUN (some twenty exchanges on a
New Era serial line) were charged to the prime, and at the soak's x240 a healthy New Era
prime was stopped halfway. The session now keeps ``priming_since`` (set when the prime is
confirmed or settled after a doubt, cleared by a new request) and the rule counts from it.
The syringe protocol primes 2 mL at 60 mL/h: 120 s planned, the bound 250 s.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pumpd.clock import ManualClock, Stamp, stamp
from pumpd.controller.kernel import own_rules
from pumpd.protocols import LoadedProtocol
from pumpd.session import PumpCommand, Session, State
from safety.plan import Order, Patient
from safety.pump import PumpMode

from .conftest import CHECKER, NURSE, protocol

BOUND_S = 2 * 120 + 10
PROGRAMMER = NURSE.name


class Bedside:
    """A manual clock and the syringe protocol, for one session driven by its commands."""

    def __init__(self) -> None:
        self.clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
        self.protocol: LoadedProtocol = protocol("ketamine-trd-syringe")

    def at(self, advance_s: float = 1.0) -> Stamp:
        self.clock.advance(advance_s)
        return stamp(self.clock)


def _requested(b: Bedside) -> Session:
    s, _ = Session.open(
        session_id="s-1",
        pump_id="chair-4",
        patient_ref="p-7f3a",
        protocol=b.protocol,
        by=PROGRAMMER,
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
        at=b.at(),
    )
    s.confirm(by=CHECKER.name, weight="80 kg", at=b.at())
    s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at())
    return s


def test_a_prime_confirmed_after_a_slow_programming_is_bounded_from_its_confirmation() -> None:
    b = Bedside()
    s = _requested(b)
    requested_s = b.clock.monotonic()
    s.prime_confirmed(at=b.at(200))  # the line took 200 s (simulated) to start the prime
    since = s.data.priming_since
    assert since is not None
    assert since.mono_s == b.clock.monotonic()
    assert own_rules(s, since.mono_s + BOUND_S) == []
    assert since.mono_s - requested_s == 200  # the old count from the request: 450 s
    late = own_rules(s, since.mono_s + BOUND_S + 1)
    assert [a.code for a in late] == ["controller.prime.too_long"]
    assert "Priming has run 251 s, planned 120 s" in late[0].message


def test_a_prime_settled_after_a_doubt_is_bounded_from_the_reading_that_settled_it() -> None:
    b = Bedside()
    s = _requested(b)
    s.command_uncertain(command=PumpCommand.PRIME, detail="RUN unanswered", at=b.at(30))
    s.reconciled(pump_mode=PumpMode.PRIMING, at=b.at(100))
    assert s.state is State.PRIMING
    since = s.data.priming_since
    assert since is not None
    assert since.mono_s == b.clock.monotonic()
    assert own_rules(s, since.mono_s + BOUND_S) == []
    assert own_rules(s, since.mono_s + BOUND_S + 1) != []


def test_a_second_prime_is_bounded_from_its_own_start() -> None:
    b = Bedside()
    s = _requested(b)
    s.prime_confirmed(at=b.at())
    s.prime_complete(volume_primed_ul=2_000, at=b.at(120))
    first = s.data.priming_since
    s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at(600))
    assert s.data.priming_since is None  # the first prime's start says nothing of this one
    s.prime_confirmed(at=b.at(200))
    since = s.data.priming_since
    assert first is not None
    assert since is not None
    assert since.mono_s > first.mono_s
    assert own_rules(s, since.mono_s + BOUND_S) == []


def test_a_session_restored_from_before_the_stamp_counts_from_the_request() -> None:
    b = Bedside()
    s = _requested(b)
    requested = s.data.prime_requested_at
    assert requested is not None
    s.prime_confirmed(at=b.at(200))
    snap = s.snapshot()
    del snap["data"]["priming_since"]  # a checkpoint written before the field existed
    old = Session.restore(snap, b.protocol)
    assert old.data.priming_since is None
    assert [a.code for a in own_rules(old, requested.mono_s + BOUND_S + 1)] == [
        "controller.prime.too_long"
    ]
    assert own_rules(old, requested.mono_s + BOUND_S) == []

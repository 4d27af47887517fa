"""``prime.after_start`` (safety/guards.py::prime_allowed) is defence in depth.

The machine's edges already refuse ``request_prime`` in every state after a start, so a
live session never reaches the rule. It stays for a session whose state and data
disagree, which is what it guards against: a restored snapshot (a checkpoint) that says
PRIMED while its data records that a start went to the pump, or a future edge that lets
a prime out of a state after the start. Such a session is refused on the data alone: a
prime into a line connected to the patient would be a bolus (hazards.md H22)."""

from __future__ import annotations

import copy

import pytest

from pumpd.session import CommandRefused, Session, State

from .conftest import PROGRAMMER, drive


def test_a_restored_session_that_records_a_start_is_never_primed() -> None:
    bedside, started = drive(State.START_REQUESTED)
    assert started.data.start_commanded
    snapshot = copy.deepcopy(started.snapshot())
    # The checkpoint's state says PRIMED (a state with a prime edge); its data still
    # records the start that was sent.
    snapshot["state"] = State.PRIMED.value
    snapshot["data"]["pending_command"] = None
    snapshot["data"]["requested_in"] = None
    session = Session.restore(snapshot, bedside.protocol)
    assert session.state is State.PRIMED
    assert "request_prime" in session.allowed()
    before = session.snapshot()
    with pytest.raises(CommandRefused) as refused:
        session.request_prime(by=PROGRAMMER, line_disconnected=True, at=bedside.at())
    assert refused.value.codes == ("prime.after_start",)
    assert session.snapshot() == before
    assert session.state is State.PRIMED


def test_the_same_snapshot_without_the_start_may_prime() -> None:
    """The control: without the recorded start the same restored session primes."""
    bedside, primed = drive(State.PRIMED)
    assert not primed.data.start_commanded
    session = Session.restore(copy.deepcopy(primed.snapshot()), bedside.protocol)
    step = session.request_prime(by=PROGRAMMER, line_disconnected=True, at=bedside.at())
    assert step.dest is State.PRIME_REQUESTED

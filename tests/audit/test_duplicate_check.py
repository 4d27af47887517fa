"""The duplicate check after an ambiguous commit, on its own: which of the oldest pending
events the table already holds, and when spool and table disagree."""

from __future__ import annotations

import dataclasses

import pytest

from pumpd.audit import EventRecord
from pumpd.audit.spool import SpoolConflict, SpoolEntry, already_stored
from pumpd.audit.store import Stamped


def _stamped(mono_ns: int) -> Stamped:
    return Stamped(
        occurred_at="2026-11-22T09:00:00.000000Z",
        mono_ns=mono_ns,
        host="h",
        instance_id="i-1",
        actor_kind="daemon",
        actor_uid=0,
        actor_name="pumpd",
        actor_role="daemon",
        pump_id=None,
        session_id="S-1",
        patient_ref="P-1",
        event_type="note.recorded",
        correlation_id=None,
        simulated=False,
        payload=f'{{"text":"{mono_ns}"}}',
    )


def _row(seq: int, stamped: Stamped) -> EventRecord:
    return EventRecord(seq=seq, **dataclasses.asdict(stamped), prev_hash="p", event_hash="h")


PENDING = [SpoolEntry(n, _stamped(100 + n)) for n in range(1, 6)]


def test_none_in_the_table() -> None:
    other = _row(7, dataclasses.replace(_stamped(1), instance_id="i-0"))
    assert already_stored(PENDING, [other]) == 0


def test_the_oldest_ones_are_found_in_order() -> None:
    tail = [_row(10, _stamped(50)), *(_row(11 + k, PENDING[k].event) for k in range(3))]
    assert already_stored(PENDING, tail) == 3


def test_a_later_one_in_without_an_earlier_one_is_a_conflict() -> None:
    with pytest.raises(SpoolConflict, match="older spooled event is not"):
        already_stored(PENDING, [_row(11, PENDING[0].event), _row(12, PENDING[2].event)])


def test_out_of_order_in_the_table_is_a_conflict() -> None:
    with pytest.raises(SpoolConflict, match="out of order"):
        already_stored(PENDING, [_row(12, PENDING[0].event), _row(11, PENDING[1].event)])


def test_same_identity_other_content_is_a_conflict() -> None:
    forged = dataclasses.replace(PENDING[0].event, payload='{"text":"forged"}')
    with pytest.raises(SpoolConflict, match="altered"):
        already_stored(PENDING, [_row(11, forged)])

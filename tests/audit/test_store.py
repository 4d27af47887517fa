"""The store on both back ends: what an append records, and what it refuses."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from pumpd.audit.catalogue import AlarmRaised
from pumpd.audit.chain import GENESIS_HASH, Hasher, encode
from pumpd.audit.errors import (
    AuditWriteFailed,
    InvalidEnvelope,
    InvalidPayload,
    SchemaError,
    UnknownEventType,
)
from pumpd.audit.store import Actor, AuditStore, NewEvent
from pumpd.audit.verify import verify

from .conftest import Db
from .factories import DAEMON, NURSE_A, filler, programmed, session_events

_UTC_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _count(db: Db) -> int:
    return int(db.admin("SELECT COUNT(*) FROM audit_event")[0][0])


def test_append_records_every_envelope_field_and_links_the_chain(store: AuditStore) -> None:
    first = store.append(programmed("S-1", "P-0001"))
    second = store.append(filler(1))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.event_hash
    assert _UTC_US.fullmatch(first.occurred_at)
    assert second.occurred_at >= first.occurred_at
    assert second.mono_ns > first.mono_ns >= 0
    assert first.instance_id == second.instance_id == store.instance_id
    assert (first.actor_kind, first.actor_name, first.actor_uid, first.actor_role) == (
        "person",
        "nurse.alvarez",
        1001,
        "nurse",
    )
    assert (first.pump_id, first.session_id, first.patient_ref) == ("pump-1", "S-1", "P-0001")
    assert first.simulated is False
    assert Hasher().digest(encode(first)) == first.event_hash


def test_payload_is_canonical_text_with_decimals_as_strings(store: AuditStore) -> None:
    record = store.append(programmed("S-1", "P-0001"))
    payload = json.loads(record.payload)
    assert payload["concentration_mg_ml"] == "1.0"
    assert payload["prescribed_dose_mg"] == "35.00"
    assert payload["volume_ul"] == 35000
    assert record.payload == json.dumps(payload, sort_keys=True, separators=(",", ":"))


def test_appended_events_survive_reopening(db: Db) -> None:
    first = db.open_store()
    written = first.append_many(session_events("S-9", "P-0009"))
    first.close()
    second = db.open_store()
    try:
        assert second.head().seq == written[-1].seq
        assert second.head().event_hash == written[-1].event_hash
        result = verify(second.engine, Hasher())
        assert result.ok
        assert result.checked == len(written)
    finally:
        second.close()


def test_simulated_store_flags_and_hashes_every_event(db: Db) -> None:
    sim = db.open_store(simulated=True)
    try:
        record = sim.append(filler(3))
    finally:
        sim.close()
    assert record.simulated is True
    assert db.admin("SELECT simulated FROM audit_event")[0][0] in (1, True)
    forged = Hasher().digest(encode(record.__class__(**{**_fields(record), "simulated": False})))
    assert forged != record.event_hash


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_append_many_is_all_or_nothing(db: Db, store: AuditStore) -> None:
    store.append(filler(0))
    bad = NewEvent("vitals.recorded", {"source": "telepathy"}, DAEMON, "p", "s", "P-1")
    with pytest.raises(InvalidPayload):
        store.append_many([filler(1), bad, filler(2)])
    assert _count(db) == 1


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (NewEvent("session.deleted", {}, DAEMON), UnknownEventType),
        (NewEvent("alarm.raised", {"alarm_code": "x"}, DAEMON, correlation_id="a"), InvalidPayload),
        (
            NewEvent(
                "session.started",
                {"rate_ml_h": 87.5, "volume_ul": 1},
                DAEMON,
                "pump-1",
                "S-1",
                "P-1",
            ),
            InvalidPayload,
        ),
        (
            NewEvent(
                "session.started",
                {"rate_ml_h": "1", "volume_ul": 1, "x": 1},
                DAEMON,
                "pump-1",
                "S-1",
                "P-1",
            ),
            InvalidPayload,
        ),
        (NewEvent("session.started", {"rate_ml_h": "1", "volume_ul": 1}, DAEMON), InvalidEnvelope),
        (
            NewEvent("vitals.recorded", {"source": "manual"}, NURSE_A, None, "S-1", "Jane Doe"),
            InvalidEnvelope,
        ),
        (
            NewEvent("daemon.stopped", {"reason_code": "x"}, Actor("person", "root", "daemon")),
            InvalidEnvelope,
        ),
        (
            NewEvent("daemon.stopped", {"reason_code": "x"}, Actor("person", "eve", "janitor")),
            InvalidEnvelope,
        ),
        (
            NewEvent(
                "alarm.raised",
                AlarmRaised(alarm_code="a", priority="low", source="pump", message="m"),
                DAEMON,
            ),
            InvalidEnvelope,
        ),
    ],
    ids=[
        "unknown-type",
        "missing-fields",
        "float",
        "extra-key",
        "no-session",
        "name-as-patient-ref",
        "person-with-daemon-role",
        "unknown-role",
        "no-correlation",
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    db: Db, store: AuditStore, event: NewEvent, error: type[Exception]
) -> None:
    store.append(filler(0))
    head = store.head()
    with pytest.raises(error) as caught:
        store.append(event)
    assert event.event_type in str(caught.value)
    assert _count(db) == 1
    assert store.head() == head


def test_payload_model_of_the_wrong_type_is_refused(store: AuditStore) -> None:
    model = AlarmRaised(alarm_code="a", priority="low", source="pump", message="m")
    with pytest.raises(InvalidPayload, match="expected SessionStarted"):
        store.append(NewEvent("session.started", model, DAEMON, "pump-1", "S-1", "P-1"))


def test_decimal_payload_values_are_kept_exact(store: AuditStore) -> None:
    record = store.append(
        NewEvent(
            "session.stopped",
            {
                "reason_code": "nurse_stop",
                "delivered_volume_ul": 1,
                "delivered_dose_mg": Decimal("0.10"),
            },
            NURSE_A,
            "pump-1",
            "S-1",
            "P-1",
        )
    )
    assert json.loads(record.payload)["delivered_dose_mg"] == "0.10"


def test_a_failed_write_raises_and_is_not_swallowed(db: Db, store: AuditStore) -> None:
    store.append(filler(0))
    db.admin("ALTER TABLE audit_event RENAME TO audit_event_gone")
    with pytest.raises(AuditWriteFailed, match="failed"):
        store.append(filler(1))


def test_store_refuses_a_database_without_schema(empty_db: Db) -> None:
    with pytest.raises(SchemaError, match="pumpd db upgrade"):
        empty_db.open_store()


def test_store_refuses_a_database_from_a_newer_pumpd(db: Db) -> None:
    db.admin("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    with pytest.raises(SchemaError, match=r"0099_from_the_future.*newer pumpd"):
        db.open_store()

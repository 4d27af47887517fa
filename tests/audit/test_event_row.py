"""The event row is defined once: its names and order (``EventRecord``), its SQL form for the
site's and the centre's table, the stamped part the writer fixes first, and the hashed bytes
all follow that one definition."""

from __future__ import annotations

import dataclasses
import json

from pumpd.audit.chain import COLUMNS, ENCODING_TAG, EventRecord, encode, encode_row
from pumpd.audit.schema import audit_event, event_row_columns
from pumpd.audit.store import STAMPED_FIELDS
from pumpd.central.schema import central_event


def _record() -> EventRecord:
    values: dict[str, object] = {name: f"v-{name}" for name in COLUMNS}
    values.update(seq=7, mono_ns=11, actor_uid=None, simulated=True)
    return EventRecord(**values)  # type: ignore[arg-type]


def test_the_tables_carry_the_record_s_columns_in_its_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(EventRecord)) == COLUMNS
    assert tuple(c.name for c in event_row_columns()) == COLUMNS
    assert tuple(audit_event.c.keys()) == COLUMNS
    assert tuple(central_event.c.keys()) == ("site", *COLUMNS, "received_at")


def test_each_table_gets_its_own_column_objects() -> None:
    shared = {id(c) for c in audit_event.c} & {id(c) for c in central_event.c}
    assert not shared


def test_the_stamped_part_is_the_row_without_its_chain_fields() -> None:
    assert COLUMNS[1:-2] == STAMPED_FIELDS


def test_a_record_hashes_as_its_row_in_the_stored_order() -> None:
    record = _record()
    expected = [ENCODING_TAG, 7, "v-occurred_at", 11, "v-host", "v-instance_id", "v-actor_kind"]
    expected += [None, "v-actor_name", "v-actor_role", "v-pump_id", "v-session_id"]
    expected += ["v-patient_ref", "v-event_type", "v-correlation_id", True, "v-payload"]
    expected += ["v-prev_hash"]
    assert encode(record) == json.dumps(expected, separators=(",", ":")).encode()
    assert encode(record) == encode_row(tuple(getattr(record, name) for name in COLUMNS))

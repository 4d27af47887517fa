"""The catalogue (names, no floats, documentation in step) and checkpoints."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.audit.catalogue import CATALOGUE, payload_text
from pumpd.audit.chain import COLUMNS, ENCODING_TAG, encode_row
from pumpd.audit.checkpoint import (
    CHECKPOINT_EVENT,
    checkpoint_every,
    emit_checkpoint,
    parse_checkpoint,
)
from pumpd.audit.errors import CheckpointFormatError, InvalidPayload
from pumpd.audit.store import AuditStore, Head
from pumpd.audit.verify import _POSTGRES_ENCODED, _SQLITE_ENCODED

from .conftest import Db
from .factories import filler

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit-events.md"
_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)*\.[a-z]+ed$")


# States named as adjectives in the specification itself ("uncertain command", "pump unreachable").
_ADJECTIVE_STATES = {"pump.command.uncertain", "pump.unreachable"}


def test_every_event_type_is_a_dotted_noun_and_past_participle() -> None:
    bad = [n for n in CATALOGUE if not _NAME.fullmatch(n) and n not in _ADJECTIVE_STATES]
    assert bad == []


def test_every_event_type_and_field_is_documented() -> None:
    text = DOCS.read_text()
    for name, spec in CATALOGUE.items():
        assert f"`{name}`" in text, f"{name} missing from docs/audit-events.md"
        for field in spec.model.model_fields:
            assert f"`{field}`" in text, f"{name}.{field} missing from docs/audit-events.md"


def test_the_specified_event_types_are_in_the_catalogue() -> None:
    needed = {
        "session.programmed", "override.granted", "double_check.completed",
        "pump.command.requested", "pump.command.confirmed", "pump.command.uncertain",
        "alarm.raised", "alarm.acknowledged", "reminder.issued", "vitals.recorded",
        "interlock.triggered", "infusion.completed", "observation.started",
        "observation.ended", "patient.discharged", "pump.connected", "pump.unreachable",
        "pump.rebooted", "access.denied", "daemon.started", "daemon.stopped",
        "daemon.recovered", "config.loaded", "protocol_library.loaded", "chain.checkpointed",
    }  # fmt: skip
    assert needed <= set(CATALOGUE)


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_never_enter_a_payload(value: float) -> None:
    with pytest.raises(InvalidPayload, match="floats are not accepted"):
        payload_text(
            "session.stopped",
            {"reason_code": "x", "delivered_volume_ul": 1, "delivered_dose_mg": value},
        )


@given(value=st.decimals(min_value=0, max_value=10**6, allow_nan=False, places=3))
def test_decimals_are_hashed_as_exact_text(value: Decimal) -> None:
    text = payload_text(
        "session.stopped",
        {"reason_code": "x", "delivered_volume_ul": 1, "delivered_dose_mg": value},
    )
    assert f'"delivered_dose_mg":"{format(value, "f")}"' in text
    assert Decimal(format(value, "f")) == value


def test_payload_text_is_canonical_whatever_the_key_order() -> None:
    a = payload_text("reminder.issued", {"reminder_code": "vitals_due", "message": "Check BP"})
    b = payload_text("reminder.issued", {"message": "Check BP", "reminder_code": "vitals_due"})
    assert a == b == '{"message":"Check BP","reminder_code":"vitals_due"}'


@pytest.mark.parametrize("text", ["12", "x:" + "a" * 64, "3:" + "A" * 64, "3:" + "a" * 63])
def test_bad_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointFormatError):
        parse_checkpoint(text)


class _Log:
    """A structlog-shaped logger that records lines (it is called from worker threads)."""

    def __init__(self, wanted: int = 0) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.enough = threading.Event()
        self.wanted = wanted

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))
        if len(self.lines) >= self.wanted:
            self.enough.set()


def test_checkpoint_on_demand_is_the_head(store: AuditStore) -> None:
    log = _Log()
    assert emit_checkpoint(store, log) == Head(0, "0" * 64)
    records = store.append_many([filler(i) for i in range(4)])
    head = emit_checkpoint(store, log)
    assert head == Head(4, records[-1].event_hash)
    assert parse_checkpoint(str(head)) == head
    event, fields = log.lines[-1]
    assert event == CHECKPOINT_EVENT
    assert fields["checkpoint"] == f"4:{records[-1].event_hash}"
    assert fields["keyed"] is False


async def test_checkpoints_at_an_interval_and_on_stop(store: AuditStore) -> None:
    log = _Log(wanted=3)
    stop = asyncio.Event()
    task = asyncio.create_task(checkpoint_every(store, 0.05, stop, log))
    assert await asyncio.to_thread(log.enough.wait, 30)
    store.append(filler(1))
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert log.lines[-1][1]["seq"] == 1
    with pytest.raises(ValueError, match="positive"):
        await checkpoint_every(store, 0, stop, log)


_text = st.one_of(st.none(), st.text(max_size=30))


@given(
    fields=st.tuples(
        st.integers(min_value=1, max_value=2**62),
        st.text(max_size=30),
        st.integers(min_value=0, max_value=2**62),
        *([_text] * 11),
        st.booleans(),
        st.text(max_size=60),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    )
)
def test_hashed_bytes_are_plain_canonical_json(fields: tuple[Any, ...]) -> None:
    """The fast encoder must produce exactly what docs/audit.md specifies."""
    expected = json.dumps(
        [ENCODING_TAG, *fields], ensure_ascii=False, separators=(",", ":")
    ).encode()
    assert encode_row(fields) == expected


_stored_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


@given(
    texts=st.lists(st.one_of(st.none(), _stored_text), min_size=12, max_size=12),
    payload=_stored_text,
    numbers=st.tuples(
        st.integers(min_value=1, max_value=2**62), st.integers(min_value=0, max_value=2**62)
    ),
    simulated=st.booleans(),
)
def test_sqlite_fast_encoding_equals_the_specification(
    texts: list[str | None], payload: str, numbers: tuple[int, int], simulated: bool
) -> None:
    """verify's SQLite fast path must reproduce encode_row byte for byte on stored values."""
    con = sqlite3.connect(":memory:")
    try:
        con.execute(f"CREATE TABLE audit_events ({', '.join(COLUMNS)})")
        row = (numbers[0], texts[0], numbers[1], *texts[1:], int(simulated), payload, "a" * 64)
        con.execute(f"INSERT INTO audit_events VALUES ({', '.join('?' * 18)})", (*row, "b" * 64))
        (seq, text, _prev, _hash, _type), *_ = con.execute(_SQLITE_ENCODED).fetchall()
    finally:
        con.close()
    assert seq == numbers[0]
    assert text.encode() == encode_row(row)


@pytest.fixture
def pg_conn(pg_db: Db) -> Iterator[psycopg.Connection[Any]]:
    assert pg_db.pg_conninfo is not None
    with psycopg.connect(pg_db.pg_conninfo, autocommit=True) as conn:
        types = {"seq": "bigint", "mono_ns": "bigint", "actor_uid": "bigint", "simulated": "bool"}
        columns = ", ".join(f"{c} {types.get(c, 'text')}" for c in COLUMNS)
        conn.execute(f"CREATE TEMP TABLE audit_events ({columns})")  # shadows the view
        yield conn


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.one_of(st.none(), _stored_text.filter(lambda t: "\x00" not in t)),
        min_size=12,
        max_size=12,
    ),
    payload=_stored_text.filter(lambda t: "\x00" not in t),
    numbers=st.tuples(
        st.integers(min_value=1, max_value=2**62), st.integers(min_value=0, max_value=2**62)
    ),
    uid=st.one_of(st.none(), st.integers(min_value=0, max_value=2**31)),
    simulated=st.booleans(),
)
def test_postgres_fast_encoding_equals_the_specification(
    pg_conn: psycopg.Connection[Any],
    texts: list[str | None],
    payload: str,
    numbers: tuple[int, int],
    uid: int | None,
    simulated: bool,
) -> None:
    """PostgreSQL text cannot hold NUL; everything else must encode exactly like the spec."""
    values = [numbers[0], texts[0] or "", numbers[1], *texts[1:]]
    values[6] = uid  # actor_uid is a BIGINT column
    for i in (3, 4, 5, 7, 8, 12):  # NOT NULL text columns
        values[i] = values[i] or ""
    row = (*values, simulated, payload, "a" * 64)
    pg_conn.execute("TRUNCATE audit_events")
    pg_conn.execute(f"INSERT INTO audit_events VALUES ({', '.join(['%s'] * 18)})", (*row, "b" * 64))
    fetched = pg_conn.execute(_POSTGRES_ENCODED).fetchall()
    assert fetched[0][1].encode() == encode_row(row)

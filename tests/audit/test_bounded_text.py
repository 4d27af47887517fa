"""Free text longer than the catalogue takes is cut by the payload model, with a marker.

An audit text that is too long must never make its event fail to write: a stop, an alarm
or a failed command is recorded whatever words came with it. The model cuts the text to
``TEXT_MAX_CHARS`` with ``… [cut: N characters]`` (N the original length), so the cut is
on record; no caller has to remember to do it. Through the real store too: the payload
as written, hashed and verified is the cut one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pumpd.audit import migrate
from pumpd.audit.catalogue import SessionStopped, SupervisionRecord, payload_text
from pumpd.audit.chain import Hasher
from pumpd.audit.queries import EventFilter, iter_events
from pumpd.audit.store import Actor, AuditStore, NewEvent
from pumpd.audit.verify import verify
from pumpd.audit.vocabulary import TEXT_MAX_CHARS
from pumpd.db import make_engine

LONG = "The patient asked to stop; " + "x" * 4973  # 5,000 characters
MARKER = "… [cut: 5000 characters]"


def test_a_too_long_reason_makes_a_valid_event_with_the_marker() -> None:
    stopped = SessionStopped(
        reason_code="stop", reason=LONG, delivered_volume_ul=1200, delivered_dose_mg="0.49"
    )
    assert len(LONG) == 5000
    assert len(stopped.reason) == TEXT_MAX_CHARS
    assert stopped.reason.endswith(MARKER)
    assert stopped.reason.startswith("The patient asked to stop; xxx")
    stored = json.loads(payload_text("session.stopped", stopped))
    assert stored["reason"] == stopped.reason


def test_the_bound_itself_and_shorter_texts_are_kept_whole() -> None:
    exact = "y" * TEXT_MAX_CHARS
    assert (
        SessionStopped(
            reason_code="stop", reason=exact, delivered_volume_ul=0, delivered_dose_mg="0"
        ).reason
        == exact
    )
    one_over = SessionStopped(
        reason_code="stop", reason=exact + "y", delivered_volume_ul=0, delivered_dose_mg="0"
    ).reason
    assert one_over.endswith("… [cut: 501 characters]")
    assert len(one_over) == TEXT_MAX_CHARS


def test_each_text_of_a_list_is_bounded_and_empty_text_is_still_refused() -> None:
    record = SupervisionRecord.model_validate(
        {
            "vtbi_ul": 100000,
            "vtbi_overrun_ul": 200,
            "kvo_max_ul": 0,
            "volume_tolerance_rel": "0.05",
            "volume_tolerance_abs_ul": 500,
            "rate_tolerance_rel": "0.05",
            "rate_tolerance_abs_ml_h": "0.5",
            "rate_settle_ms": 10000,
            "comm_timeout_ms": 5000,
            "pause_stop_after_ms": 900000,
            "provenance": ["short", LONG],
        }
    )
    assert record.provenance[0] == "short"
    assert record.provenance[1].endswith(MARKER)
    with pytest.raises(ValidationError, match="at least 1 character"):
        SessionStopped(reason_code="stop", reason="", delivered_volume_ul=0, delivered_dose_mg="0")


def test_a_too_long_reason_is_written_cut_and_the_chain_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    store = AuditStore.open(url)
    try:
        store.append_many(
            [
                NewEvent(
                    "session.stopped",
                    {
                        "reason_code": "stop",
                        "reason": LONG,
                        "delivered_volume_ul": 1200,
                        "delivered_dose_mg": "0.49",
                    },
                    Actor.person("staff:N001", "nurse", 1001),
                    pump_id="chair-1",
                    session_id="S-0a1b2c3d4e5f",
                    patient_ref="P-0042",
                )
            ]
        )
        with store.engine.connect() as conn:
            (event,) = iter_events(conn, EventFilter(event_type="session.stopped"))
        assert verify(store.engine, Hasher()).ok
    finally:
        store.close()
    reason = json.loads(event.payload)["reason"]
    assert reason.endswith(MARKER)
    assert len(reason) == TEXT_MAX_CHARS

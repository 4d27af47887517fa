"""A stored checkpoint read back into its typed record, whatever shape pumpd wrote it in.

Deployed audit logs keep every ``session.checkpointed`` ever written; recovery, the report
and ``pumpaudit show`` read them through ``CheckpointRecord.read``. The oldest shape had no
``delivered_before_ul``, ``at_utc`` nor ``pump_last_cmd_seq``; a checkpoint written before
the start has no account; one that is no checkpoint at all must say which key is wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from pumpd.controller.checkpoint import (
    AccountRecord,
    CheckpointAccounting,
    CheckpointRecord,
    CheckpointUnreadable,
    PumpRecord,
)

OLDEST_ACCOUNTING: dict[str, Any] = {
    "volume_at_start_ul": 1200,
    "rate_ml_h": "150",
    "expected_ul": 24671,
    "delivery_elapsed_ms": 592104,
    "pump_counter_ul": 25868,
    "pump_uptime_s": 2829,
}


def _payload(accounting: Any) -> dict[str, Any]:
    return {"state": "INFUSING", "snapshot": {"data": {}}, "accounting": accounting}


def test_the_oldest_shape_reads_with_the_later_keys_at_their_defaults() -> None:
    record = CheckpointRecord.read(json.dumps(_payload(OLDEST_ACCOUNTING)))
    assert record.state == "INFUSING"
    assert record.accounting.account == AccountRecord(
        volume_at_start_ul=1200,
        delivered_before_ul=0,
        rate_ml_h=Decimal("150"),
        expected_ul=24671,
        delivery_elapsed_ms=592104,
        at_utc=None,
    )
    assert record.accounting.pump == PumpRecord(counter_ul=25868, uptime_s=2829, last_cmd_seq=0)
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert record.accounting.downtime_bridge_s(now, 60.0) is None  # no at_utc: not bridged


def test_before_the_start_and_without_accounting() -> None:
    before_start = CheckpointRecord.read(_payload({"pump_counter_ul": 0})).accounting
    assert before_start.account is None
    # no pump_uptime_s: a pump that keeps no uptime (its restart evidence is elsewhere)
    assert before_start.pump == PumpRecord(0, None, 0)
    assert before_start.expected_ul is None
    unread = CheckpointRecord.read(_payload(None)).accounting
    assert unread == CheckpointAccounting(None, None)


def test_what_the_controller_writes_reads_back_equal() -> None:
    written = CheckpointAccounting(
        AccountRecord(1200, 300, Decimal("37.5"), 24671, 592104, "2026-03-02T09:00:00+00:00"),
        PumpRecord(25568, 2829, 17),
    )
    stored = json.loads(json.dumps(_payload(written.as_dict())))
    assert CheckpointRecord.read(stored).accounting == written


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (_payload({"volume_at_start_ul": 1200, "rate_ml_h": "150"}), "accounting.expected_ul"),
        (_payload({**OLDEST_ACCOUNTING, "rate_ml_h": "fast"}), "accounting.rate_ml_h"),
        (_payload({**OLDEST_ACCOUNTING, "pump_counter_ul": None}), "accounting.pump_counter_ul"),
        (_payload({**OLDEST_ACCOUNTING, "expected_ul": "24.6 mL"}), "accounting.expected_ul"),
        (_payload([1200, 24671]), "accounting is list"),
        ({"state": "INFUSING", "accounting": OLDEST_ACCOUNTING}, "snapshot"),
        ({"snapshot": {}, "accounting": OLDEST_ACCOUNTING}, "state"),
        ("[1, 2", "not JSON"),
    ],
)
def test_a_malformed_checkpoint_names_what_is_wrong(payload: Any, says: str) -> None:
    with pytest.raises(CheckpointUnreadable, match=says):
        CheckpointRecord.read(payload if isinstance(payload, str) else json.dumps(payload))

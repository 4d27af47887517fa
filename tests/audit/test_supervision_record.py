"""``session.started`` carries the kernel's limits (``supervision``), and the SQL that
docs/audit-events.md gives auditors reads them on both back ends."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from pumpd.audit.store import AuditStore, NewEvent
from pumpd.controller.events import supervision_record
from pumpd.protocols import load_library
from safety.plan import Order, Patient, compute_plan
from safety.tick import DEFAULT_POLICY, supervision_limits

from .conftest import Db
from .factories import DAEMON

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-events.md"


def _doc_query(dialect: str) -> str:
    """The example query of docs/audit-events.md for ``dialect`` (SQLite / PostgreSQL)."""
    text = DOC.read_text()
    block = text[text.index("-- The volume band and delivery-time bound") :]
    sqlite_q, pg_q = (
        re.sub(r"^--.*\n", "", part.strip()) for part in block.split("```")[0].split("\n\n")
    )
    return sqlite_q if dialect == "sqlite" else pg_q


def test_the_documented_query_reads_the_limits_a_start_recorded(db: Db, store: AuditStore) -> None:
    loaded = load_library().get("ketamine-trd-standard", 1)
    plan = compute_plan(loaded.protocol, Patient(weight_kg=Decimal(80)), Order())
    record = supervision_record(supervision_limits(loaded.protocol, plan, DEFAULT_POLICY))
    store.append(
        NewEvent(
            "session.started",
            {"rate_ml_h": "150", "volume_ul": plan.vtbi_ul, "supervision": record},
            DAEMON,
            pump_id="chair-1",
            session_id="S-1",
            patient_ref="P-1",
        )
    )
    # An event written before the limits were recorded stays valid and reads as NULL.
    store.append(
        NewEvent(
            "session.started",
            {"rate_ml_h": "150", "volume_ul": plan.vtbi_ul},
            DAEMON,
            pump_id="chair-2",
            session_id="S-0",
            patient_ref="P-2",
        )
    )
    rows = db.admin(_doc_query(db.backend))
    assert [(r[0], r[1], Decimal(str(r[2])) if r[2] is not None else None) for r in rows] == [
        ("S-1", 500, Decimal(50)),  # 40 min + 25 %
        ("S-0", None, None),
    ]
    assert record.comm_timeout_ms == 5000
    assert record.vtbi_ul == 100_000
    assert record.provenance[0].startswith("volume_tolerance_abs at most 500 µL")
    assert "(deciding)" in record.provenance[1]

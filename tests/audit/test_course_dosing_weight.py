"""The course history divides each session's dose by that session's own dosing weight.

A patient of 120 kg dosed on adjusted body weight (here 90 kg) received 45 mg: 0.5 mg/kg
of the weight the dose was computed on, not 0.375 mg/kg of the actual weight, which would
let the cumulative mg/kg rule allow more than the protocol's limit. The programming in
effect (the last ``session.programmed``) decides; events written before the dosing weight
was recorded fall back to the actual weight.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from pumpd.audit.store import AuditStore, NewEvent
from pumpd.control.course import prior_sessions

from .conftest import Db
from .factories import programmed, session_events


def _programmed(session: str, **payload: object) -> NewEvent:
    event = programmed(session, "P-0900", dose_mg="45.00")
    return dataclasses.replace(event, payload={**event.payload, **payload})


def test_each_prior_session_counts_per_kg_of_its_dosing_weight(db: Db, store: AuditStore) -> None:
    adjusted = session_events("S-adj", "P-0900", alarm=False, override=False, stopped=True,
                              delivered_ul=45_000, delivered_mg="45.00")  # fmt: skip
    adjusted[0] = _programmed(
        "S-adj", weight_kg="120.0", weight_basis="adjusted", dosing_weight_kg="90.0"
    )
    # reprogrammed before the start: the first programming (80 kg) is not the one in effect
    adjusted.insert(0, _programmed("S-adj", weight_kg="80.0", dosing_weight_kg="80.0"))
    legacy = session_events("S-old", "P-0900", alarm=False, override=False, stopped=True,
                            delivered_ul=35_000, delivered_mg="35.00")  # fmt: skip
    store.append_many([*legacy, *adjusted])
    found = prior_sessions(store.engine, "P-0900", "S-new")
    per_kg = sorted(p.dose_mg_per_kg for p in found)
    assert per_kg == [Decimal("0.5"), Decimal("0.5")], per_kg  # 35 mg / 70 kg, 45 mg / 90 kg

"""A session record as JSON (``pumpaudit report SESSION --json``): UTC times, Decimals as
strings, never floats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pumpd.report.model import SessionRecord


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def record_json(record: SessionRecord) -> dict[str, Any]:
    """The record for ``pumpaudit report SESSION --json``: UTC times, Decimals as strings."""
    p = record.plan
    return {
        "session": record.summary.as_json(),
        "plan": {
            "protocol": p.protocol,
            "protocol_sha256": p.protocol_sha256,
            "drug": p.drug,
            "concentration_mg_ml": str(p.concentration_mg_ml),
            "weight_kg": str(p.weight_kg),
            "weight_basis": p.weight_basis,
            "dose_mg_kg": str(p.dose_mg_kg),
            "prescribed_dose_mg": str(p.prescribed_dose_mg),
            "rate_ml_h": str(p.rate_ml_h),
            "volume_ul": p.volume_ul,
            "duration_s": p.duration_s,
        },
        "protocol_file": record.protocol_note,
        "people": [
            {"role": r.role, "name": r.name, "at": _iso(r.at), "seq": r.seq} for r in record.people
        ],
        "vitals": [
            {
                "at": _iso(v.at),
                "seq": v.seq,
                "recorded_by": v.recorded_by,
                "systolic_mmhg": v.systolic_mmhg,
                "diastolic_mmhg": v.diastolic_mmhg,
                "heart_rate_bpm": v.heart_rate_bpm,
                "spo2_percent": v.spo2_percent,
                "respiratory_rate_per_min": v.respiratory_rate_per_min,
            }
            for v in record.vitals
        ],
        "alarms": [
            {
                "raised_at": _iso(a.raised_at),
                "code": a.code,
                "priority": a.priority,
                "message": a.message,
                "acknowledged_at": _iso(a.acknowledged_at),
                "acknowledged_by": a.acknowledged_by,
            }
            for a in record.alarms
        ],
        "pauses": [
            {
                "at": _iso(x.at),
                "reason_code": x.reason_code,
                "reason": x.reason,
                "delivered_volume_ul": x.delivered_volume_ul,
                "resumed_at": _iso(x.resumed_at),
            }
            for x in record.pauses
        ],
        "chain": {
            "ok": record.chain.ok,
            "checked": record.chain.checked,
            "head": f"{record.chain.head_seq}:{record.chain.head_hash}",
            "keyed": record.chain.keyed,
            "problem": record.chain.problem,
        },
    }

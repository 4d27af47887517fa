"""Valid events for tests: a realistic session, and small filler events."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from pumpd.audit.store import Actor, NewEvent

NURSE_A = Actor.person("nurse.alvarez", "nurse", 1001)
NURSE_B = Actor.person("nurse.berg", "nurse", 1002)
DAEMON = Actor.daemon()
PROTOCOL_SHA = hashlib.sha256(b"ketamine-iv-depression@2.1").hexdigest()


def programmed(
    session: str, patient: str, pump: str = "pump-1", dose_mg: str = "35.00"
) -> NewEvent:
    return NewEvent(
        "session.programmed",
        {
            "protocol_id": "ketamine_iv_depression",
            "protocol_version": "2.1",
            "protocol_sha256": PROTOCOL_SHA,
            "drug": "ketamine",
            "concentration_mg_ml": Decimal("1.0"),
            "weight_kg": "70.0",
            "weight_basis": "actual",
            "dose_mg_kg": "0.50",
            "prescribed_dose_mg": dose_mg,
            "rate_ml_h": "87.50",
            "volume_ul": 35000,
            "duration_s": 2400,
        },
        NURSE_A,
        pump_id=pump,
        session_id=session,
        patient_ref=patient,
    )


def session_events(
    session: str,
    patient: str,
    *,
    pump: str = "pump-1",
    delivered_ul: int = 35000,
    delivered_mg: str = "35.00",
    alarm: bool = True,
    override: bool = True,
    stopped: bool = False,
) -> list[NewEvent]:
    """A whole session: programmed, checked, started (intent+result), alarm, end."""
    s = {"session_id": session, "patient_ref": patient}
    events = [programmed(session, patient, pump)]
    if override:
        events.append(
            NewEvent(
                "override.granted",
                {
                    "verdict_codes": ["dose.per_kg.above_soft_max"],
                    "reason_code": "physician_order",
                    "reason": "Dose confirmed with Dr. on call",
                    "approved_by": "nurse.berg",
                },
                NURSE_A,
                **s,
            )
        )
    events.append(
        NewEvent(
            "double_check.completed",
            {
                "first_checker": "nurse.alvarez",
                "second_checker": "nurse.berg",
                "fields_checked": ["weight_kg", "dose_mg_kg", "rate_ml_h"],
            },
            NURSE_B,
            **s,
        )
    )
    cid = f"{session}-start"
    events += [
        NewEvent(
            "pump.command.requested",
            {"command": "start", "rate_ml_h": "87.50", "volume_ul": 35000},
            NURSE_A,
            pump_id=pump,
            correlation_id=cid,
            **s,
        ),
        NewEvent(
            "pump.command.confirmed",
            {"command": "start", "observed_state": "infusing", "latency_ms": 42},
            DAEMON,
            pump_id=pump,
            correlation_id=cid,
            **s,
        ),
        NewEvent(
            "session.started",
            {"rate_ml_h": "87.50", "volume_ul": 35000},
            DAEMON,
            pump_id=pump,
            **s,
        ),
    ]
    if alarm:
        aid = f"{session}-alarm"
        events += [
            NewEvent(
                "alarm.raised",
                {
                    "alarm_code": "vitals.bp_high",
                    "priority": "medium",
                    "source": "vitals",
                    "message": "Systolic 182 mmHg above 180 mmHg",
                },
                DAEMON,
                correlation_id=aid,
                pump_id=pump,
                **s,
            ),
            NewEvent(
                "alarm.acknowledged",
                {"alarm_code": "vitals.bp_high"},
                NURSE_B,
                correlation_id=aid,
                pump_id=pump,
                **s,
            ),
        ]
    if stopped:
        events.append(
            NewEvent(
                "session.stopped",
                {
                    "reason_code": "nurse_stop",
                    "delivered_volume_ul": delivered_ul,
                    "delivered_dose_mg": delivered_mg,
                },
                NURSE_A,
                pump_id=pump,
                **s,
            )
        )
    else:
        events.append(
            NewEvent(
                "infusion.completed",
                {"delivered_volume_ul": delivered_ul, "delivered_dose_mg": delivered_mg},
                DAEMON,
                pump_id=pump,
                **s,
            )
        )
    return events


def filler(i: int) -> NewEvent:
    """A small valid event (vitals) whose payload differs with ``i``."""
    return NewEvent(
        "vitals.recorded",
        {"systolic_mmhg": 100 + i % 80, "heart_rate_bpm": 60 + i % 40, "source": "monitor"},
        DAEMON,
        session_id=f"s-{i % 7}",
        patient_ref=f"P-{i % 5:04d}",
    )

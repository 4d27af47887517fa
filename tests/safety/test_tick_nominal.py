"""Builders shared by the supervision tests, and the baseline they rely on: a nominal
infusion, as the builders make it, continues. Every other tick test changes one thing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.tick import (
    Outcome,
    SessionPhase,
    SupervisionLimits,
    TickDecision,
    TickInputs,
    evaluate,
)
from safety.vitals import VitalsReading, VitalsRules, VitalsThreshold

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

VITALS_RULES = VitalsRules(
    required=("bp", "hr", "spo2"),
    baseline_max_age_min=30,
    interval_min=15,
    overdue_grace_min=5,
    refuse_start=VitalsThreshold(
        systolic_mmhg_min=90,
        systolic_mmhg_max=160,
        diastolic_mmhg_max=100,
        heart_rate_bpm_min=50,
        heart_rate_bpm_max=110,
        spo2_percent_min=94,
    ),
    pause=VitalsThreshold(
        systolic_mmhg_min=85,
        systolic_mmhg_max=180,
        diastolic_mmhg_max=110,
        heart_rate_bpm_min=45,
        heart_rate_bpm_max=120,
        spo2_percent_min=92,
    ),
    stop=VitalsThreshold(
        systolic_mmhg_min=80,
        systolic_mmhg_max=200,
        diastolic_mmhg_max=120,
        heart_rate_bpm_min=40,
        heart_rate_bpm_max=140,
        spo2_percent_min=88,
    ),
)


def reading(**overrides: Any) -> VitalsReading:
    values: dict[str, Any] = {
        "taken_at": T0,
        "systolic_mmhg": 120,
        "diastolic_mmhg": 80,
        "heart_rate_bpm": 72,
        "spo2_percent": 98,
        "resp_rate_per_min": 14,
    }
    values.update(overrides)
    return VitalsReading(**values)


def limits(**overrides: Any) -> SupervisionLimits:
    values: dict[str, Any] = {
        "vtbi_ul": 100_000,
        "vtbi_overrun_ul": 200,
        "kvo_max_ul": 0,
        "comm_timeout_s": 5.0,
        "rate_tolerance_rel": Decimal("0.05"),
        "rate_tolerance_abs_ml_h": Decimal("0.5"),
        "rate_settle_s": 10.0,
        "volume_tolerance_rel": Decimal("0.05"),
        "volume_tolerance_abs_ul": 500,
        "pause_remind_after_s": 300.0,
        "pause_remind_every_s": 120.0,
        "pause_stop_after_s": 1800.0,
        "max_delivery_s": 3600.0,
        "vitals": VITALS_RULES,
    }
    values.update(overrides)
    return SupervisionLimits(**values)


def snapshot(**overrides: Any) -> PumpSnapshot:
    values: dict[str, Any] = {
        "mode": PumpMode.INFUSING,
        "alarms": PumpAlarm.NONE,
        "warnings": PumpWarning.NONE,
        "rate_actual_ml_h": Decimal("150.00"),
        "volume_infused_ul": 50_000,
        "volume_primed_ul": 15_000,
        "uptime_s": 10_000,
    }
    values.update(overrides)
    return PumpSnapshot(**values)


def inputs(**overrides: Any) -> TickInputs:
    values: dict[str, Any] = {
        "now_s": 2000.0,
        "phase": SessionPhase.INFUSING,
        "commanded_rate_ml_h": Decimal("150.00"),
        "commanded_vtbi_ul": 100_000,
        "rate_commanded_at_s": 800.0,
        "snapshot": snapshot(),
        "previous_snapshot": snapshot(volume_infused_ul=49_958, uptime_s=9_999),
        "last_good_comm_s": 1999.5,
        "delivery_elapsed_s": 1200.0,
        "expected_volume_ul": 50_000,
        "vitals": reading(),
        "vitals_taken_s": 1500.0,
    }
    values.update(overrides)
    return TickInputs(**values)


def decide(lim: SupervisionLimits | None = None, **overrides: Any) -> TickDecision:
    return evaluate(lim if lim is not None else limits(), inputs(**overrides))


def replace_snapshot(**overrides: Any) -> PumpSnapshot:
    return dataclasses.replace(snapshot(), **overrides)


def test_nominal_infusion_continues_with_no_action() -> None:
    decision = decide()
    assert decision.outcome is Outcome.CONTINUE
    assert decision.actions == ()
    assert decision.priority is None
    assert decision.rules == ()


def test_nominal_observation_without_pump_reading_continues() -> None:
    decision = decide(
        phase=SessionPhase.OBSERVATION,
        snapshot=snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0)),
    )
    assert decision.outcome is Outcome.CONTINUE

"""From a shipped protocol and its plan to the limits a session is supervised with, and the
start requirements; the protocol files are read here with tomllib, as pumpd reads them."""

from __future__ import annotations

import dataclasses
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from test_tick_nominal import inputs, reading, snapshot

from safety.plan import Plan, compute_plan, parse_order, parse_patient
from safety.protocol import Protocol
from safety.pump import PumpMode
from safety.start import start_requirements
from safety.tick import (
    DEFAULT_POLICY,
    InvalidTickInput,
    Outcome,
    SessionPhase,
    evaluate,
    supervision_limits,
)

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"


def load(name: str) -> Protocol:
    text = (PROTOCOLS / f"{name}.v1.toml").read_text(encoding="utf-8")
    return Protocol.model_validate(tomllib.loads(text, parse_float=Decimal))


def plan_for(protocol: Protocol, weight: str = "80kg") -> Plan:
    return compute_plan(protocol, parse_patient(weight), parse_order())


def test_standard_protocol_limits_for_80_kg() -> None:
    protocol = load("ketamine-trd-standard")
    lim = supervision_limits(protocol, plan_for(protocol))
    assert lim.vtbi_ul == 100_000
    assert lim.kvo_max_ul == 0
    assert (lim.pause_remind_after_s, lim.pause_remind_every_s, lim.pause_stop_after_s) == (
        180.0,
        120.0,
        900.0,
    )
    # 40 min planned + 25 % is stricter than the protocol's 100 min hard maximum.
    assert lim.max_delivery_s == 3000.0
    # 1 mg at 0.4 mg/mL would be 2500 µL; the 500 µL policy band is stricter.
    assert lim.volume_tolerance_abs_ul == 500
    assert lim.vitals == protocol.vitals
    assert lim.comm_timeout_s == DEFAULT_POLICY.comm_timeout_s
    assert lim.provenance == (
        "volume_tolerance_abs at most 500 µL: policy.volume_band 500 µL (deciding); "
        "policy.max_unplanned_dose 2500 µL",
        "delivery_time at most 50.00 min: protocol.limits.duration_min.hard_max 100 min; "
        "policy.duration_overrun 50.00 min (deciding)",
    )


def test_concentrated_solution_narrows_the_volume_band() -> None:
    protocol = load("ketamine-chronic-pain")
    policy = dataclasses.replace(DEFAULT_POLICY, max_unplanned_dose_mg=Decimal("0.3"))
    lim = supervision_limits(protocol, plan_for(protocol), policy)
    # 0.3 mg at 1 mg/mL is 300 µL, stricter than the 500 µL default band.
    assert lim.volume_tolerance_abs_ul == 300
    assert "policy.max_unplanned_dose 300 µL (deciding)" in lim.provenance[0]


def test_drug_content_band_is_rounded_down() -> None:
    protocol = load("ketamine-trd-escalation")
    policy = dataclasses.replace(DEFAULT_POLICY, max_unplanned_dose_mg=Decimal("0.25"))
    # 0.25 mg at 0.6 mg/mL is 416.67 µL; the band is rounded down to 416 µL.
    assert supervision_limits(protocol, plan_for(protocol), policy).volume_tolerance_abs_ul == 416


def test_protocol_hard_duration_decides_when_stricter() -> None:
    protocol = load("ketamine-trd-escalation")
    order = parse_order(duration="60min")
    lim = supervision_limits(protocol, compute_plan(protocol, parse_patient("80kg"), order))
    # 60 min + 25 % = 75 min, but the protocol allows at most 60 min.
    assert lim.max_delivery_s == 3600.0


def test_kvo_volume_is_rate_times_observation_rounded_up() -> None:
    protocol = load("ketamine-trd-standard")
    with_kvo = protocol.model_copy(update={"kvo_rate_ml_h": Decimal("0.7")})
    lim = supervision_limits(with_kvo, plan_for(protocol))
    # 0.7 mL/h over 30 min = 350 µL.
    assert lim.kvo_max_ul == 350
    with_odd_kvo = protocol.model_copy(update={"kvo_rate_ml_h": Decimal("0.71")})
    assert supervision_limits(with_odd_kvo, plan_for(protocol)).kvo_max_ul == 355
    # 0.701 mL/h over 30 min = 350.5 µL: rounded up, never to even.
    with_half = protocol.model_copy(update={"kvo_rate_ml_h": Decimal("0.701")})
    assert supervision_limits(with_half, plan_for(protocol)).kvo_max_ul == 351


def test_mapped_limits_supervise_a_nominal_session() -> None:
    protocol = load("ketamine-trd-standard")
    lim = supervision_limits(protocol, plan_for(protocol))
    tick = inputs(vitals=reading(systolic_mmhg=125), vitals_taken_s=1800.0)
    assert evaluate(lim, tick).outcome is Outcome.CONTINUE
    paused = inputs(
        phase=SessionPhase.PAUSED,
        paused_since_s=2000.0 - 900,
        snapshot=snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=Decimal(0)),
        vitals_taken_s=1800.0,
    )
    assert "tick.pause.too_long" in evaluate(lim, paused).codes


def test_limits_refuse_anything_but_a_protocol_and_plan() -> None:
    protocol = load("ketamine-trd-standard")
    with pytest.raises(
        InvalidTickInput, match=r"^supervision_limits needs a Protocol and its Plan$"
    ):
        supervision_limits(protocol, {"vtbi_ul": 1})  # type: ignore[arg-type]
    with pytest.raises(
        InvalidTickInput, match=r"^supervision_limits needs a Protocol and its Plan$"
    ):
        supervision_limits(protocol.model_dump(), plan_for(protocol))  # type: ignore[arg-type]


def test_start_requirements_of_the_standard_protocol() -> None:
    protocol = load("ketamine-trd-standard")
    req = start_requirements(protocol)
    assert req.prime_volume_ul == 15_000
    assert req.double_check_required is True
    assert req.vitals == protocol.vitals
    assert req.course == protocol.course
    fractional = protocol.model_copy(
        update={"priming": protocol.priming.model_copy(update={"volume_ml": Decimal("0.0101")})}
    )
    assert start_requirements(fractional).prime_volume_ul == 11


def test_a_plan_without_drug_content_keeps_the_policy_volume_band() -> None:
    protocol = load("ketamine-trd-standard")
    carrier_only = dataclasses.replace(plan_for(protocol), concentration_mg_per_ml=Decimal(0))
    lim = supervision_limits(protocol, carrier_only)
    assert lim.volume_tolerance_abs_ul == 500
    assert (
        lim.provenance[0]
        == "volume_tolerance_abs at most 500 µL: policy.volume_band 500 µL (deciding)"
    )

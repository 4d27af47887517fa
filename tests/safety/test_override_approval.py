"""Overrides given in two parts (the nurse's reason, a second person's approval), the
protocol's reason-only codes, and whether the pump and the container can run an order."""

from __future__ import annotations

import dataclasses
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pumpd
from safety.guards import pump_fit
from safety.order import (
    Override,
    OverrideRequirement,
    approval_missing,
    approval_pending,
    check_approval,
    check_override,
    check_override_reason,
    override_requirement,
)
from safety.protocol import Protocol
from safety.verdicts import Severity, Verdict

ROOT = Path(pumpd.__file__).resolve().parent.parent / "protocols"
STANDARD = Protocol.model_validate(
    tomllib.loads(
        (ROOT / "ketamine-trd-standard.v1.toml").read_text(encoding="utf-8"),
        parse_float=Decimal,
    )
)

D = Decimal
WEIGHT = Verdict("weight.above_soft_max", Severity.SOFT, "m", "order.weight_kg", "140", "130", "kg")
BATTERY = Verdict("start.pump.battery_low", Severity.SOFT, "The pump battery is low.", "start.pump")
REASON = "140 kg patient, default dose agreed with the psychiatrist"
BY_A = Override(by="staff:N001", reason=REASON, codes=frozenset({WEIGHT.code}))


def codes(verdicts: object) -> set[str]:
    return {v.code for v in verdicts}  # type: ignore[attr-defined]


def test_limit_verdicts_carry_value_limit_and_unit_as_data() -> None:
    assert WEIGHT.as_dict() == {
        "code": "weight.above_soft_max",
        "severity": "soft",
        "message": "m",
        "rule": "order.weight_kg",
        "value": "140",
        "limit": "130",
        "unit": "kg",
    }
    assert set(BATTERY.as_dict()) == {"code", "severity", "message", "rule"}


def test_the_protocols_reason_only_codes_need_no_second_person() -> None:
    relaxed = STANDARD.model_copy(update={"soft_override_reason_only": (BATTERY.code,)})
    battery = override_requirement(relaxed, [BATTERY])
    assert battery == OverrideRequirement((BATTERY.code,), False, (BATTERY.code,))
    both = override_requirement(relaxed, [BATTERY, WEIGHT])
    assert both.second_person
    assert both.reason_only == (BATTERY.code,)
    assert override_requirement(STANDARD, [BATTERY]).second_person
    assert check_override(battery, Override("nurse.a", REASON, frozenset({BATTERY.code}))) == ()


REQ = OverrideRequirement((WEIGHT.code,), second_person=True)


def test_the_nurses_part_is_enough_to_program_pending_approval() -> None:
    assert check_override_reason(REQ, BY_A) == ()
    assert approval_pending(REQ, BY_A)
    assert codes(check_override(REQ, BY_A)) == {"override.second_person_missing"}
    assert codes(check_override_reason(REQ, None)) == {"override.missing"}
    assert codes(check_override_reason(REQ, dataclasses.replace(BY_A, reason="short"))) == {
        "override.reason_missing"
    }
    assert not approval_pending(REQ, dataclasses.replace(BY_A, reason="short"))
    assert not approval_pending(REQ, None)
    assert not approval_pending(OverrideRequirement((WEIGHT.code,), False), BY_A)
    assert check_override_reason(OverrideRequirement((), False), None) == ()


def test_approval_by_someone_else_completes_the_override() -> None:
    approved = dataclasses.replace(BY_A, second_by="staff:N002")
    assert check_approval(REQ, approved) == ()
    assert check_override(REQ, approved) == ()
    assert not approval_pending(REQ, approved)
    same = dataclasses.replace(BY_A, second_by=" STAFF:n001 ")
    assert codes(check_approval(REQ, same)) == {"override.second_person_same"}
    assert not approval_pending(REQ, same)
    assert codes(check_approval(REQ, BY_A)) == {"override.second_person_missing"}
    assert check_approval(OverrideRequirement((WEIGHT.code,), False), BY_A) == ()


def test_the_missing_approval_names_each_verdict_with_value_and_limit() -> None:
    v = approval_missing([WEIGHT, BATTERY])
    assert (v.code, v.severity, v.rule) == (
        "override.approval_missing",
        Severity.HARD,
        "order.override",
    )
    assert v.message == (
        "The override of weight.above_soft_max (140 kg, limit 130 kg); start.pump.battery_low "
        "(The pump battery is low) needs a second person's approval first."
    )


people = st.sampled_from(["staff:N001", "staff:N002", " Staff:N001", "ana", "ANA ", "ben"])


@given(by=people, second=st.one_of(st.none(), people))
def test_no_override_passes_without_two_different_people(by: str, second: str | None) -> None:
    override = dataclasses.replace(BY_A, by=by, second_by=second)
    passes = check_override(REQ, override) == ()
    different = second is not None and second.strip().casefold() != by.strip().casefold()
    assert passes == different


# -- the pump and the container -----------------------------------------------------------


def test_a_rate_above_the_pumps_maximum_is_refused() -> None:
    (v,) = pump_fit(D("1200.01"), 100_000, D(1200), None)
    assert (v.code, v.rule, v.value, v.limit, v.unit) == (
        "pump.rate_above_max",
        "order.pump_max_rate",
        "1200.01",
        "1200",
        "mL/h",
    )
    assert v.message.startswith("The rate of 1200.01 mL/h is above this pump's maximum of 1200")
    assert pump_fit(D(1200), 100_000, D(1200), None) == []


def test_a_volume_beyond_the_container_is_refused() -> None:
    (v,) = pump_fit(D(150), 100_001, D(1200), 100_000)
    assert (v.code, v.rule, v.value, v.limit) == (
        "order.vtbi_above_container",
        "order.container_volume",
        "100.001",
        "100",
    )
    assert "100.001 mL is more than the 100 mL" in v.message
    assert pump_fit(D(150), 100_000, D(1200), 100_000) == []


@given(
    rate=st.decimals(min_value=D("0.01"), max_value=D(2000), places=2),
    max_rate=st.one_of(st.none(), st.decimals(min_value=D("0.01"), max_value=D(2000), places=2)),
    vtbi=st.integers(min_value=1, max_value=10**6),
    container=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
)
def test_nothing_beyond_the_pump_or_the_container_passes(
    rate: Decimal, max_rate: Decimal | None, vtbi: int, container: int | None
) -> None:
    found = codes(pump_fit(rate, vtbi, max_rate, container))
    assert ("pump.rate_above_max" in found) == (max_rate is not None and rate > max_rate)
    assert ("order.vtbi_above_container" in found) == (container is not None and vtbi > container)


@pytest.mark.parametrize("code", ["bad", "Start.pump", "start..x", "start.pump.battery low"])
def test_reason_only_codes_must_be_verdict_codes(code: str) -> None:
    from pydantic import ValidationError

    data = STANDARD.model_dump(mode="json")
    data["soft_override_reason_only"] = [code]
    with pytest.raises(ValidationError):
        Protocol.model_validate(data)


# -- draft protocols ------------------------------------------------------------------------


@given(released=st.booleans(), simulation=st.booleans())
def test_a_draft_protocol_treats_no_patient_outside_simulation(
    released: bool, simulation: bool
) -> None:
    from safety.guards import protocol_released

    found = protocol_released("ketamine-new@1", released, simulation)
    assert bool(found) == (not released and not simulation)
    for v in found:
        assert (v.code, v.severity, v.rule) == (
            "protocol.not_released",
            Severity.HARD,
            "order.protocol_released",
        )
        assert "ketamine-new@1 is a draft" in v.message

"""Order checks: both sides of every bound of every rule, and the override as data."""

from __future__ import annotations

import dataclasses
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

import pumpd
from safety.order import (
    MIN_REASON_CHARS,
    Checked,
    OrderFigures,
    Override,
    OverrideRequirement,
    check_order,
    check_override,
    override_requirement,
)
from safety.protocol import Band, Protocol
from safety.verdicts import Severity, Verdict, needs_override, refused, worst

D = Decimal
# Next to the installed pumpd package (not this file): mutmut runs these tests from a copy.
ROOT = Path(pumpd.__file__).resolve().parent.parent / "protocols"
EPS = D("0.000001")


def load(name: str) -> Protocol:
    text = (ROOT / f"{name}.v1.toml").read_text(encoding="utf-8")
    return Protocol.model_validate(tomllib.loads(text, parse_float=Decimal))


STANDARD = load("ketamine-trd-standard")
PAIN = load("ketamine-chronic-pain")


def figures(**values: Decimal) -> OrderFigures:
    """A clean standard order (80 kg, 0.5 mg/kg, 40 min), with ``values`` replaced."""
    v = {
        "weight": D(80),
        "dose_per_kg": D("0.5"),
        "dose_rate": D("0.75"),
        "total_dose": D(40),
        "rate": D(150),
        "duration": D(40),
        **values,
    }
    return OrderFigures(
        weight_kg=v["weight"],
        dose_per_kg=Checked("dose_per_kg", "dose", "mg/kg", v["dose_per_kg"], v["dose_per_kg"]),
        dose_rate=Checked("dose_rate", "dose rate", "mg/kg/h", v["dose_rate"], v["dose_rate"]),
        total_dose=Checked("total_dose", "total dose", "mg", v["total_dose"], v["total_dose"]),
        rate=Checked("rate", "flow rate", "mL/h", v["rate"], v["rate"]),
        duration=Checked("duration", "duration", "min", v["duration"], v["duration"]),
        rate_wire_ml_h=v["rate"],
        vtbi_ul=100_000,
    )


def codes(verdicts: tuple[Verdict, ...]) -> set[str]:
    return {v.code for v in verdicts}


def test_clean_order_has_no_verdicts() -> None:
    assert check_order(STANDARD, figures()) == ()


# (quantity, value, expected code or None) — both sides of every bound of the standard protocol.
STANDARD_TABLE = [
    ("weight", D(150), "weight.above_soft_max"),
    ("weight", D(150) + EPS, "weight.above_hard_max"),
    ("weight", D(130), None),
    ("weight", D(130) + EPS, "weight.above_soft_max"),
    ("weight", D(45), None),
    ("weight", D(45) - EPS, "weight.below_soft_min"),
    ("weight", D(40), "weight.below_soft_min"),
    ("weight", D(40) - EPS, "weight.below_hard_min"),
    ("dose_per_kg", D("0.75"), None),
    ("dose_per_kg", D("0.75") + EPS, "dose_per_kg.above_soft_max"),
    ("dose_per_kg", D("1.0"), "dose_per_kg.above_soft_max"),
    ("dose_per_kg", D("1.0") + EPS, "dose_per_kg.above_hard_max"),
    ("dose_per_kg", D("0.5"), None),
    ("dose_per_kg", D("0.5") - EPS, "dose_per_kg.below_soft_min"),
    ("dose_per_kg", D("0.1"), "dose_per_kg.below_soft_min"),
    ("dose_per_kg", D("0.1") - EPS, "dose_per_kg.below_hard_min"),
    ("total_dose", D(75), None),
    ("total_dose", D(75) + EPS, "total_dose.above_soft_max"),
    ("total_dose", D(100), "total_dose.above_soft_max"),
    ("total_dose", D(100) + EPS, "total_dose.above_hard_max"),
    ("total_dose", EPS, None),  # no minimum on the total in this protocol
    ("rate", D(150), None),
    ("rate", D(150) + EPS, "rate.above_soft_max"),
    ("rate", D(200), "rate.above_soft_max"),
    ("rate", D(200) + EPS, "rate.above_hard_max"),
    ("rate", D(100), None),
    ("rate", D(100) - EPS, "rate.below_soft_min"),
    ("rate", D(50), "rate.below_soft_min"),
    ("rate", D(50) - EPS, "rate.below_hard_min"),
    ("duration", D(60), None),
    ("duration", D(60) + EPS, "duration.above_soft_max"),
    ("duration", D(100), "duration.above_soft_max"),
    ("duration", D(100) + EPS, "duration.above_hard_max"),
    ("duration", D(40), None),
    ("duration", D(40) - EPS, "duration.below_soft_min"),
    ("duration", D(30), "duration.below_soft_min"),
    ("duration", D(30) - EPS, "duration.below_hard_min"),
    ("dose_rate", D(1000), None),  # the standard protocol has no dose-rate band
]


@pytest.mark.parametrize(("quantity", "value", "code"), STANDARD_TABLE)
def test_standard_protocol_bounds(quantity: str, value: Decimal, code: str | None) -> None:
    verdicts = check_order(STANDARD, figures(**{quantity: value}))
    assert codes(verdicts) == ({code} if code else set())
    for v in verdicts:
        expected = Severity.HARD if "hard" in v.code else Severity.SOFT
        assert v.severity is expected
        assert v.rule.startswith("order.")


PAIN_TABLE = [
    ("dose_rate", D("0.35"), None),
    ("dose_rate", D("0.35") + EPS, "dose_rate.above_soft_max"),
    ("dose_rate", D("0.5"), "dose_rate.above_soft_max"),
    ("dose_rate", D("0.5") + EPS, "dose_rate.above_hard_max"),
    ("dose_rate", D("0.1"), None),
    ("dose_rate", D("0.1") - EPS, "dose_rate.below_soft_min"),
    ("dose_rate", D("0.05"), "dose_rate.below_soft_min"),
    ("dose_rate", D("0.05") - EPS, "dose_rate.below_hard_min"),
]


@pytest.mark.parametrize(("quantity", "value", "code"), PAIN_TABLE)
def test_continuous_protocol_checks_the_dose_rate(
    quantity: str, value: Decimal, code: str | None
) -> None:
    clean = {
        "dose_per_kg": D("1.4"),
        "dose_rate": D("0.35"),
        "total_dose": D(112),
        "rate": D(28),
        "duration": D(240),
    }
    verdicts = check_order(PAIN, figures(**{**clean, quantity: value}))
    assert codes(verdicts) == ({code} if code else set())


def test_messages_give_value_limit_and_unit() -> None:
    (v,) = check_order(STANDARD, figures(dose_per_kg=D("1.2")))
    assert v.message == (
        "The dose of 1.2 mg/kg is above the hard limit of 1 mg/kg; it cannot be given."
    )
    (v,) = check_order(STANDARD, figures(rate=D("99.5")))
    assert v.message == (
        "The flow rate of 99.5 mL/h is below the usual minimum of 100 mL/h; "
        "it needs an override with a reason."
    )


def test_minimum_uses_the_lowest_and_maximum_the_highest_figure() -> None:
    f = figures()
    # after rounding the rate can be 149.99 (lowest) while the exact rate is 150.005 (highest)
    straddle = dataclasses.replace(
        f, rate=Checked("rate", "flow rate", "mL/h", D("99.99"), D("150.01"))
    )
    assert codes(check_order(STANDARD, straddle)) == {"rate.below_soft_min", "rate.above_soft_max"}


@pytest.mark.parametrize(("rate", "vtbi"), [(D(0), 100_000), (D(150), 0), (D(0), 0)])
def test_below_wire_resolution_is_hard(rate: Decimal, vtbi: int) -> None:
    f = dataclasses.replace(figures(), rate_wire_ml_h=rate, vtbi_ul=vtbi)
    verdicts = check_order(STANDARD, f)
    assert "wire.below_resolution" in codes(verdicts)
    assert refused(verdicts)


def test_smallest_wire_values_pass() -> None:
    f = dataclasses.replace(figures(), rate_wire_ml_h=D("0.01"), vtbi_ul=1)
    assert "wire.below_resolution" not in codes(check_order(STANDARD, f))


# --- overrides -------------------------------------------------------------------------------

SOFT = Verdict("dose_per_kg.above_soft_max", Severity.SOFT, "m", "order.dose_mg_per_kg")
SOFT2 = Verdict("total_dose.above_soft_max", Severity.SOFT, "m", "order.total_dose_mg")
HARD = Verdict("rate.above_hard_max", Severity.HARD, "m", "order.rate_ml_h")
NOTE = Verdict("double_check.required", Severity.NOTE, "m", "order.double_check")
REASON = "responder at 0.5 mg/kg fading; psychiatrist approved"


def test_requirement_lists_soft_codes_and_second_person_per_protocol() -> None:
    req = override_requirement(STANDARD, [SOFT, SOFT2, NOTE])
    assert req == OverrideRequirement(codes=(SOFT.code, SOFT2.code), second_person=True)
    assert req.required
    assert req.as_dict() == {
        "required": True,
        "codes": [SOFT.code, SOFT2.code],
        "second_person": True,
        "reason_only": [],
    }
    relaxed = STANDARD.model_copy(update={"soft_override_second_person": False})
    assert override_requirement(relaxed, [SOFT]).second_person is False


def test_worst_severity_of_an_order() -> None:
    assert worst([NOTE, SOFT]) is Severity.SOFT
    assert worst([SOFT, HARD, NOTE]) is Severity.HARD
    assert worst(check_order(STANDARD, figures())) is None


def test_no_requirement_for_clean_or_refused_orders() -> None:
    assert not override_requirement(STANDARD, [NOTE]).required
    assert not override_requirement(STANDARD, [NOTE]).second_person
    refused_req = override_requirement(STANDARD, [SOFT, HARD])
    assert refused_req == OverrideRequirement(codes=(), second_person=False)
    assert needs_override([SOFT, NOTE])


GOOD = Override(by="nurse.a", reason=REASON, codes=frozenset({SOFT.code}), second_by="nurse.b")
REQ = OverrideRequirement(codes=(SOFT.code,), second_person=True)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (GOOD, set()),
        (None, {"override.missing"}),
        (dataclasses.replace(GOOD, by="  "), {"override.identity_missing"}),
        (
            dataclasses.replace(GOOD, reason="x" * (MIN_REASON_CHARS - 1)),
            {"override.reason_missing"},
        ),
        (dataclasses.replace(GOOD, reason=" " + "x" * MIN_REASON_CHARS + " "), set()),
        (dataclasses.replace(GOOD, codes=frozenset()), {"override.not_covering"}),
        (dataclasses.replace(GOOD, codes=frozenset({SOFT.code, "other"})), set()),
        (dataclasses.replace(GOOD, second_by=None), {"override.second_person_missing"}),
        (dataclasses.replace(GOOD, second_by=" "), {"override.second_person_missing"}),
        (dataclasses.replace(GOOD, second_by=" Nurse.A "), {"override.second_person_same"}),
    ],
)
def test_override_checks(override: Override | None, expected: set[str]) -> None:
    verdicts = check_override(REQ, override)
    assert codes(verdicts) == expected
    assert all(v.severity is Severity.HARD for v in verdicts)


def test_override_without_second_person_when_protocol_does_not_need_one() -> None:
    req = OverrideRequirement(codes=(SOFT.code,), second_person=False)
    assert check_override(req, dataclasses.replace(GOOD, second_by=None)) == ()


def test_nothing_to_override() -> None:
    assert check_override(OverrideRequirement(codes=(), second_person=False), None) == ()


def test_uncovered_codes_are_named() -> None:
    req = OverrideRequirement(codes=(SOFT.code, SOFT2.code), second_person=False)
    (v,) = check_override(req, GOOD)
    assert v.message == f"The override does not cover {SOFT2.code}."


def test_band_is_what_the_checks_read() -> None:
    # guard: the table above assumes these standard-protocol numbers
    assert STANDARD.limits.rate_ml_h == Band(
        hard_min=D(50), soft_min=D(100), soft_max=D(150), hard_max=D(200)
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            D(151),
            "The patient weight of 151 kg is above the hard limit of 150 kg; it cannot be given.",
        ),
        (
            D(131),
            "The patient weight of 131 kg is above the usual maximum of 130 kg; it needs an "
            "override with a reason.",
        ),
        (
            D(39),
            "The patient weight of 39 kg is below the hard limit of 40 kg; it cannot be given.",
        ),
        (
            D(44),
            "The patient weight of 44 kg is below the usual minimum of 45 kg; it needs an "
            "override with a reason.",
        ),
    ],
)
def test_each_side_has_its_sentence(value: Decimal, message: str) -> None:
    (v,) = check_order(STANDARD, figures(weight=value))
    assert v.message == message
    assert v.rule == "order.weight_kg"


def test_continuous_order_reports_weight_dose_rate_and_rate_together() -> None:
    f = figures(
        weight=D(151),
        dose_per_kg=D("1.4"),
        dose_rate=D("0.6"),
        total_dose=D(112),
        rate=D(28),
        duration=D(240),
    )
    verdicts = check_order(PAIN, f)
    assert codes(verdicts) == {"weight.above_hard_max", "dose_rate.above_hard_max"}
    assert {v.rule for v in verdicts} == {"order.weight_kg", "order.dose_rate_mg_per_kg_h"}


def test_wire_resolution_sentence() -> None:
    f = dataclasses.replace(figures(), rate_wire_ml_h=D(0), vtbi_ul=0)
    (v,) = (x for x in check_order(STANDARD, f) if x.code == "wire.below_resolution")
    assert v.message == (
        "The order rounds to 0 mL/h and 0 µL, below what the pump can deliver (0.01 mL/h, 1 µL)."
    )
    assert v.rule == "order.wire_resolution"


@pytest.mark.parametrize(
    ("override", "code", "message"),
    [
        (
            None,
            "override.missing",
            "This order is outside the usual limits (dose_per_kg.above_soft_max); an override "
            "with a reason is needed before it can start.",
        ),
        (
            dataclasses.replace(GOOD, by=""),
            "override.identity_missing",
            "The override does not say who made it.",
        ),
        (
            dataclasses.replace(GOOD, reason="short"),
            "override.reason_missing",
            "The override reason must say why, in at least 10 characters.",
        ),
        (
            dataclasses.replace(GOOD, second_by=None),
            "override.second_person_missing",
            "This protocol needs a second person to confirm the override.",
        ),
        (
            dataclasses.replace(GOOD, second_by="nurse.a"),
            "override.second_person_same",
            "The second person confirming the override must be someone else.",
        ),
    ],
)
def test_override_sentences(override: Override | None, code: str, message: str) -> None:
    (v,) = check_override(REQ, override)
    assert (v.code, v.message, v.rule) == (code, message, "order.override")


def test_not_covering_sentence_lists_every_missing_code() -> None:
    req = OverrideRequirement(codes=(SOFT.code, SOFT2.code), second_person=False)
    (v,) = check_override(req, dataclasses.replace(GOOD, codes=frozenset()))
    assert (v.code, v.rule) == ("override.not_covering", "order.override")
    assert v.message == f"The override does not cover {SOFT.code}, {SOFT2.code}."
    (missing,) = check_override(req, None)
    assert f"({SOFT.code}, {SOFT2.code})" in missing.message

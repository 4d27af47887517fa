"""The dose calculator: concrete plans of the shipped protocols, every unit path, rounding,
priming, input refusal, and the properties the specification names."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

import pumpd
from safety.plan import (
    MAX_INPUT,
    MIN_INPUT,
    Order,
    OutOfRangeInput,
    Patient,
    Plan,
    WrongDoseForm,
    compute_plan,
    dose_in_volume_mg,
    parse_order,
    parse_patient,
)
from safety.protocol import Band, Protocol, WeightBasis
from safety.units import BadNumber, InputError, MissingUnit, WrongDimension
from safety.verdicts import Severity, refused
from safety.weight import ImplausibleHeight, MissingPatientData, Sex

D = Decimal
# Next to the installed pumpd package (not this file): mutmut runs these tests from a copy.
ROOT = Path(pumpd.__file__).resolve().parent.parent / "protocols"


def raw(name: str) -> dict[str, Any]:
    text = (ROOT / f"{name}.v1.toml").read_text(encoding="utf-8")
    return tomllib.loads(text, parse_float=Decimal)


def load(name: str) -> Protocol:
    return Protocol.model_validate(raw(name))


STANDARD = load("ketamine-trd-standard")
ESCALATION = load("ketamine-trd-escalation")
PAIN = load("ketamine-chronic-pain")
SHIPPED = [STANDARD, ESCALATION, PAIN]


def variant(base: Protocol, **changes: Any) -> Protocol:
    data = base.model_dump()
    for key, value in changes.items():
        node = data
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return Protocol.model_validate(data)


def plan(
    protocol: Protocol,
    weight: str,
    dose: str | None = None,
    duration: str | None = None,
    height: str | None = None,
    sex: str | None = None,
) -> Plan:
    return compute_plan(protocol, parse_patient(weight, height, sex), parse_order(dose, duration))


def codes(p: Plan) -> set[str]:
    return {v.code for v in p.verdicts}


# --- concrete plans of the shipped protocols ------------------------------------------------


def test_standard_80kg_gives_40mg_in_100ml_at_150ml_h() -> None:
    p = plan(STANDARD, "80kg")
    assert p.dose_mg == D(40)
    assert p.dose_mg_per_kg == D("0.5")
    assert p.volume_ml == D(100)
    assert p.concentration_mg_per_ml == D("0.4")
    assert p.rate_ml_h == D(150)
    assert p.dose_rate_mg_kg_h == D("0.75")  # 0.5 mg/kg over 40 min
    assert p.vtbi_ul == 100_000
    assert p.duration_min == D(40)
    assert p.expected_duration_min == D(40)
    assert p.delivered_dose_mg == D(40)
    assert p.dose_rounding_mg == 0
    assert p.rate_rounding_ml_h == 0
    assert p.vtbi_rounding_ul == 0
    assert not p.refused
    assert not p.override.required
    assert codes(p) == {"double_check.required"}
    # primed with drug: the line holds 15 mL x 0.4 mg/mL = 6 mg, prepared on top of the dose
    assert p.primed_with_drug
    assert p.priming_drug_mg == D(6)
    assert (p.container_drug_mg, p.container_volume_ml) == (D(46), D(115))
    assert p.dose_to_patient_mg == D(40)
    assert p.line_residual_mg == D(6)
    assert p.protocol_key == "ketamine-trd-standard@1"
    assert p.dose_mode == "total_per_kg"


def test_pounds_convert_exactly() -> None:
    p = plan(STANDARD, "176lb")
    assert p.weight_kg == D("79.83225712")
    assert p.dose_mg == D("39.91612856")
    assert p.delivered_dose_mg == p.dose_mg  # fixed bag: whole bag, whatever the dose
    assert plan(STANDARD, "80kg").dose_mg - p.dose_mg < D("0.1")


def test_escalation_up_to_1_mg_per_kg_over_60_min() -> None:
    p = plan(ESCALATION, "80kg", "1.0mg/kg", "60min")
    assert p.dose_mg == D(80)
    assert p.rate_ml_h == D("100")
    assert p.dose_rate_mg_kg_h == D(1)
    assert not p.refused
    assert codes(p) == {"double_check.required"}
    assert plan(ESCALATION, "80kg", "1.01mg/kg").refused


def test_chronic_pain_continuous_rate_80kg() -> None:
    p = plan(PAIN, "80kg")
    assert p.dose_mode == "rate_per_kg_h"
    assert p.dose_rate_mg_kg_h == D("0.35")
    assert p.dose_mg == D(112)  # 0.35 x 80 x 4 h
    assert p.dose_mg_per_kg == D("1.40")
    assert p.volume_ml == D(112)  # 1 mg/mL
    assert p.rate_ml_h == D(28)
    assert p.vtbi_ul == 112_000
    # primed with carrier: 15 mL of drug stays in the line unless flushed
    assert not p.primed_with_drug
    assert p.container_drug_mg == D(112)
    assert p.dose_to_patient_mg == D(97)
    assert p.line_residual_mg == D(15)
    assert "priming.carrier_dead_space" in codes(p)
    assert not p.refused


def test_chronic_pain_takes_a_rate_dose_in_other_units() -> None:
    p = plan(PAIN, "80kg", "5µg/kg/min", "3h")  # 5 µg/kg/min = 0.3 mg/kg/h
    assert p.dose_rate_mg_kg_h == D("0.30")
    assert p.dose_mg == D("72.00")
    assert p.rate_ml_h == D(24)


# --- preparations x dose modes ----------------------------------------------------------------


def test_fixed_concentration_in_total_mode() -> None:
    conc = variant(
        STANDARD,
        preparation={"kind": "fixed_concentration", "concentration_mg_per_ml": D(1)},
        limits__rate_ml_h={
            "hard_min": D(10),
            "soft_min": D(20),
            "soft_max": D(150),
            "hard_max": D(200),
        },
    )
    p = plan(conc, "80kg")
    assert p.volume_ml == D(40)
    assert p.rate_ml_h == D(60)
    assert p.concentration_mg_per_ml == D(1)
    assert p.container_volume_ml == D(55)
    assert p.container_drug_mg == D(55)


def test_fixed_bag_in_continuous_mode() -> None:
    bag = variant(
        PAIN,
        preparation={"kind": "fixed_bag", "bag_volume_ml": D(250)},
        limits__rate_ml_h={
            "hard_min": D(10),
            "soft_min": D(20),
            "soft_max": D(80),
            "hard_max": D(100),
        },
    )
    p = plan(bag, "80kg")
    assert p.dose_mg == D(112)
    assert p.volume_ml == D(250)
    assert p.concentration_mg_per_ml == D("0.448")
    assert p.rate_ml_h == D("62.5")
    assert p.dose_rate_mg_kg_h == D("0.35")


# --- weight bases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("basis", "weight", "dosing_kg", "applied"),
    [
        ("ideal", "120kg", D(73), WeightBasis.IDEAL),
        ("adjusted", "120kg", D("91.8"), WeightBasis.ADJUSTED),
        ("ideal", "60kg", D(60), WeightBasis.ACTUAL),
        ("adjusted", "60kg", D(60), WeightBasis.ACTUAL),
    ],
)
def test_weight_bases(basis: str, weight: str, dosing_kg: Decimal, applied: WeightBasis) -> None:
    proto = variant(STANDARD, weight_basis=basis)
    p = plan(proto, weight, height="70in", sex="male")
    assert p.dosing_weight_kg == dosing_kg
    assert p.dose_mg == dosing_kg / 2
    assert p.weight_basis is WeightBasis(basis)
    assert p.weight_basis_applied is applied
    assert p.ideal_weight_kg == D(73)
    fell_back = "weight.basis_fell_back_to_actual" in codes(p)
    assert fell_back is (applied is WeightBasis.ACTUAL)


def test_weight_limit_is_on_the_actual_weight_not_the_dosing_weight() -> None:
    proto = variant(STANDARD, weight_basis="ideal")
    p = plan(proto, "151kg", height="70in", sex="male")
    assert p.dosing_weight_kg == D(73)
    assert "weight.above_hard_max" in codes(p)
    assert p.refused


def test_ideal_basis_without_height_is_an_input_error() -> None:
    proto = variant(STANDARD, weight_basis="adjusted")
    with pytest.raises(MissingPatientData, match="needs height and sex"):
        plan(proto, "80kg")
    with pytest.raises(ImplausibleHeight):
        plan(proto, "80kg", height="2m40cm", sex="male") if False else plan(
            proto, "80kg", height="240cm", sex="male"
        )


# --- rounding to the wire ------------------------------------------------------------------


def test_rounding_is_down_and_reported() -> None:
    p = plan(STANDARD, "77kg", "0.7mg/kg", "43min")
    assert abs(p.rate_exact_ml_h - D(100) * 60 / 43) < D("1E-20")
    assert p.rate_ml_h == D("139.53")
    assert p.rate_rounding_ml_h < 0
    assert p.rate_rounding_ml_h > D("-0.01")
    assert p.expected_duration_min is not None
    assert p.expected_duration_min > p.duration_min
    assert "wire.rounded" in codes(p)
    note = next(v for v in p.verdicts if v.code == "wire.rounded")
    assert "139.5349 -> 139.53 mL/h" in note.message
    assert "53.9 mg of 53.9 mg (0 mg)" in note.message  # a fixed bag is given whole


def test_vtbi_rounding_changes_the_delivered_dose() -> None:
    conc = variant(
        PAIN, preparation={"kind": "fixed_concentration", "concentration_mg_per_ml": D(3)}
    )
    p = plan(conc, "77kg", "0.3mg/kg/h", "200min")  # 77 mg / 3 mg/mL = 25.666... mL
    assert p.vtbi_ul == 25_666
    assert D(-1) < p.vtbi_rounding_ul < 0
    assert p.delivered_dose_mg == D("76.998")
    assert p.dose_rounding_mg < 0
    assert "wire.rounded" in codes(p)


def test_order_rounding_to_zero_rate_is_refused() -> None:
    conc = variant(
        PAIN,
        preparation={"kind": "fixed_concentration", "concentration_mg_per_ml": D(100)},
        limits__rate_ml_h={"hard_max": D(80)},
    )
    p = compute_plan(conc, Patient(D(40)), Order(dose_rate_mg_per_kg_h=D("0.00001")))
    assert p.rate_ml_h == 0
    assert p.expected_duration_min is None
    assert "wire.below_resolution" in codes(p)
    assert p.refused


# --- verdicts through the calculator -----------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "dose", "duration", "expected"),
    [
        ("80kg", "0.75mg/kg", None, set()),
        ("80kg", "0.76mg/kg", None, {"dose_per_kg.above_soft_max"}),
        ("80kg", "1mg/kg", None, {"dose_per_kg.above_soft_max", "total_dose.above_soft_max"}),
        ("80kg", "1.1mg/kg", None, {"dose_per_kg.above_hard_max", "total_dose.above_soft_max"}),
        ("150kg", "0.5mg/kg", None, {"weight.above_soft_max"}),  # 75 mg = soft max
        ("151kg", "0.5mg/kg", None, {"weight.above_hard_max", "total_dose.above_soft_max"}),
        ("39kg", "0.5mg/kg", None, {"weight.below_hard_min"}),
        ("80kg", None, "61min", {"duration.above_soft_max", "rate.below_soft_min"}),
        (
            "80kg",
            None,
            "29min",
            {
                "duration.below_hard_min",
                "rate.above_hard_max",
            },
        ),
    ],
)
def test_standard_verdicts_through_the_calculator(
    weight: str, dose: str | None, duration: str | None, expected: set[str]
) -> None:
    p = plan(STANDARD, weight, dose, duration)
    assert codes(p) - {"double_check.required", "wire.rounded"} == expected
    assert p.refused is any("hard" in c for c in expected)
    assert p.override.required is (not p.refused and bool(expected))
    if p.override.required:
        assert set(p.override.codes) == expected
        assert p.override.second_person


def test_no_double_check_note_when_protocol_does_not_require_it() -> None:
    p = plan(variant(STANDARD, double_check_required=False), "80kg")
    assert codes(p) == set()


# --- input errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patient", "order", "error", "fragment"),
    [
        (Patient(D("NaN")), Order(), OutOfRangeInput, "finite"),
        (Patient(D("Infinity")), Order(), OutOfRangeInput, "finite"),
        (Patient(D("-80")), Order(), OutOfRangeInput, "greater than zero"),
        (Patient(D(0)), Order(), OutOfRangeInput, "greater than zero"),
        (Patient(MAX_INPUT + 1), Order(), OutOfRangeInput, "not plausible"),
        (Patient(MIN_INPUT / 10), Order(), OutOfRangeInput, "not plausible"),
        (Patient(80.0), Order(), BadNumber, "must be a Decimal"),  # type: ignore[arg-type]
        (Patient(True), Order(), BadNumber, "must be a Decimal"),  # type: ignore[arg-type]
        (Patient("80kg"), Order(), BadNumber, "must be a Decimal"),  # type: ignore[arg-type]
        (Patient(D(80), height_cm=D(-1)), Order(), OutOfRangeInput, "height"),
        (Patient(D(80), sex="male"), Order(), InputError, "sex must be"),  # type: ignore[arg-type]
        (Patient(D(80)), Order(dose_mg_per_kg=D(0)), OutOfRangeInput, "dose"),
        (Patient(D(80)), Order(duration_min=D("NaN")), OutOfRangeInput, "duration"),
        (Patient(D(80)), Order(dose_rate_mg_per_kg_h=D("0.3")), WrongDoseForm, "total dose per kg"),
    ],
)
def test_bad_input_is_a_specific_input_error(
    patient: Patient, order: Order, error: type[InputError], fragment: str
) -> None:
    with pytest.raises(error) as info:
        compute_plan(STANDARD, patient, order)
    assert fragment in str(info.value)


def test_total_dose_for_a_rate_protocol_is_refused() -> None:
    with pytest.raises(WrongDoseForm, match="dose rate per kg"):
        plan(PAIN, "80kg", "0.5mg/kg")
    with pytest.raises(OutOfRangeInput, match="dose rate"):
        compute_plan(PAIN, Patient(D(80)), Order(dose_rate_mg_per_kg_h=D(0)))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("80",), MissingUnit),
        (("80kg", "180"), MissingUnit),
        (("80kg", "180cm", "other"), InputError),
        (("80 min",), WrongDimension),
    ],
)
def test_parse_patient_refuses(args: tuple[str, ...], error: type[InputError]) -> None:
    with pytest.raises(error):
        parse_patient(*args)


def test_parse_patient_and_order() -> None:
    assert parse_patient("80kg", "180cm", " Female ") == Patient(D(80), D(180), Sex.FEMALE)
    assert parse_order() == Order()
    assert parse_order("0.5mg/kg", "40min") == Order(dose_mg_per_kg=D("0.5"), duration_min=D(40))
    assert parse_order("0.35mg/kg/h") == Order(dose_rate_mg_per_kg_h=D("0.35"))
    with pytest.raises(WrongDimension, match=r"dose per kg .* or a dose rate per kg"):
        parse_order("40mg")
    with pytest.raises(MissingUnit):
        parse_order("0.5")
    with pytest.raises(WrongDimension):
        parse_order(None, "40kg")


def test_as_dict_is_strings_not_floats() -> None:
    d = plan(STANDARD, "77kg", "0.7mg/kg", "43min").as_dict()
    for key in ("dose_mg", "volume_ml", "rate_ml_h", "dose_rate_mg_kg_h", "duration_min"):
        assert isinstance(d[key], str)
    assert d["dose_mg"] == "53.9"
    assert d["rate_ml_h"] == "139.53"
    assert d["vtbi_ul"] == 100_000
    assert d["ideal_weight_kg"] is None
    assert not any(isinstance(v, float) for v in d.values())
    verdicts = d["verdicts"]
    assert isinstance(verdicts, list)
    assert {v["severity"] for v in verdicts} == {"note"}


# --- properties ----------------------------------------------------------------------------

weights = st.decimals(min_value=D("0.001"), max_value=D(400), places=3)
doses = st.decimals(min_value=D("0.001"), max_value=D(3), places=4)
durations = st.decimals(min_value=D("0.1"), max_value=D(600), places=2)


@given(st.sampled_from(SHIPPED), weights, doses, durations)
def test_volume_equals_rate_times_duration_within_rounding(
    protocol: Protocol, weight: Decimal, dose: Decimal, duration: Decimal
) -> None:
    order = (
        Order(dose_mg_per_kg=dose, duration_min=duration)
        if protocol.dose.mode == "total_per_kg"
        else Order(dose_rate_mg_per_kg_h=dose, duration_min=duration)
    )
    p = compute_plan(protocol, Patient(weight), order)
    hours = p.duration_min / 60
    # stated rounding: rate down by < 0.01 mL/h over the duration, VTBI down by < 1 µL
    assert abs(p.volume_ml - p.rate_ml_h * hours) <= D("0.01") * hours
    assert D(0) <= p.volume_ml - D(p.vtbi_ul) / 1000 < D("0.001")
    assert p.rate_ml_h <= p.rate_exact_ml_h < p.rate_ml_h + D("0.01")
    assert p.delivered_dose_mg <= p.dose_mg
    assert p.rate_ml_h == p.rate_ml_h.quantize(D("0.01"))


def within_hard_limits(protocol: Protocol, p: Plan) -> bool:
    lim = protocol.limits

    def ok(band: Band | None, *values: Decimal) -> bool:
        return band is None or all(band.contains_hard(v) for v in values)

    return (
        ok(lim.weight_kg, p.weight_kg)
        and ok(lim.dose_mg_per_kg, p.dose_mg_per_kg, p.delivered_dose_mg / p.dosing_weight_kg)
        and ok(lim.total_dose_mg, p.dose_mg, p.delivered_dose_mg)
        and ok(lim.rate_ml_h, p.rate_ml_h, p.rate_exact_ml_h)
        and ok(lim.duration_min, p.duration_min)
        and (p.expected_duration_min is not None and ok(lim.duration_min, p.expected_duration_min))
        and ok(lim.dose_rate_mg_per_kg_h, p.dose_rate_mg_kg_h)
        and p.rate_ml_h > 0
        and p.vtbi_ul > 0
    )


odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "NaN kg",
            "inf kg",
            "-1kg",
            "0kg",
            "1e9kg",
            "999999999kg",
            "80",
            "80 stone",
            "٨٠kg",
            "0.000001kg",
            "80kg",
            "176lb",
            "500kg",
            "40min",
            "0.5mg/kg",
            "0.35mg/kg/h",
            "1h",
            "180cm",
            "2.4m",
            "male",
            "female",
            "\x00",
            "🐴",
        ]
    ),
)


@given(
    st.sampled_from(SHIPPED),
    odd_text,
    st.one_of(st.none(), odd_text),
    st.one_of(st.none(), odd_text),
    st.one_of(st.none(), odd_text),
    st.one_of(st.none(), odd_text),
)
def test_odd_text_never_escapes_a_hard_limit_or_raises_another_error(
    protocol: Protocol,
    weight: str,
    dose: str | None,
    duration: str | None,
    height: str | None,
    sex: str | None,
) -> None:
    for base in (protocol, variant(protocol, weight_basis="adjusted")):
        try:
            p = plan(base, weight, dose, duration, height, sex)
        except InputError:
            continue
        assert refused(p.verdicts) or within_hard_limits(base, p)


odd_decimal = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([D(0), D("-0"), D("1E+30"), D("1E-30"), D("sNaN"), MAX_INPUT]),
    st.integers(min_value=-10, max_value=10**7),
)


@given(
    st.sampled_from(SHIPPED),
    odd_decimal,
    st.one_of(st.none(), odd_decimal),
    st.one_of(st.none(), odd_decimal),
)
def test_odd_numbers_never_escape_a_hard_limit_or_raise_another_error(
    protocol: Protocol, weight: Decimal, dose: Decimal | None, duration: Decimal | None
) -> None:
    if protocol.dose.mode == "total_per_kg":
        order = Order(dose_mg_per_kg=dose, duration_min=duration)
    else:
        order = Order(dose_rate_mg_per_kg_h=dose, duration_min=duration)
    try:
        p = compute_plan(protocol, Patient(weight), order)
    except InputError:
        return
    assert refused(p.verdicts) or within_hard_limits(protocol, p)


LIMIT_NAMES = ["weight_kg", "dose_mg_per_kg", "total_dose_mg", "rate_ml_h", "duration_min"]


def tighten(
    protocol: Protocol, name: str, ceiling: Decimal | None, floor: Decimal | None
) -> Protocol:
    band = getattr(protocol.limits, name).model_dump()
    if ceiling is not None:
        band["hard_max"] = min(band["hard_max"], ceiling)
        if band["soft_max"] is not None:
            band["soft_max"] = min(band["soft_max"], ceiling)
    if floor is not None:
        band["hard_min"] = floor if band["hard_min"] is None else max(band["hard_min"], floor)
        if band["soft_min"] is not None:
            band["soft_min"] = max(band["soft_min"], floor)
    return variant(protocol, **{f"limits__{name}": band})


def rank_by_quantity(p: Plan) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for v in p.verdicts:
        if v.severity is not Severity.NOTE:
            q = v.code.split(".")[0]
            ranks[q] = max(ranks.get(q, 0), v.severity.rank)
    return ranks


@given(
    st.sampled_from([STANDARD, ESCALATION]),
    st.sampled_from(LIMIT_NAMES),
    st.one_of(st.none(), st.decimals(min_value=0, max_value=300, places=2)),
    st.one_of(st.none(), st.decimals(min_value=0, max_value=300, places=2)),
    st.decimals(min_value=30, max_value=160, places=1),
    st.decimals(min_value=D("0.05"), max_value=D("1.2"), places=3),
    st.decimals(min_value=20, max_value=120, places=1),
)
def test_tightening_a_limit_never_loosens_a_verdict(
    protocol: Protocol,
    name: str,
    ceiling: Decimal | None,
    floor: Decimal | None,
    weight: Decimal,
    dose: Decimal,
    duration: Decimal,
) -> None:
    try:
        tighter = tighten(protocol, name, ceiling, floor)
    except ValidationError:
        assume(False)
        raise
    order = Order(dose_mg_per_kg=dose, duration_min=duration)
    before = compute_plan(protocol, Patient(weight), order)
    after = compute_plan(tighter, Patient(weight), order)
    old, new = rank_by_quantity(before), rank_by_quantity(after)
    for quantity, rank in old.items():
        assert new.get(quantity, -1) >= rank
    assert refused(after.verdicts) or not refused(before.verdicts)


# --- figures and sentences the nurse reads ----------------------------------------------------

PAIN_3MG = variant(
    PAIN, preparation={"kind": "fixed_concentration", "concentration_mg_per_ml": D(3)}
)


def test_as_dict_rounds_each_figure_for_reading() -> None:
    # 77 kg x 0.3 mg/kg/h x 200 min = 77 mg at 3 mg/mL = 25.666... mL at 7.7 mL/h (hand-worked)
    d = plan(PAIN_3MG, "77kg", "0.3mg/kg/h", "200min").as_dict()
    verdicts = d.pop("verdicts")
    assert d == {
        "protocol": "ketamine-chronic-pain@1",
        "dose_mode": "rate_per_kg_h",
        "weight_kg": "77",
        "dosing_weight_kg": "77",
        "weight_basis": "actual",
        "weight_basis_applied": "actual",
        "ideal_weight_kg": None,
        "dose_mg_per_kg": "1",
        "dose_mg": "77",
        "dose_rate_mg_kg_h": "0.3",
        "concentration_mg_per_ml": "3",
        "volume_ml": "25.667",
        "duration_min": "200",
        "rate_exact_ml_h": "7.7",
        "rate_ml_h": "7.7",
        "rate_rounding_ml_h": "0",
        "vtbi_ul": 25666,
        "vtbi_rounding_ul": "-0.667",
        "delivered_dose_mg": "76.998",
        "dose_rounding_mg": "-0.002",
        "expected_duration_min": "199.99",
        "priming_volume_ml": "15",
        "primed_with_drug": False,
        "priming_drug_mg": "45",
        "container_volume_ml": "25.67",
        "container_drug_mg": "77",
        "dose_to_patient_mg": "31.998",  # (25.666 - 15) mL x 3 mg/mL without a flush
        "line_residual_mg": "45",
        "kvo_rate_ml_h": "0",
        "refused": False,
        "override": {"required": False, "codes": [], "second_person": False, "reason_only": []},
    }
    assert verdicts == [
        {
            "code": "priming.carrier_dead_space",
            "severity": "note",
            "message": "The line is primed with carrier: 45 mg of the 77 mg dose stays in the "
            "line (15 mL) at the end unless it is flushed through with 15 mL of carrier.",
            "rule": "order.priming",
        },
        {
            "code": "double_check.required",
            "severity": "note",
            "message": "This protocol needs an independent double-check by a second person "
            "before the start.",
            "rule": "order.double_check",
        },
        {
            "code": "wire.rounded",
            "severity": "note",
            "message": "Rounded down for the pump: 7.7 -> 7.7 mL/h; the dose delivered is "
            "76.998 mg of 77 mg (-0.002 mg).",
            "rule": "order.wire_rounding",
        },
    ]


def test_ideal_weight_and_fallback_note_in_the_output() -> None:
    p = plan(variant(STANDARD, weight_basis="ideal"), "60kg", height="70in", sex="male")
    assert p.as_dict()["ideal_weight_kg"] == "73"
    note = next(v for v in p.verdicts if v.code == "weight.basis_fell_back_to_actual")
    assert note.message == (
        "The protocol doses on ideal body weight, but the actual weight is lower, so the dose "
        "is calculated on the actual weight."
    )
    assert note.rule == "order.weight_basis"
    assert note.severity is Severity.NOTE


@pytest.mark.parametrize(
    ("protocol", "weight", "dose", "duration", "code", "message"),
    [
        (
            STANDARD,
            "151kg",
            None,
            None,
            "weight.above_hard_max",
            "The patient weight of 151 kg is above the hard limit of 150 kg; it cannot be given.",
        ),
        (
            STANDARD,
            "80kg",
            "0.49mg/kg",
            None,
            "dose_per_kg.below_soft_min",
            "The dose of 0.49 mg/kg is below the usual minimum of 0.5 mg/kg; it needs an override "
            "with a reason.",
        ),
        (
            STANDARD,
            "80kg",
            "0.09mg/kg",
            None,
            "dose_per_kg.below_hard_min",
            "The dose of 0.09 mg/kg is below the hard limit of 0.1 mg/kg; it cannot be given.",
        ),
        (
            STANDARD,
            "130kg",
            "0.75mg/kg",
            None,
            "total_dose.above_soft_max",
            "The total dose of 97.5 mg is above the usual maximum of 75 mg; it needs an override "
            "with a reason.",
        ),
        (
            STANDARD,
            "80kg",
            None,
            "120min",
            "rate.below_soft_min",
            "The flow rate of 50 mL/h is below the usual minimum of 100 mL/h; it needs an "
            "override with a reason.",
        ),
        (
            STANDARD,
            "80kg",
            None,
            "101min",
            "duration.above_hard_max",
            # 100 mL at 59.40 mL/h (rounded down) takes 101.01 min: the longer figure is checked
            "The duration of 101.01 min is above the hard limit of 100 min; it cannot be given.",
        ),
        (
            PAIN,
            "80kg",
            "0.09mg/kg/h",
            None,
            "dose_rate.below_soft_min",
            "The dose rate of 0.09 mg/kg/h is below the usual minimum of 0.1 mg/kg/h; it needs an "
            "override with a reason.",
        ),
        (
            PAIN,
            "80kg",
            "0.04mg/kg/h",
            None,
            "dose_rate.below_hard_min",
            "The dose rate of 0.04 mg/kg/h is below the hard limit of 0.05 mg/kg/h; it cannot be "
            "given.",
        ),
        (
            PAIN,
            "80kg",
            "0.51mg/kg/h",
            None,
            "dose_rate.above_hard_max",
            "The dose rate of 0.51 mg/kg/h is above the hard limit of 0.5 mg/kg/h; it cannot be "
            "given.",
        ),
    ],
)
def test_sentences_through_the_calculator(
    protocol: Protocol,
    weight: str,
    dose: str | None,
    duration: str | None,
    code: str,
    message: str,
) -> None:
    p = plan(protocol, weight, dose, duration)
    found = [v for v in p.verdicts if v.code == code]
    assert [v.message for v in found] == [message]
    quantity = code.split(".")[0]
    rules = {
        "weight": "order.weight_kg",
        "dose_per_kg": "order.dose_mg_per_kg",
        "dose_rate": "order.dose_rate_mg_per_kg_h",
        "total_dose": "order.total_dose_mg",
        "rate": "order.rate_ml_h",
        "duration": "order.duration_min",
    }
    assert found[0].rule == rules[quantity]


def test_rate_below_hard_min_through_the_calculator() -> None:
    p = plan(STANDARD, "80kg", None, "100min")  # 60 mL/h: inside hard, below soft
    assert "rate.below_soft_min" in codes(p)
    slow = variant(
        STANDARD,
        limits__duration_min={
            "hard_max": D(150),
            "soft_max": D(60),
            "soft_min": D(40),
            "hard_min": D(30),
        },
    )
    p = plan(slow, "80kg", None, "121min")  # 49.58 mL/h
    assert "rate.below_hard_min" in codes(p)


def test_every_violated_quantity_is_reported_together() -> None:
    p = plan(PAIN, "151kg", "0.6mg/kg/h", "61min")
    assert {
        "weight.above_hard_max",
        "dose_rate.above_hard_max",
        "duration.below_soft_min",
    } <= codes(p)


def test_expected_duration_is_given_for_slow_rates_too() -> None:
    p = plan(PAIN_3MG, "40kg", "0.06mg/kg/h", "300min")  # 2.4 mg/h at 3 mg/mL = 0.8 mL/h
    assert p.rate_ml_h == D("0.8")
    assert p.expected_duration_min == D(300)


def test_rounding_that_lengthens_past_the_soft_maximum_is_flagged() -> None:
    # 77.7 kg x 0.35 mg/kg/h x 5 h = 135.975 mL at 1 mg/mL; 27.195 mL/h runs as 27.19 mL/h,
    # so the infusion takes 300.06 min, past the 300 min soft maximum.
    p = plan(PAIN, "77.7kg", "0.35mg/kg/h", "300min")
    assert p.rate_ml_h == D("27.19")
    assert p.expected_duration_min is not None
    assert p.expected_duration_min > 300
    assert "duration.above_soft_max" in codes(p)


@pytest.mark.parametrize(("priming_ml", "noted"), [(D(0), False), (D("0.1"), True)])
def test_carrier_note_only_when_drug_stays_in_the_line(priming_ml: Decimal, noted: bool) -> None:
    proto = variant(
        PAIN, priming={"volume_ml": priming_ml, "rate_ml_h": D(300), "primed_with_drug": False}
    )
    p = plan(proto, "80kg")
    assert ("priming.carrier_dead_space" in codes(p)) is noted
    assert p.line_residual_mg == priming_ml  # 1 mg/mL
    assert p.container_volume_ml == p.volume_ml


def test_a_callers_low_precision_context_does_not_change_the_plan() -> None:
    import decimal

    expected = plan(PAIN_3MG, "77.7kg", "0.333mg/kg/h", "199min")
    with decimal.localcontext(prec=4):
        again = plan(PAIN_3MG, "77.7kg", "0.333mg/kg/h", "199min")
    assert again == expected


@pytest.mark.parametrize("value", [MIN_INPUT, MAX_INPUT])
def test_input_bounds_are_inclusive(value: Decimal) -> None:
    p = compute_plan(PAIN_3MG, Patient(D(80)), Order(duration_min=value))
    assert p.duration_min == value
    p = compute_plan(STANDARD, Patient(value), Order())
    assert p.weight_kg == value
    assert p.refused


@pytest.mark.parametrize(
    ("protocol", "patient", "order", "message"),
    [
        (STANDARD, Patient(D(-80)), Order(), "weight must be greater than zero, got -80 kg"),
        (
            STANDARD,
            Patient(D(80), height_cm=D(0)),
            Order(),
            "height must be greater than zero, got 0 cm",
        ),
        (
            STANDARD,
            Patient(D(80)),
            Order(duration_min=D(-1)),
            "duration must be greater than zero, got -1 min",
        ),
        (
            STANDARD,
            Patient(D(80)),
            Order(dose_mg_per_kg=D(-1)),
            "dose must be greater than zero, got -1 mg/kg",
        ),
        (
            PAIN,
            Patient(D(80)),
            Order(dose_rate_mg_per_kg_h=D(-1)),
            "dose rate must be greater than zero, got -1 mg/kg/h",
        ),
        (STANDARD, Patient(80.5), Order(), "weight must be a Decimal, got float 80.5"),  # type: ignore[arg-type]
        (
            STANDARD,
            Patient(D(80)),
            Order(dose_rate_mg_per_kg_h=D(1)),
            "ketamine-trd-standard@1 prescribes a total dose per kg (mg/kg), "
            "not a rate per kg (mg/kg/h)",
        ),
        (
            PAIN,
            Patient(D(80)),
            Order(dose_mg_per_kg=D(1)),
            "ketamine-chronic-pain@1 prescribes a dose rate per kg (mg/kg/h), "
            "not a total dose (mg/kg)",
        ),
    ],
)
def test_input_error_sentences(
    protocol: Protocol, patient: Patient, order: Order, message: str
) -> None:
    with pytest.raises(InputError) as info:
        compute_plan(protocol, patient, order)
    assert str(info.value) == message


def test_sex_and_dose_form_sentences() -> None:
    with pytest.raises(InputError) as info:
        parse_patient("80kg", None, "unknown")
    assert str(info.value) == "sex 'unknown' is not accepted: use male or female"
    with pytest.raises(WrongDimension) as dim:
        parse_order("40mg")
    assert str(dim.value) == (
        "dose '40mg' must be a dose per kg (mg/kg, µg/kg, mcg/kg) or a dose rate per kg "
        "(mg/kg/h, mg/kg/min, µg/kg/min, mcg/kg/min)"
    )


# --- the dose in a delivered volume --------------------------------------------------------------


def test_dose_in_a_volume_is_volume_times_concentration_to_the_microgram() -> None:
    assert dose_in_volume_mg(40_000, Decimal("0.4")) == Decimal("16.000")
    assert dose_in_volume_mg(1, Decimal("0.4")) == Decimal("0.000")  # 0.0004 mg
    assert dose_in_volume_mg(2, Decimal("0.4")) == Decimal("0.001")  # 0.0008 mg
    assert dose_in_volume_mg(1_234, Decimal("2.5")) == Decimal("3.085")
    assert dose_in_volume_mg(0, Decimal("10")) == Decimal("0.000")
    assert str(dose_in_volume_mg(5, Decimal("1"))) == "0.005"


@given(
    volume_ul=st.integers(min_value=0, max_value=10_000_000),
    concentration=st.decimals(min_value="0.0001", max_value="1000", places=4),
)
def test_dose_in_a_volume_is_within_half_a_microgram_of_the_exact_figure(
    volume_ul: int, concentration: Decimal
) -> None:
    exact = Decimal(volume_ul) * concentration / 1000
    dose = dose_in_volume_mg(volume_ul, concentration)
    assert dose.as_tuple().exponent == -3
    assert abs(dose - exact) <= Decimal("0.0005")

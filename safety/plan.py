"""The dose calculator: protocol + patient + order -> the plan a pump is programmed with.

Pure and float-free: a float in the dose path can turn 0.1 + 0.2 into 0.30000000000000004,
and a reviewer must be able to redo every figure by hand. Inputs and outputs are Decimal; in
between, the arithmetic is exact (``Fraction`` from those Decimals) so that a repeating
quotient such as 1/3 h cannot tip a rounding step. The pump takes 0.01 mL/h and 1 µL;
both are rounded *down*, so rounding can only give a little less drug a little more slowly,
and the plan states how much. Input that cannot be planned (no unit, NaN, zero, missing
height for an ideal-weight protocol) raises :class:`~safety.units.InputError` and nothing
else; a plan that breaks a limit is still returned, carrying its hard verdicts, so the nurse
sees every figure next to the reason it is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from safety.order import (
    Checked,
    OrderFigures,
    OverrideRequirement,
    check_order,
    override_requirement,
)
from safety.protocol import FixedBag, Protocol, TotalDose, WeightBasis
from safety.units import (
    BadNumber,
    Dimension,
    InputError,
    WrongDimension,
    fmt,
    parse_quantity,
    symbols,
)
from safety.verdicts import Severity, Verdict, refused
from safety.weight import Sex, dosing_weight

WIRE_RATE_STEP_ML_H = Decimal("0.01")
UL_PER_ML = 1000
# Outside this range any single input figure (kg, cm, min, mg/kg) is a typing error, not a
# patient; the bounds also keep every product well inside the working precision below.
MIN_INPUT = Decimal("0.000001")
MAX_INPUT = Decimal(100_000)
# Independent of the caller's decimal context, with headroom over the 28-digit default.
_PRECISION = 40


class WrongDoseForm(InputError):
    """A dose per kg given to a rate-per-kg-per-hour protocol, or the other way round."""


class OutOfRangeInput(InputError):
    """A number that is zero, negative, not finite or absurdly large."""


@dataclass(frozen=True, slots=True)
class Patient:
    """The patient figures the calculator needs; weight is the actual body weight."""

    weight_kg: Decimal
    height_cm: Decimal | None = None
    sex: Sex | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """What was prescribed; None takes the protocol default."""

    dose_mg_per_kg: Decimal | None = None
    dose_rate_mg_per_kg_h: Decimal | None = None
    duration_min: Decimal | None = None


def parse_patient(weight: str, height: str | None = None, sex: str | None = None) -> Patient:
    """A Patient from what a nurse types: ``"80kg"``, ``"176lb"``, ``"180cm"``, ``"male"``."""
    weight_kg = parse_quantity(weight, Dimension.BODY_WEIGHT).value
    height_cm = None if height is None else parse_quantity(height, Dimension.LENGTH).value
    return Patient(weight_kg=weight_kg, height_cm=height_cm, sex=None if sex is None else _sex(sex))


def _sex(text: str) -> Sex:
    try:
        return Sex(text.strip().lower())
    except ValueError:
        raise InputError(f"sex {text!r} is not accepted: use male or female") from None


def parse_order(dose: str | None = None, duration: str | None = None) -> Order:
    """An Order from ``"0.5mg/kg"`` or ``"0.35mg/kg/h"`` and ``"40min"``/``"4h"``."""
    duration_min = None if duration is None else parse_quantity(duration, Dimension.DURATION).value
    if dose is None:
        return Order(duration_min=duration_min)
    try:
        per_kg = parse_quantity(dose, Dimension.DOSE_PER_KG).value
    except WrongDimension:
        try:
            rate = parse_quantity(dose, Dimension.DOSE_RATE_PER_KG).value
        except WrongDimension:
            raise WrongDimension(
                f"dose {dose!r} must be a dose per kg "
                f"({', '.join(symbols(Dimension.DOSE_PER_KG))}) or a dose rate per kg "
                f"({', '.join(symbols(Dimension.DOSE_RATE_PER_KG))})"
            ) from None
        return Order(dose_rate_mg_per_kg_h=rate, duration_min=duration_min)
    return Order(dose_mg_per_kg=per_kg, duration_min=duration_min)


def _checked_input(name: str, value: object, unit: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise BadNumber(f"{name} must be a Decimal, got {type(value).__name__} {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise OutOfRangeInput(f"{name} must be a finite number, got {number}")
    if number <= 0:
        raise OutOfRangeInput(f"{name} must be greater than zero, got {number} {unit}")
    if not MIN_INPUT <= number <= MAX_INPUT:
        raise OutOfRangeInput(f"{name} of {number} {unit} is not plausible; check the entry")
    return number


@dataclass(frozen=True, slots=True)
class Plan:
    """Every figure of an infusion, exact, plus the verdicts on it.

    ``rate_ml_h`` and ``vtbi_ul`` are what the pump is programmed with; the ``*_exact``
    figures are before rounding, and ``delivered_dose_mg`` is what the VTBI carries.
    """

    protocol_key: str
    dose_mode: str
    weight_kg: Decimal
    dosing_weight_kg: Decimal
    weight_basis: WeightBasis
    weight_basis_applied: WeightBasis
    ideal_weight_kg: Decimal | None
    dose_mg_per_kg: Decimal
    dose_mg: Decimal
    dose_rate_mg_kg_h: Decimal
    concentration_mg_per_ml: Decimal
    volume_ml: Decimal
    duration_min: Decimal
    rate_exact_ml_h: Decimal
    rate_ml_h: Decimal
    vtbi_ul: int
    delivered_dose_mg: Decimal
    expected_duration_min: Decimal | None
    priming_volume_ml: Decimal
    primed_with_drug: bool
    priming_drug_mg: Decimal
    container_volume_ml: Decimal
    container_drug_mg: Decimal
    dose_to_patient_mg: Decimal
    line_residual_mg: Decimal
    kvo_rate_ml_h: Decimal
    verdicts: tuple[Verdict, ...]
    override: OverrideRequirement

    @property
    def refused(self) -> bool:
        return refused(self.verdicts)

    @property
    def vtbi_rounding_ul(self) -> Decimal:
        """Delivered minus exact volume, in µL (zero or negative: rounding is down)."""
        return Decimal(self.vtbi_ul) - self.volume_ml * UL_PER_ML

    @property
    def rate_rounding_ml_h(self) -> Decimal:
        return self.rate_ml_h - self.rate_exact_ml_h

    @property
    def dose_rounding_mg(self) -> Decimal:
        return self.delivered_dose_mg - self.dose_mg

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: every Decimal as a string (never a float), rounded for reading."""

        def s(value: Decimal | None, places: int) -> str | None:
            return None if value is None else fmt(value, places)

        return {
            "protocol": self.protocol_key,
            "dose_mode": self.dose_mode,
            "weight_kg": s(self.weight_kg, 2),
            "dosing_weight_kg": s(self.dosing_weight_kg, 2),
            "weight_basis": self.weight_basis.value,
            "weight_basis_applied": self.weight_basis_applied.value,
            "ideal_weight_kg": s(self.ideal_weight_kg, 2),
            "dose_mg_per_kg": s(self.dose_mg_per_kg, 4),
            "dose_mg": s(self.dose_mg, 3),
            "dose_rate_mg_kg_h": s(self.dose_rate_mg_kg_h, 4),
            "concentration_mg_per_ml": s(self.concentration_mg_per_ml, 4),
            "volume_ml": s(self.volume_ml, 3),
            "duration_min": s(self.duration_min, 2),
            "rate_exact_ml_h": s(self.rate_exact_ml_h, 4),
            "rate_ml_h": s(self.rate_ml_h, 2),
            "rate_rounding_ml_h": s(self.rate_rounding_ml_h, 4),
            "vtbi_ul": self.vtbi_ul,
            "vtbi_rounding_ul": s(self.vtbi_rounding_ul, 3),
            "delivered_dose_mg": s(self.delivered_dose_mg, 3),
            "dose_rounding_mg": s(self.dose_rounding_mg, 4),
            "expected_duration_min": s(self.expected_duration_min, 2),
            "priming_volume_ml": s(self.priming_volume_ml, 2),
            "primed_with_drug": self.primed_with_drug,
            "priming_drug_mg": s(self.priming_drug_mg, 3),
            "container_volume_ml": s(self.container_volume_ml, 2),
            "container_drug_mg": s(self.container_drug_mg, 3),
            "dose_to_patient_mg": s(self.dose_to_patient_mg, 3),
            "line_residual_mg": s(self.line_residual_mg, 3),
            "kvo_rate_ml_h": s(self.kvo_rate_ml_h, 2),
            "refused": self.refused,
            "override": self.override.as_dict(),
            "verdicts": [v.as_dict() for v in self.verdicts],
        }


DOSE_STEP_MG = Decimal("0.001")
"""The step of a dose figure derived from a volume (the delivered dose on record and on the
nurse's screen): a microgram, rounded half-even as ``Decimal.quantize`` does."""


def dose_in_volume_mg(volume_ul: int, concentration_mg_per_ml: Decimal) -> Decimal:
    """The drug in ``volume_ul`` of a solution of this concentration, to ``DOSE_STEP_MG``.

    Used for what a pump has delivered so far: the controller writes it with the session's
    end and the control socket shows it; both must give the same figure."""
    return (Decimal(volume_ul) * concentration_mg_per_ml / UL_PER_ML).quantize(DOSE_STEP_MG)


def compute_plan(protocol: Protocol, patient: Patient, order: Order) -> Plan:
    """The plan for ``order`` on ``patient`` under ``protocol``, with its verdicts."""
    with localcontext(prec=_PRECISION):
        return _compute(protocol, patient, order)


def _compute(protocol: Protocol, patient: Patient, order: Order) -> Plan:
    actual_kg = _checked_input("weight", patient.weight_kg, "kg")
    height_cm = (
        None if patient.height_cm is None else _checked_input("height", patient.height_cm, "cm")
    )
    if patient.sex is not None and not isinstance(patient.sex, Sex):
        raise InputError(f"sex must be male or female, got {patient.sex!r}")
    dw = dosing_weight(protocol.weight_basis, actual_kg, height_cm, patient.sex)
    dose = protocol.dose
    duration_min = (
        dose.default_duration_min
        if order.duration_min is None
        else _checked_input("duration", order.duration_min, "min")
    )
    if isinstance(dose, TotalDose):
        if order.dose_rate_mg_per_kg_h is not None:
            raise WrongDoseForm(
                f"{protocol.key} prescribes a total dose per kg (mg/kg), "
                "not a rate per kg (mg/kg/h)"
            )
        per_kg_q = Fraction(
            dose.default_mg_per_kg
            if order.dose_mg_per_kg is None
            else _checked_input("dose", order.dose_mg_per_kg, "mg/kg")
        )
        dose_rate_q = per_kg_q * 60 / Fraction(duration_min)
    else:
        if order.dose_mg_per_kg is not None:
            raise WrongDoseForm(
                f"{protocol.key} prescribes a dose rate per kg (mg/kg/h), not a total dose (mg/kg)"
            )
        dose_rate_q = Fraction(
            dose.default_mg_per_kg_h
            if order.dose_rate_mg_per_kg_h is None
            else _checked_input("dose rate", order.dose_rate_mg_per_kg_h, "mg/kg/h")
        )
        per_kg_q = dose_rate_q * Fraction(duration_min) / 60
    # Exact rational arithmetic up to the wire rounding: a repeating decimal (1/3 h) must not
    # make a rate that is exactly 7.7 mL/h round down to 7.69.
    kg_q = Fraction(dw.kg)
    dose_q = per_kg_q * kg_q
    prep = protocol.preparation
    if isinstance(prep, FixedBag):
        volume_q = Fraction(prep.bag_volume_ml)
        conc_q = dose_q / volume_q
    else:
        conc_q = Fraction(prep.concentration_mg_per_ml)
        volume_q = dose_q / conc_q
    rate_q = volume_q * 60 / Fraction(duration_min)
    step = Fraction(WIRE_RATE_STEP_ML_H)
    rate_wire_q = math.floor(rate_q / step) * step
    vtbi_ul = math.floor(volume_q * UL_PER_ML)
    delivered_ml_q = Fraction(vtbi_ul, UL_PER_ML)
    delivered_q = delivered_ml_q * conc_q
    expected_q = delivered_ml_q * 60 / rate_wire_q if rate_wire_q > 0 else None

    priming = protocol.priming
    priming_q = Fraction(priming.volume_ml)
    if priming.primed_with_drug:
        container_ml_q = volume_q + priming_q
        container_q = dose_q + priming_q * conc_q
        to_patient_q = delivered_q
        residual_q = priming_q * conc_q
    else:
        container_ml_q = volume_q
        container_q = dose_q
        carried_ml_q = min(priming_q, delivered_ml_q)
        to_patient_q = (delivered_ml_q - carried_ml_q) * conc_q
        residual_q = carried_ml_q * conc_q

    per_kg, dose_rate, dose_mg = _dec(per_kg_q), _dec(dose_rate_q), _dec(dose_q)
    concentration, volume_ml = _dec(conc_q), _dec(volume_q)
    rate_exact, rate_wire = _dec(rate_q), _dec(rate_wire_q)
    delivered_mg = _dec(delivered_q)
    expected_min = None if expected_q is None else _dec(expected_q)
    residual_mg = _dec(residual_q)
    figures = OrderFigures(
        weight_kg=actual_kg,
        dose_per_kg=Checked("dose_per_kg", "dose", "mg/kg", delivered_mg / dw.kg, per_kg),
        dose_rate=Checked(
            "dose_rate", "dose rate", "mg/kg/h", rate_wire * concentration / dw.kg, dose_rate
        ),
        total_dose=Checked("total_dose", "total dose", "mg", delivered_mg, dose_mg),
        rate=Checked("rate", "flow rate", "mL/h", rate_wire, rate_exact),
        duration=Checked(
            "duration",
            "duration",
            "min",
            duration_min,
            duration_min if expected_min is None else max(duration_min, expected_min),
        ),
        rate_wire_ml_h=rate_wire,
        vtbi_ul=vtbi_ul,
    )
    verdicts = list(check_order(protocol, figures))
    verdicts += _notes(protocol, dw.basis, dw.applied, residual_mg, priming.volume_ml, dose_mg)
    exact = delivered_q == dose_q and rate_q == rate_wire_q
    verdicts += _rounding_note(exact, dose_mg, delivered_mg, rate_exact, rate_wire)
    return Plan(
        protocol_key=protocol.key,
        dose_mode=dose.mode,
        weight_kg=actual_kg,
        dosing_weight_kg=dw.kg,
        weight_basis=dw.basis,
        weight_basis_applied=dw.applied,
        ideal_weight_kg=dw.ideal_kg,
        dose_mg_per_kg=per_kg,
        dose_mg=dose_mg,
        dose_rate_mg_kg_h=dose_rate,
        concentration_mg_per_ml=concentration,
        volume_ml=volume_ml,
        duration_min=duration_min,
        rate_exact_ml_h=rate_exact,
        rate_ml_h=rate_wire,
        vtbi_ul=vtbi_ul,
        delivered_dose_mg=delivered_mg,
        expected_duration_min=expected_min,
        priming_volume_ml=priming.volume_ml,
        primed_with_drug=priming.primed_with_drug,
        priming_drug_mg=_dec(priming_q * conc_q),
        container_volume_ml=_dec(container_ml_q),
        container_drug_mg=_dec(container_q),
        dose_to_patient_mg=_dec(to_patient_q),
        line_residual_mg=residual_mg,
        kvo_rate_ml_h=protocol.kvo_rate_ml_h,
        verdicts=tuple(verdicts),
        override=override_requirement(protocol, verdicts),
    )


def _dec(value: Fraction) -> Decimal:
    """A rational as a Decimal in the calculator's 40-digit context (exact when it terminates)."""
    return Decimal(value.numerator) / Decimal(value.denominator)


def _notes(
    protocol: Protocol,
    basis: WeightBasis,
    applied: WeightBasis,
    residual_mg: Decimal,
    priming_ml: Decimal,
    dose_mg: Decimal,
) -> list[Verdict]:
    notes: list[Verdict] = []
    if applied is not basis:
        notes.append(
            Verdict(
                "weight.basis_fell_back_to_actual",
                Severity.NOTE,
                f"The protocol doses on {basis.value} body weight, but the actual weight is "
                "lower, so the dose is calculated on the actual weight.",
                "order.weight_basis",
            )
        )
    if not protocol.priming.primed_with_drug and residual_mg > 0:
        notes.append(
            Verdict(
                "priming.carrier_dead_space",
                Severity.NOTE,
                f"The line is primed with carrier: {fmt(residual_mg, 3)} mg of the "
                f"{fmt(dose_mg, 3)} mg dose stays in the line ({fmt(priming_ml)} mL) at the end "
                f"unless it is flushed through with {fmt(priming_ml)} mL of carrier.",
                "order.priming",
            )
        )
    if protocol.double_check_required:
        notes.append(
            Verdict(
                "double_check.required",
                Severity.NOTE,
                "This protocol needs an independent double-check by a second person "
                "before the start.",
                "order.double_check",
            )
        )
    return notes


def _rounding_note(
    exact: bool, dose_mg: Decimal, delivered_mg: Decimal, rate_exact: Decimal, rate_wire: Decimal
) -> list[Verdict]:
    if exact:
        return []
    return [
        Verdict(
            "wire.rounded",
            Severity.NOTE,
            f"Rounded down for the pump: {fmt(rate_exact, 4)} -> {fmt(rate_wire)} mL/h; "
            f"the dose delivered is {fmt(delivered_mg, 3)} mg of {fmt(dose_mg, 3)} mg "
            f"({fmt(delivered_mg - dose_mg, 4)} mg).",
            "order.wire_rounding",
        )
    ]

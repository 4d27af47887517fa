"""The plan as recorded (Plan.as_dict): every figure rounded for reading to its own places,
as a string, never a float. Inputs with more digits than any place count show the rounding
of each field."""

from __future__ import annotations

from test_plan import PAIN, STANDARD, plan


def test_each_figure_of_the_record_is_rounded_to_its_places() -> None:
    record = plan(STANDARD, "83.3337kg", "0.51234mg/kg", "41.111min").as_dict()
    assert {k: record[k] for k in FIGURES} == FIGURES


FIGURES = {
    "weight_kg": "83.33",
    "dosing_weight_kg": "83.33",
    "dose_mg_per_kg": "0.5123",
    "dose_mg": "42.695",
    "dose_rate_mg_kg_h": "0.7477",
    "concentration_mg_per_ml": "0.427",
    "duration_min": "41.11",
    "rate_exact_ml_h": "145.9463",
    "rate_ml_h": "145.94",
    "rate_rounding_ml_h": "-0.0063",
    "delivered_dose_mg": "42.695",
    "priming_drug_mg": "6.404",
    "container_drug_mg": "49.099",
    "dose_to_patient_mg": "42.695",
    "line_residual_mg": "6.404",
}


def test_the_dose_rounding_is_recorded_to_a_tenth_of_a_microgram() -> None:
    p = plan(PAIN, "83.3333kg")
    assert p.dose_rounding_mg is not None
    assert p.dose_rounding_mg.as_tuple().exponent < -4  # finer than the recorded places
    assert p.as_dict()["dose_rounding_mg"] == "-0.0006"


def test_the_notes_a_nurse_reads_give_each_dose_to_a_microgram() -> None:
    standard = plan(STANDARD, "83.3337kg", "0.51234mg/kg", "41.111min")
    assert standard.verdicts[-1].message == (
        "Rounded down for the pump: 145.9463 -> 145.94 mL/h; the dose delivered is 42.695 mg "
        "of 42.695 mg (0 mg)."
    )
    pain = {v.code: v.message for v in plan(PAIN, "83.3333kg").verdicts}
    assert pain["priming.carrier_dead_space"] == (
        "The line is primed with carrier: 15 mg of the 116.667 mg dose stays in the line "
        "(15 mL) at the end unless it is flushed through with 15 mL of carrier."
    )
    assert pain["wire.rounded"] == (
        "Rounded down for the pump: 29.1667 -> 29.16 mL/h; the dose delivered is 116.666 mg "
        "of 116.667 mg (-0.0006 mg)."
    )

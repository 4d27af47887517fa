"""The kernel's answer to an entered reading, whole: code, severity, the sentence the nurse
reads and the rule the audit names, for every kind of answer and stage."""

from __future__ import annotations

import pytest
from test_tick_nominal import VITALS_RULES, reading

from safety.verdicts import Severity, Verdict
from safety.vitals import EntryStage, entry_verdicts

RULE = "vitals.verdict"


def answer(stage: EntryStage, **values: int | None) -> tuple[Verdict, ...]:
    return entry_verdicts(VITALS_RULES, reading(**values), stage)


@pytest.mark.parametrize("stage", list(EntryStage))
def test_within_range_names_its_rule(stage: EntryStage) -> None:
    assert answer(stage) == (
        Verdict("vitals.within_range", Severity.NOTE, "Within the protocol's bands.", RULE),
    )


def test_a_refused_start_names_its_rule() -> None:
    assert answer(EntryStage.BEFORE_START, heart_rate_bpm=115) == (
        Verdict(
            "vitals.start_refused.heart_rate_bpm.above_max",
            Severity.HARD,
            "Heart rate 115 bpm is above the maximum of 110 bpm of the start band: the start "
            "is refused.",
            RULE,
        ),
    )


def test_while_not_delivering_the_stop_band_says_see_the_patient_now() -> None:
    assert answer(EntryStage.NOT_DELIVERING, heart_rate_bpm=150, spo2_percent=91) == (
        Verdict(
            "vitals.stop.heart_rate_bpm.above_max",
            Severity.HARD,
            "Heart rate 150 bpm is above the maximum of 140 bpm of the stop band: see the "
            "patient now; the infusion cannot go on and no discharge.",
            RULE,
        ),
        Verdict(
            "vitals.pause.spo2_percent.below_min",
            Severity.SOFT,
            "SpO2 91 % is below the minimum of 92 % of the pause band: see the patient; the "
            "infusion cannot go on and no discharge.",
            RULE,
        ),
    )


def test_an_incomplete_reading_names_every_missing_and_required_kind() -> None:
    assert answer(EntryStage.DELIVERING, heart_rate_bpm=None, spo2_percent=None) == (
        Verdict(
            "vitals.incomplete",
            Severity.NOTE,
            "Not measured: hr, spo2 (the protocol requires bp, hr, spo2).",
            RULE,
        ),
    )

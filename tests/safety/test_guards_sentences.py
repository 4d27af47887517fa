"""The refusals of the pump fit, the released-protocol and the discharge-vitals guards, whole.

Code, severity, the rule the audit names, the sentence the nurse reads, and for a limit the
figures an override record carries (value, limit, unit).
"""

from __future__ import annotations

from decimal import Decimal

from test_tick_nominal import VITALS_RULES, reading

from safety.guards import discharge_vitals, protocol_released, pump_fit
from safety.verdicts import Severity, Verdict

DISCHARGE = "session.discharge.vitals"


def test_a_volume_beyond_the_container_is_told_to_the_microlitre() -> None:
    assert pump_fit(Decimal(150), 1_235, None, 1_234) == [
        Verdict(
            "order.vtbi_above_container",
            Severity.HARD,
            "The volume to be infused of 1.235 mL is more than the 1.234 mL the prepared "
            "container can give; stop and program a new session with a new container.",
            "order.container_volume",
            "1.235",
            "1.234",
            "mL",
        )
    ]
    assert pump_fit(Decimal(150), 1_234, None, 1_234) == []


def test_a_rate_above_the_pump_maximum_is_hard_with_its_figures() -> None:
    assert pump_fit(Decimal("1200.5"), 1_000, Decimal(1200), None) == [
        Verdict(
            "pump.rate_above_max",
            Severity.HARD,
            "The rate of 1200.5 mL/h is above this pump's maximum of 1200 mL/h; use a pump "
            "that can run it, or a longer duration.",
            "order.pump_max_rate",
            "1200.5",
            "1200",
            "mL/h",
        )
    ]
    assert pump_fit(Decimal(1200), 1_000, Decimal(1200), None) == []


def test_a_draft_protocol_is_refused_in_words() -> None:
    assert protocol_released("iron-sucrose", False, False) == [
        Verdict(
            "protocol.not_released",
            Severity.HARD,
            "The protocol iron-sucrose is a draft (its file is not in released.sha256); only "
            "a released protocol may be used for a patient.",
            "order.protocol_released",
        )
    ]


def test_no_vitals_from_the_observation_is_told_whole() -> None:
    assert discharge_vitals(VITALS_RULES, None, None, True, 15) == [
        Verdict(
            "discharge.vitals_missing",
            Severity.HARD,
            "No vital signs were recorded during the observation; record them before discharge.",
            DISCHARGE,
        )
    ]


def test_an_incomplete_set_names_every_missing_kind() -> None:
    found = discharge_vitals(
        VITALS_RULES, reading(spo2_percent=None, heart_rate_bpm=None), 60.0, True, 15
    )
    assert found == [
        Verdict(
            "discharge.vitals_missing",
            Severity.HARD,
            "The last vital signs lack hr, spo2; record a complete set before discharge.",
            DISCHARGE,
        )
    ]


def test_a_stale_set_says_its_age_in_minutes() -> None:
    assert discharge_vitals(VITALS_RULES, reading(), 3600.0, True, 15) == [
        Verdict(
            "discharge.vitals_stale",
            Severity.HARD,
            "The last vital signs are 60 min old; discharge needs a set no older than 15 min.",
            DISCHARGE,
        )
    ]


def test_a_set_outside_the_pause_band_names_every_breach() -> None:
    found = discharge_vitals(
        VITALS_RULES, reading(heart_rate_bpm=200, spo2_percent=85), 60.0, True, 15
    )
    assert found == [
        Verdict(
            "discharge.vitals_out_of_band",
            Severity.HARD,
            "The last vital signs are outside the pause band: heart rate 200 bpm is above the "
            "maximum of 120 bpm; SpO2 85 % is below the minimum of 92 %.",
            DISCHARGE,
        )
    ]

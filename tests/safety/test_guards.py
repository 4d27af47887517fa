"""The session's guards in the kernel (safety/guards.py), pinned by tests/safety alone.

Weight re-entry at the double-check, prime, adjust and discharge: every boundary on both
sides, every code, sentence and rule name (whole verdicts are compared), and the property
that defines each rule. tests/session/test_guards.py and test_weight_reentry.py show the
session calling them; these tests must catch a broken rule without the session.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_plan import STANDARD, plan

from safety.guards import (
    WEIGHT_TOLERANCE_KG,
    adjust_allowed,
    discharge_allowed,
    prime_allowed,
    weight_reentry,
)
from safety.plan import Plan
from safety.verdicts import Severity, Verdict, refused

D = Decimal
HARD = Severity.HARD
LB = D("0.45359237")  # the international pound, exactly, in kg
FACTOR = {"kg": D(1), "lb": LB}

# -- weight re-entry at the double-check ----------------------------------------------

WEIGHT = "session.double_check.weight"


def mismatch(message: str) -> list[Verdict]:
    return [Verdict("double_check.weight_mismatch", HARD, message, WEIGHT)]


def test_the_tolerance_is_half_the_step_of_a_clinic_scale() -> None:
    assert D("0.05") == WEIGHT_TOLERANCE_KG


@pytest.mark.parametrize("typed", [None, 80, D(80), b"80 kg", ["80 kg"]])
def test_a_weight_that_is_not_text_was_not_typed(typed: object) -> None:
    assert weight_reentry(D(80), typed) == [
        Verdict("double_check.weight_missing", HARD, "The checker must type the weight.", WEIGHT)
    ]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("80", "The checked weight: '80' has no unit: write it with one of kg, lb."),
        ("80 mL", "The checked weight: '80 mL' is a volume, expected a body weight (kg, lb)."),
        (
            "80,5 kg",
            "The checked weight: '80,5 kg' has a decimal comma: write the number with a "
            "point, e.g. '80.5 kg'.",
        ),
        (
            "-80 kg",
            "The checked weight: '-80 kg' is not a plain non-negative number followed by a "
            "unit (e.g. '80kg'; no sign, exponent, comma or NaN; at most 9 digits before and "
            "6 after the point).",
        ),
    ],
)
def test_an_unreadable_weight_is_refused_with_the_parsers_reason(typed: str, message: str) -> None:
    assert weight_reentry(D(80), typed) == [
        Verdict("double_check.weight_unreadable", HARD, message, WEIGHT)
    ]


@pytest.mark.parametrize(
    ("recorded", "typed", "accepted"),
    [
        (D(80), "80 kg", True),
        (D(80), "80.05 kg", True),  # exactly 0.05 kg above
        (D(80), "79.95 kg", True),  # exactly 0.05 kg below
        (D(80), "80.050001 kg", False),
        (D(80), "79.949999 kg", False),
        (D("80.0000001"), "80.05 kg", True),  # 0.0499999 kg
        (D("80.0000001"), "79.95 kg", False),  # 0.0500001 kg
        (D("79.9999999"), "80.05 kg", False),  # 0.0500001 kg
        (D(80), "79.9 kg", False),  # a slipped digit below
        (D(80), "80.1 kg", False),
        (D(82), "180.78 lb", True),  # 82.0004 kg
        (D(82), "180.8 lb", True),  # 82.0098 kg
        (D(82), "180.9lb", False),  # 82.0551 kg
        (D("180.78") * LB - D("0.05"), "180.78 lb", True),  # exactly 0.05 kg, typed in lb
        (D("180.78") * LB - D("0.0500001"), "180.78 lb", False),
        (D(80), "80 lb", False),  # the kg figure typed as pounds
        (D(80), "176.37 lb", True),  # 80.0001 kg
    ],
)
def test_the_tolerance_boundary_in_kg_and_in_lb(recorded: D, typed: str, accepted: bool) -> None:
    found = weight_reentry(recorded, typed)
    if accepted:
        assert found == []
    else:
        assert [v.code for v in found] == ["double_check.weight_mismatch"]


@pytest.mark.parametrize(
    ("recorded", "typed", "message"),
    [
        (
            D(80),
            "80.1 kg",
            "The checked weight of 80.1 kg differs from the programmed 80 kg by 0.1 kg, more "
            "than the 0.05 kg allowed; check the patient's weight and program again.",
        ),
        (
            D(82),
            "181 lb",
            "The checked weight of 181 lb (82.1 kg) differs from the programmed 82 kg "
            "(180.78 lb) by 0.1 kg, more than the 0.05 kg allowed; check the patient's "
            "weight and program again.",
        ),
        (
            D(80),
            "80 lb",
            "The checked weight of 80 lb (36.29 kg) differs from the programmed 80 kg "
            "(176.37 lb) by 43.71 kg, more than the 0.05 kg allowed; check the patient's "
            "weight and program again.",
        ),
        (  # the difference to the place that exceeds the limit
            D("80.0000001"),
            "79.95 kg",
            "The checked weight of 79.95 kg differs from the programmed 80 kg by 0.0500001 "
            "kg, more than the 0.05 kg allowed; check the patient's weight and program again.",
        ),
        (  # programmed in lb (82.0004286486 kg): the difference, 0.0500003514 kg, is shown
            # at the first place that tells it from the limit, not to its last place
            D("180.78") * LB,
            "82.050429 kg",
            "The checked weight of 82.050429 kg differs from the programmed 82 kg by 0.0500004 "
            "kg, more than the 0.05 kg allowed; check the patient's weight and program again.",
        ),
        (
            D("180.78") * LB - D("0.0500001"),
            "180.78 lb",
            "The checked weight of 180.78 lb (82 kg) differs from the programmed 81.95 kg "
            "(180.67 lb) by 0.0500001 kg, more than the 0.05 kg allowed; check the patient's "
            "weight and program again.",
        ),
        (  # the typed figure as typed, to its sixth place; the difference to two
            D(80),
            "80.123456 kg",
            "The checked weight of 80.123456 kg differs from the programmed 80 kg by 0.12 kg, "
            "more than the 0.05 kg allowed; check the patient's weight and program again.",
        ),
        (  # the difference is shown to 12 places at most (here it has 13)
            D("79.9499999999999"),
            "80 kg",
            "The checked weight of 80 kg differs from the programmed 79.95 kg by 0.05 kg, "
            "more than the 0.05 kg allowed; check the patient's weight and program again.",
        ),
    ],
)
def test_a_mismatch_is_one_whole_sentence(recorded: D, typed: str, message: str) -> None:
    assert weight_reentry(recorded, typed) == mismatch(message)


# Recorded weights as the patient record holds them: typed in kg, or in lb and converted.
RECORDED = st.one_of(
    st.decimals(min_value=20, max_value=300, places=3),
    st.decimals(min_value=44, max_value=660, places=2).map(lambda lb: lb * LB),
)
UNIT = st.sampled_from(["kg", "lb"])


@given(RECORDED, UNIT, st.decimals(min_value=D("-0.2"), max_value=D("0.2"), places=6))
def test_accepted_exactly_when_within_the_tolerance_near_the_boundary(
    recorded: D, unit: str, offset: D
) -> None:
    """Typed close to the recorded weight, in either unit: accepted iff within 0.05 kg."""
    number = (recorded / FACTOR[unit]).quantize(D("0.000001")) + offset
    found = weight_reentry(recorded, f"{number} {unit}")
    within = abs(number * FACTOR[unit] - recorded) <= D("0.05")
    assert [v.code for v in found] == ([] if within else ["double_check.weight_mismatch"])


@given(RECORDED, UNIT, st.decimals(min_value=0, max_value=999, places=6))
def test_accepted_exactly_when_within_the_tolerance_anywhere(
    recorded: D, unit: str, number: D
) -> None:
    found = weight_reentry(recorded, f"{number}{unit}")
    within = abs(number * FACTOR[unit] - recorded) <= D("0.05")
    assert [v.code for v in found] == ([] if within else ["double_check.weight_mismatch"])


@given(st.decimals(min_value=20, max_value=300, places=3), st.sampled_from(["0.01", "0.1"]))
def test_a_weight_in_lb_converted_from_the_recorded_kg_is_always_accepted(kg: D, step: str) -> None:
    """A chart in kg, a scale in lb: any kg weight, in pounds to 0.01 or 0.1 lb, passes."""
    in_lb = (kg / LB).quantize(D(step))
    assert weight_reentry(kg, f"{in_lb} lb") == []


SENTENCE = re.compile(
    r"The checked weight of (?P<typed>[0-9.]+) (?P<unit>kg|lb)(?: \((?P<typed_kg>[0-9.]+) kg\))? "
    r"differs from the programmed (?P<rec>[0-9.]+) kg(?: \((?P<rec_typed>[0-9.]+) (?:lb)\))? "
    r"by (?P<diff>[0-9.]+) kg, more than the 0.05 kg allowed; check the patient's weight "
    r"and program again\."
)


@given(RECORDED, UNIT, st.decimals(min_value=0, max_value=999, places=6))
def test_a_refusal_never_shows_the_two_weights_alike(recorded: D, unit: str, number: D) -> None:
    """The nurse must see why: the weights differ as shown, and so does the difference."""
    found = weight_reentry(recorded, f"{number} {unit}")
    if not found:
        return
    [verdict] = found
    match = SENTENCE.fullmatch(verdict.message)
    assert match is not None, verdict.message
    assert D(match["typed"]) == number
    assert match["unit"] == unit
    assert (match["typed_kg"] is None) == (match["rec_typed"] is None) == (unit == "kg")
    typed_kg = match["typed_kg"] or match["typed"]
    assert typed_kg != match["rec"]
    assert match["rec_typed"] is None or match["rec_typed"] != match["typed"]
    assert D(match["diff"]) > D("0.05")
    # The difference shown is the real one, rounded at the place that exceeds the limit.
    difference = abs(number * FACTOR[unit] - recorded)
    shown = match["diff"]
    places = len(shown.partition(".")[2])
    assert abs(D(shown) - difference) <= D(1).scaleb(-max(places, 2)) / 2
    # ... at the first place (two at least) that tells it from the limit, not further.
    if places > 2:
        assert difference.quantize(D(1).scaleb(1 - places)) == D("0.05")


# -- prime ------------------------------------------------------------------------------

PRIME = "session.prime"
AFTER_START = Verdict(
    "prime.after_start",
    HARD,
    "The infusion has started: a prime now would be a bolus into the patient.",
    PRIME,
)
NOT_DISCONNECTED = Verdict(
    "prime.line_not_confirmed_disconnected",
    HARD,
    "Confirm that the line is disconnected from the patient before priming.",
    PRIME,
)


@pytest.mark.parametrize(
    ("start_commanded", "line_disconnected", "expected"),
    [
        (False, True, []),
        (False, False, [NOT_DISCONNECTED]),
        (True, True, [AFTER_START]),  # a confirmed disconnection does not make it safe
        (True, False, [AFTER_START, NOT_DISCONNECTED]),
    ],
)
def test_prime_only_before_the_start_and_into_a_disconnected_line(
    start_commanded: bool, line_disconnected: bool, expected: list[Verdict]
) -> None:
    assert prime_allowed(start_commanded, line_disconnected) == expected


@pytest.mark.parametrize("line_disconnected", [None, 1, "true", "yes", [True], object()])
def test_only_the_value_true_confirms_the_disconnection(line_disconnected: object) -> None:
    assert prime_allowed(False, line_disconnected) == [NOT_DISCONNECTED]


ANYTHING = st.one_of(st.booleans(), st.none(), st.integers(), st.text(max_size=5))


@given(ANYTHING)
def test_prime_is_refused_whenever_the_start_was_commanded(line_disconnected: object) -> None:
    found = prime_allowed(True, line_disconnected)
    assert found[0] == AFTER_START
    assert refused(found)


@given(st.booleans(), ANYTHING)
def test_prime_is_allowed_exactly_before_the_start_with_the_line_confirmed(
    start_commanded: bool, line_disconnected: object
) -> None:
    allowed = prime_allowed(start_commanded, line_disconnected) == []
    assert allowed == (not start_commanded and line_disconnected is True)


# -- adjust -----------------------------------------------------------------------------

ADJUST = "session.adjust"
KEY = STANDARD.key
SHA = "a" * 64
PLAN = plan(STANDARD, "80kg")  # 100 000 µL


def adjust(
    new_key: str | None = None,
    new_sha256: str | None = None,
    new_plan: Plan | None = PLAN,
    delivered_ul: object = 0,
) -> list[Verdict]:
    return adjust_allowed(KEY, SHA, new_key, new_sha256, new_plan, delivered_ul)


def change(new_key: str | None) -> Verdict:
    return Verdict(
        "adjust.protocol_change",
        HARD,
        f"An adjustment cannot change the protocol ({KEY} to {new_key}); "
        "stop this infusion and program a new session.",
        ADJUST,
    )


def test_the_plan_of_these_tests() -> None:
    assert PLAN.vtbi_ul == 100_000
    assert not PLAN.refused


@pytest.mark.parametrize(
    ("new_key", "new_sha256", "expected"),
    [
        (None, None, []),  # the protocol not named again: the same one
        (KEY, SHA, []),
        (KEY, None, []),
        (None, SHA, []),
        ("ketamine-chronic-pain@1", None, [change("ketamine-chronic-pain@1")]),
        ("ketamine-chronic-pain@1", SHA, [change("ketamine-chronic-pain@1")]),
        (KEY, "b" * 64, [change(KEY)]),  # the same name, another file
        (None, "b" * 64, [change(None)]),
    ],
)
def test_an_adjustment_never_changes_the_protocol(
    new_key: str | None, new_sha256: str | None, expected: list[Verdict]
) -> None:
    assert adjust(new_key, new_sha256) == expected


def test_the_protocol_change_sentence_names_both_protocols() -> None:
    [verdict] = adjust("ketamine-chronic-pain@1", "b" * 64)
    assert verdict.message == (
        "An adjustment cannot change the protocol (ketamine-trd-standard@1 to "
        "ketamine-chronic-pain@1); stop this infusion and program a new session."
    )


UNKNOWN = Verdict(
    "adjust.delivered_unknown", HARD, "The volume delivered so far is not known.", ADJUST
)


@pytest.mark.parametrize("delivered_ul", [True, False, -1, 1.0, D(5), "5", None])
@pytest.mark.parametrize("new_plan", [PLAN, None])
def test_the_volume_delivered_must_be_a_whole_number_of_microlitres(
    delivered_ul: object, new_plan: Plan | None
) -> None:
    assert adjust(new_plan=new_plan, delivered_ul=delivered_ul) == [UNKNOWN]


def below(vtbi_ul: int, delivered_ul: int) -> Verdict:
    return Verdict(
        "adjust.below_delivered",
        HARD,
        f"The adjusted volume of {vtbi_ul} µL is not more than the {delivered_ul} µL already "
        "delivered; stop the infusion instead.",
        ADJUST,
    )


@pytest.mark.parametrize(
    ("delivered_ul", "expected"),
    [
        (0, []),
        (1, []),
        (99_999, []),  # one below the new VTBI
        (100_000, [below(100_000, 100_000)]),  # equal: nothing would be left to give
        (100_001, [below(100_000, 100_001)]),
    ],
)
def test_the_new_vtbi_must_be_more_than_already_delivered(
    delivered_ul: int, expected: list[Verdict]
) -> None:
    assert adjust(delivered_ul=delivered_ul) == expected


def test_the_below_delivered_sentence_names_both_volumes() -> None:
    [verdict] = adjust(delivered_ul=100_250)
    assert verdict.message == (
        "The adjusted volume of 100000 µL is not more than the 100250 µL already delivered; "
        "stop the infusion instead."
    )


def test_without_a_plan_only_the_protocol_and_the_volume_are_judged() -> None:
    """A refused plan comes with its own verdicts; no VTBI to compare."""
    assert adjust(new_plan=None, delivered_ul=10**9) == []


def test_every_adjust_finding_is_listed_together() -> None:
    assert adjust("ketamine-chronic-pain@1", delivered_ul=100_000) == [
        change("ketamine-chronic-pain@1"),
        below(100_000, 100_000),
    ]
    assert adjust(KEY, "b" * 64, delivered_ul=-1) == [change(KEY), UNKNOWN]


@given(st.integers(min_value=1, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_adjust_is_allowed_exactly_when_more_is_left_than_delivered(
    vtbi_ul: int, delivered_ul: int
) -> None:
    new_plan = dataclasses.replace(PLAN, vtbi_ul=vtbi_ul)
    found = adjust(new_plan=new_plan, delivered_ul=delivered_ul)
    assert (found == []) == (vtbi_ul > delivered_ul)
    assert found in ([], [below(vtbi_ul, delivered_ul)])


# -- discharge --------------------------------------------------------------------------

DISCHARGE = "session.discharge"
CHECKLIST = STANDARD.discharge_checklist  # four items, not in alphabetical order
MINIMUM_MIN = STANDARD.observation_min  # 30


def discharge(observed_s: float, confirmed: Collection[str] = CHECKLIST) -> list[Verdict]:
    return discharge_allowed(observed_s, MINIMUM_MIN, CHECKLIST, confirmed)


def codes(found: list[Verdict]) -> list[str]:
    return [v.code for v in found]


def test_the_protocol_of_these_tests() -> None:
    assert MINIMUM_MIN == 30
    assert len(CHECKLIST) == 4
    assert sorted(CHECKLIST) != list(CHECKLIST)


@pytest.mark.parametrize(
    ("observed_s", "allowed"),
    [
        (1800.0, True),  # exactly the protocol's observation time
        (1800, True),
        (1800.001, True),
        (1799.999, False),  # just under
        (1799, False),
        (0.0, False),
    ],
)
def test_the_whole_observation_time_must_pass(observed_s: float, allowed: bool) -> None:
    found = discharge(observed_s, set(CHECKLIST))
    assert codes(found) == ([] if allowed else ["discharge.observation_too_short"])


@pytest.mark.parametrize(
    ("observed_s", "minimum_min", "message"),
    [
        (
            1530,
            30,
            "The patient has been observed for 25.5 min; the protocol requires 30 min "
            "(4.5 min to go).",
        ),
        (
            0,
            60,
            "The patient has been observed for 0.0 min; the protocol requires 60 min "
            "(60.0 min to go).",
        ),
        (
            3597,
            60,
            "The patient has been observed for 60.0 min; the protocol requires 60 min "
            "(0.1 min to go).",
        ),
    ],
)
def test_too_short_an_observation_says_how_long_and_how_much_is_left(
    observed_s: float, minimum_min: int, message: str
) -> None:
    assert discharge_allowed(observed_s, minimum_min, [], set()) == [
        Verdict("discharge.observation_too_short", HARD, message, DISCHARGE)
    ]


def test_a_protocol_without_observation_time_or_checklist_discharges_at_once() -> None:
    assert discharge_allowed(0, 0, [], set()) == []
    assert discharge_allowed(0.0, 0, [], []) == []


def test_every_item_must_be_confirmed_and_missing_ones_are_named_in_checklist_order() -> None:
    assert discharge(1800, list(CHECKLIST)) == []
    assert discharge(1800, tuple(reversed(CHECKLIST))) == []
    first, second, third, fourth = CHECKLIST
    assert discharge(1800, {second, fourth}) == [
        Verdict(
            "discharge.checklist_incomplete",
            HARD,
            f"Not yet confirmed: {first}; {third}.",
            DISCHARGE,
        )
    ]
    assert discharge(1800, set()) == [
        Verdict(
            "discharge.checklist_incomplete",
            HARD,
            "Not yet confirmed: responsible adult escort present; advised not to drive or "
            "operate machinery until the next day; dissociation resolved and patient "
            "oriented; vital signs within the pause band.",
            DISCHARGE,
        )
    ]


def test_an_item_the_protocol_does_not_list_is_refused_and_named_sorted() -> None:
    confirmed = {*CHECKLIST, "patient ate", "escort present"}
    assert discharge(1800, confirmed) == [
        Verdict(
            "discharge.checklist_unknown_item",
            HARD,
            "Not on this protocol's checklist: escort present; patient ate.",
            DISCHARGE,
        )
    ]


def test_every_discharge_finding_is_listed_together_in_order() -> None:
    assert discharge_allowed(1530, 30, ["b", "a", "c"], {"z", "y", "a"}) == [
        Verdict(
            "discharge.observation_too_short",
            HARD,
            "The patient has been observed for 25.5 min; the protocol requires 30 min "
            "(4.5 min to go).",
            DISCHARGE,
        ),
        Verdict(
            "discharge.checklist_unknown_item",
            HARD,
            "Not on this protocol's checklist: y; z.",
            DISCHARGE,
        ),
        Verdict("discharge.checklist_incomplete", HARD, "Not yet confirmed: b; c.", DISCHARGE),
    ]


ITEMS = ["a", "b", "c", "d", "e"]


@given(
    st.floats(min_value=0, max_value=10 * 3600, allow_nan=False),
    st.integers(min_value=0, max_value=240),
    st.lists(st.sampled_from(ITEMS), unique=True),
    st.sets(st.sampled_from([*ITEMS, "x", "y"])),
)
def test_discharge_is_allowed_exactly_after_the_time_with_exactly_the_checklist(
    observed_s: float, minimum_min: int, checklist: list[str], confirmed: set[str]
) -> None:
    found = discharge_allowed(observed_s, minimum_min, checklist, confirmed)
    long_enough = observed_s >= minimum_min * 60
    complete = confirmed >= set(checklist)
    nothing_unknown = confirmed <= set(checklist)
    assert (found == []) == (long_enough and complete and nothing_unknown)
    assert codes(found) == [
        code
        for code, fails in [
            ("discharge.observation_too_short", not long_enough),
            ("discharge.checklist_unknown_item", not nothing_unknown),
            ("discharge.checklist_incomplete", not complete),
        ]
        if fails
    ]
    assert all(v.severity is HARD and v.rule == DISCHARGE for v in found)


@given(st.integers(min_value=0, max_value=240))
def test_the_observation_boundary_is_the_minimum_itself(minimum_min: int) -> None:
    at = float(minimum_min * 60)
    assert discharge_allowed(at, minimum_min, [], set()) == []
    if minimum_min:
        just_under = at - 0.001
        assert codes(discharge_allowed(just_under, minimum_min, [], set())) == [
            "discharge.observation_too_short"
        ]


# -- discharge: the vitals gate ---------------------------------------------------------

from test_tick_nominal import T0, VITALS_RULES, reading  # noqa: E402

from safety.guards import discharge_vitals  # noqa: E402

VITALS_RULE = "session.discharge.vitals"


def gate(**overrides: object) -> list[str]:
    values: dict[str, object] = {
        "rules": VITALS_RULES,
        "reading": reading(),
        "age_s": 60.0,
        "during_observation": True,
        "max_age_min": 15,
    }
    values.update(overrides)
    return [v.code for v in discharge_vitals(**values)]  # type: ignore[arg-type]


def test_a_recent_complete_set_in_the_pause_band_from_the_observation_passes() -> None:
    assert gate() == []
    assert gate(age_s=15 * 60.0) == []  # inclusive


@pytest.mark.parametrize(
    "overrides",
    [{"reading": None}, {"age_s": None}, {"during_observation": False}],
)
def test_no_vitals_from_the_observation_is_missing(overrides: dict[str, object]) -> None:
    assert gate(**overrides) == ["discharge.vitals_missing"]


def test_an_incomplete_set_is_missing_and_names_what_lacks() -> None:
    [v] = discharge_vitals(VITALS_RULES, reading(spo2_percent=None), 60.0, True, 15)
    assert (v.code, v.rule, v.severity) == ("discharge.vitals_missing", VITALS_RULE, HARD)
    assert "lack spo2" in v.message


def test_an_old_set_is_stale_and_says_how_old() -> None:
    [v] = discharge_vitals(VITALS_RULES, reading(), 15 * 60.0 + 1, True, 15)
    assert v.code == "discharge.vitals_stale"
    assert v.message == (
        "The last vital signs are 15 min old; discharge needs a set no older than 15 min."
    )


def test_a_set_outside_the_pause_band_refuses_and_names_the_value() -> None:
    [v] = discharge_vitals(VITALS_RULES, reading(heart_rate_bpm=200), 60.0, True, 15)
    assert v.code == "discharge.vitals_out_of_band"
    assert "heart rate 200 bpm" in v.message
    assert gate(reading=reading(heart_rate_bpm=200), age_s=3600.0) == [
        "discharge.vitals_stale",
        "discharge.vitals_out_of_band",
    ]


@given(
    hr=st.integers(min_value=20, max_value=250),
    age_s=st.floats(min_value=0, max_value=7200, allow_nan=False),
    during=st.booleans(),
)
def test_a_discharge_passes_the_gate_only_on_a_recent_in_band_observation_set(
    hr: int, age_s: float, during: bool
) -> None:
    found = gate(
        reading=reading(heart_rate_bpm=hr, taken_at=T0), age_s=age_s, during_observation=during
    )
    pause = VITALS_RULES.pause
    in_band = (pause.heart_rate_bpm_min or 0) <= hr <= (pause.heart_rate_bpm_max or 999)
    assert (found == []) == (during and age_s <= 15 * 60 and in_band)

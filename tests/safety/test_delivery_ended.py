"""The ending rule (safety.continuation.delivery_ended): an interruption about the accuracy of
delivery ends the session once the halt is confirmed; a mechanical alarm or a nurse's stop
never does, nor does any other cause (a nurse ends those)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.continuation import (
    CONTINUABLE,
    DELIVERY_ACCURACY,
    ENDED_RULE,
    InvalidContinuationInput,
    check_resume_cause,
    delivery_ended,
)
from safety.verdicts import Severity

OTHER = (
    "tick.pump.alarm.system_fault",
    "tick.vitals.stop.spo2_percent.below_min",
    "tick.pause.too_long",
    "command.stop.failed",
    "controller.prime.too_long",
)
"""Causes that are neither continuable nor about delivery accuracy: a nurse ends those."""

codes = st.lists(
    st.one_of(
        st.sampled_from(sorted(DELIVERY_ACCURACY)),
        st.sampled_from(sorted(CONTINUABLE)),
        st.sampled_from(OTHER),
        st.text(max_size=30),
    ),
    max_size=8,
).map(tuple)


@pytest.mark.parametrize(
    "code",
    [
        "tick.volume.over_infusion",
        "tick.rate.mismatch",
        "tick.vtbi.exceeded",
        "tick.vtbi.commanded_above_plan",
        "tick.pump.counter_backwards",
        "tick.pump.counter_below_start",
        "tick.pump.rebooted",
        "tick.comm.lost",
        "tick.comm.volume_due",  # ran on past the plan unsupervised (H74)
        "pump.state_lost",
        "pump.vtbi_ignored",
        "controller.bookkeeping",
    ],
)
def test_every_delivery_accuracy_alarm_ends_the_session(code: str) -> None:
    verdict = delivery_ended((code,))
    assert verdict is not None
    assert verdict.code == "continue.delivery_ended"
    assert verdict.rule == ENDED_RULE == "continue.ended"
    assert verdict.severity is Severity.HARD
    assert code in verdict.message
    assert "observed" in verdict.message


@pytest.mark.parametrize("code", sorted(CONTINUABLE))
def test_a_mechanical_alarm_or_a_nurse_stop_does_not_end_it(code: str) -> None:
    assert delivery_ended((code,)) is None


@pytest.mark.parametrize("code", OTHER)
def test_other_causes_are_left_to_the_nurse(code: str) -> None:
    assert delivery_ended((code,)) is None


def test_no_cause_ends_nothing() -> None:
    assert delivery_ended(()) is None


def test_an_occlusion_followed_by_an_over_infusion_ends_it_and_names_only_the_ending_cause() -> (
    None
):
    verdict = delivery_ended(
        ("nurse.stop", "tick.volume.over_infusion", "tick.volume.over_infusion")
    )
    assert verdict is not None
    assert "tick.volume.over_infusion" in verdict.message
    assert verdict.message.count("tick.volume.over_infusion") == 1
    assert "nurse.stop" not in verdict.message


@pytest.mark.parametrize("bad", [["tick.comm.lost"], ("tick.comm.lost", 3), "tick.comm.lost", None])
def test_the_causes_must_be_a_tuple_of_codes(bad: object) -> None:
    with pytest.raises(InvalidContinuationInput):
        delivery_ended(bad)  # type: ignore[arg-type]


@given(codes)
def test_it_ends_exactly_when_a_delivery_accuracy_cause_is_among_them(
    causes: tuple[str, ...],
) -> None:
    verdict = delivery_ended(causes)
    ending = [c for c in dict.fromkeys(causes) if c in DELIVERY_ACCURACY]
    assert (verdict is not None) == bool(ending)
    if verdict is not None:
        # Named in the order they came, each once.
        assert verdict.message.index(", ".join(ending)) > 0


@given(codes)
def test_an_ended_session_is_never_continuable_nor_resumable(causes: tuple[str, ...]) -> None:
    if delivery_ended(causes) is None:
        return
    assert not set(causes) <= CONTINUABLE
    assert [v.code for v in check_resume_cause(causes)] == ["continue.not_continuable"]


@given(st.lists(st.sampled_from(sorted(CONTINUABLE)), max_size=6).map(tuple))
def test_continuable_causes_alone_never_end_it(causes: tuple[str, ...]) -> None:
    assert delivery_ended(causes) is None


def test_the_sets_are_disjoint() -> None:
    assert not DELIVERY_ACCURACY & CONTINUABLE

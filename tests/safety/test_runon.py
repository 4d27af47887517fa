"""The run-on of a pump whose stop at the plan's volume is pumpd's (hazard H74,
safety/runon.py): the STOP at once when the volume falls due on a pump that does not
answer, repeated while it does not; and the refusal of a watchdog that would let the pump
run on past the plan by more than the kernel's overrun allowance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_tick_nominal import decide, inputs, limits, snapshot
from test_tick_properties import inputs_st, limits_st

from safety.actions import Action, ActionKind, Priority
from safety.capability import InvalidAbilities, PumpAbilities
from safety.runon import (
    RUN_ON_RULE,
    VOLUME_DUE_RULE,
    stop_repeats_unanswered,
    volume_due_unanswered,
    watchdog_run_on,
)
from safety.tick import InvalidTickInput, Outcome, SessionPhase, evaluate
from safety.verdicts import Severity

D = Decimal
DULCO = PumpAbilities(stops_at_vtbi=False, has_comm_watchdog=True, has_kvo=False, can_prime=False)
GIP = PumpAbilities(stops_at_vtbi=True, has_comm_watchdog=True, has_kvo=True, can_prime=True)
TIMED = (SessionPhase.INFUSING, SessionPhase.PAUSED)


def silent(**overrides: Any) -> dict[str, Any]:
    """A DULCO pump infusing at 150 mL/h whose reading failed half a second ago, its plan's
    100 mL due by pumpd's count."""
    values: dict[str, Any] = {
        "snapshot": None,
        "volume_stop_primary": True,
        "expected_volume_ul": 100_000,
        "last_good_comm_s": 1999.5,
    }
    values.update(overrides)
    return values


# -- the STOP when the volume falls due on a pump that does not answer ---------------------


def test_the_volume_due_on_a_silent_pump_stops_at_once_with_a_high_alarm() -> None:
    decision = decide(**silent())
    assert decision.outcome is Outcome.STOP
    assert decision.codes == (VOLUME_DUE_RULE,)
    (action,) = decision.actions
    assert action.priority is Priority.HIGH
    assert action.rule == VOLUME_DUE_RULE
    assert action.message == (
        "The pump has not answered for 0.5 s and its volume of 100 mL is due by pumpd's "
        "count (100 mL at 150.00 mL/h). This pump has no volume stop of its own and pumpd "
        "cannot confirm it stopped: stop it at the pump now and check its connection. pumpd "
        "sends STOP until the pump answers."
    )
    assert stop_repeats_unanswered(decision.actions)


@pytest.mark.parametrize(
    ("why", "overrides"),
    [
        ("the pump stops at its own volume", {"volume_stop_primary": False}),
        ("the pump answered", {"snapshot": snapshot(volume_infused_ul=99_000)}),
        ("one µL short of the volume", {"expected_volume_ul": 99_999}),
        ("a halt confirmed: counted at rate 0", {"commanded_rate_ml_h": D(0)}),
        ("keep-vein-open after the volume", {"phase": SessionPhase.KVO}),
        ("the infusion ended", {"phase": SessionPhase.OBSERVATION}),
        ("not started", {"phase": SessionPhase.READY}),
    ],
)
def test_nothing_is_demanded_outside_the_case(why: str, overrides: dict[str, Any]) -> None:
    decision = decide(**silent(**overrides))
    assert VOLUME_DUE_RULE not in decision.codes, why
    assert not stop_repeats_unanswered(decision.actions), why


def test_a_held_session_whose_pump_may_still_run_is_judged_too() -> None:
    # An alarm latched meanwhile: the session is held (the tick's PAUSED phase) while
    # pumpd's count still runs at the last confirmed rate.
    decision = decide(**silent(phase=SessionPhase.PAUSED, paused_since_s=1999.0))
    assert VOLUME_DUE_RULE in decision.codes
    assert decision.outcome is Outcome.STOP


def test_only_that_rules_stop_is_repeated_while_the_pump_does_not_answer() -> None:
    lost = decide(snapshot=None, last_good_comm_s=1990.0)
    assert lost.codes == ("tick.comm.lost",)
    assert not stop_repeats_unanswered(lost.actions)
    alarm = Action(ActionKind.ALARM, Priority.HIGH, VOLUME_DUE_RULE, "x.", VOLUME_DUE_RULE)
    assert not stop_repeats_unanswered([alarm])
    assert not stop_repeats_unanswered([])


def test_the_primary_flag_must_be_a_bool() -> None:
    with pytest.raises(InvalidTickInput, match="volume_stop_primary"):
        inputs(volume_stop_primary=1)


@given(limits_st(), inputs_st())
def test_the_stop_is_demanded_exactly_in_its_case(lim: Any, tick: Any) -> None:
    decision = evaluate(lim, tick)
    due = (
        tick.volume_stop_primary
        and tick.snapshot is None
        and tick.phase in TIMED
        and tick.commanded_rate_ml_h > 0
        and tick.expected_volume_ul >= lim.vtbi_ul
    )
    assert (VOLUME_DUE_RULE in decision.codes) == due
    assert stop_repeats_unanswered(decision.actions) == due
    if due:
        # Whatever else is found, the infusion is stopped with a high alarm, whatever the
        # communication timeout says.
        assert decision.outcome is Outcome.STOP
        assert decision.priority is Priority.HIGH


@given(
    st.booleans(),
    st.booleans(),
    st.sampled_from(SessionPhase),
    st.sampled_from([D(0), D("0.01"), D(150), D(1200)]),
    st.integers(-1_000, 1_000),
    st.floats(min_value=0, max_value=1999, allow_nan=False),
)
@example(True, False, SessionPhase.INFUSING, D("0.01"), 0, 1999.5)  # at the very µL
@example(True, False, SessionPhase.PAUSED, D(150), 1_000, 0.0)  # held, long silent
@example(True, False, SessionPhase.INFUSING, D(150), -1, 1999.5)  # one µL short
def test_near_the_case_the_stop_comes_exactly_in_it(
    primary: bool,
    answered: bool,
    phase: SessionPhase,
    rate: Decimal,
    from_due_ul: int,
    last_good_s: float,
) -> None:
    tick = inputs(
        phase=phase,
        paused_since_s=1999.0 if phase is SessionPhase.PAUSED else None,
        commanded_rate_ml_h=rate,
        snapshot=snapshot(volume_infused_ul=90_000) if answered else None,
        volume_stop_primary=primary,
        expected_volume_ul=100_000 + from_due_ul,
        last_good_comm_s=last_good_s,
    )
    decision = evaluate(limits(), tick)
    due = primary and not answered and phase in TIMED and rate > 0 and from_due_ul >= 0
    assert (VOLUME_DUE_RULE in decision.codes) == due
    assert stop_repeats_unanswered(decision.actions) == due
    if due:
        assert decision.outcome is Outcome.STOP
        assert decision.priority is Priority.HIGH


@given(
    st.integers(0, 300_000),
    st.integers(1, 300_000),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.decimals(min_value=D("0.01"), max_value=1200, places=2),
)
def test_the_rule_alone_depends_on_the_count_not_on_how_long_it_was_silent(
    expected: int, vtbi: int, silent_s: float, rate: Decimal
) -> None:
    found = volume_due_unanswered(
        volume_stop_primary=True,
        answered=False,
        timed_phase=True,
        rate_ml_h=rate,
        expected_ul=expected,
        vtbi_ul=vtbi,
        silent_s=silent_s,
    )
    assert (found is not None) == (expected >= vtbi)


# -- the refusal of a watchdog that runs on past the allowance -----------------------------


def test_ten_seconds_at_150_ml_h_is_refused_naming_the_numbers() -> None:
    (verdict,) = watchdog_run_on(DULCO, watchdog_s=D(10), rate_ml_h=D(150), overrun_ul=200)
    assert verdict.severity is Severity.HARD
    assert verdict.code == "pump.watchdog_run_on"
    assert verdict.rule == RUN_ON_RULE
    assert (verdict.value, verdict.limit, verdict.unit) == ("417", "200", "µL")
    assert verdict.message == (
        "This pump has no volume stop of its own: pumpd's stop ends the infusion, and if "
        "pumpd or its link falls silent as the volume falls due the pump runs on for its own "
        "communication timeout of 10 s. At 150 mL/h that is 417 µL past the plan, more than "
        "the 200 µL allowed above it. Set the pump's timeout (heartbeat_timeout_s, or at the "
        "pump) to at most 4.8 s, or lower the rate."
    )


@pytest.mark.parametrize(
    ("seconds", "rate", "refused"),
    [
        (D(3), D(150), False),  # the soak's, the demo's and the tests' 3 s: 125 µL
        (D(3), D(200), False),  # the standard protocol's hard maximum rate: 167 µL
        (D("4.8"), D(150), False),  # exactly 200 µL
        (D("4.9"), D(150), True),
        (D(4), D(150), False),
        (D(5), D(150), True),
        (D(10), D(0), False),  # nothing delivered, nothing runs on
    ],
)
def test_the_boundary(seconds: Decimal, rate: Decimal, refused: bool) -> None:
    found = watchdog_run_on(DULCO, watchdog_s=seconds, rate_ml_h=rate, overrun_ul=200)
    assert bool(found) == refused


def test_a_pump_with_its_own_stop_or_without_a_watchdog_is_not_judged_here() -> None:
    assert watchdog_run_on(GIP, watchdog_s=D(600), rate_ml_h=D(1200), overrun_ul=0) == []
    # No watchdog at all is live_use's refusal (or the site's accepted risk).
    assert watchdog_run_on(DULCO, watchdog_s=None, rate_ml_h=D(1200), overrun_ul=0) == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate_ml_h": D(-1)}, "rate_ml_h"),
        ({"rate_ml_h": D("NaN")}, "rate_ml_h"),
        ({"rate_ml_h": 150}, "rate_ml_h"),
        ({"overrun_ul": -1}, "overrun_ul"),
        ({"overrun_ul": True}, "overrun_ul"),
        ({"overrun_ul": 200.0}, "overrun_ul"),
        ({"watchdog_s": D("Infinity")}, "watchdog_s"),
        ({"watchdog_s": 3.0}, "watchdog_s"),
        ({"watchdog_s": D(-3)}, "watchdog_s"),
    ],
)
def test_figures_of_the_wrong_kind_are_a_caller_bug(kwargs: dict[str, Any], name: str) -> None:
    values: dict[str, Any] = {"watchdog_s": D(3), "rate_ml_h": D(150), "overrun_ul": 200}
    values.update(kwargs)
    with pytest.raises(InvalidAbilities, match=f"^{name} must"):
        watchdog_run_on(DULCO, **values)


def test_the_run_on_is_rounded_up_and_the_longest_timeout_down() -> None:
    """The sentence never says less run-on than there is, nor a timeout that would still be
    refused: 10 s at 72.01 mL/h is 200.03 µL (said 201, not 200); at 70 mL/h the longest
    timeout is 10.28 s (said 10.2, not 10.3)."""
    (over,) = watchdog_run_on(DULCO, watchdog_s=D(10), rate_ml_h=D("72.01"), overrun_ul=200)
    assert over.value == "201"
    assert "201 µL past the plan" in over.message
    (slow,) = watchdog_run_on(DULCO, watchdog_s=D(11), rate_ml_h=D(70), overrun_ul=200)
    assert "to at most 10.2 s" in slow.message
    assert not watchdog_run_on(DULCO, watchdog_s=D("10.2"), rate_ml_h=D(70), overrun_ul=200)


abilities = st.builds(
    PumpAbilities,
    stops_at_vtbi=st.booleans(),
    has_comm_watchdog=st.booleans(),
    has_kvo=st.booleans(),
    can_prime=st.booleans(),
)


@given(
    abilities,
    st.none() | st.decimals(min_value=D("0.001"), max_value=600, places=3),
    st.decimals(min_value=0, max_value=1200, places=2),
    st.integers(0, 5_000),
)
# 899.1 s at 4 mL/h is 999 µL exactly: a rate constant rounded to 28 digits refused it.
@example(DULCO, D(1000), D(4), 999)
def test_refused_exactly_when_the_run_on_exceeds_the_allowance(
    a: PumpAbilities, seconds: Decimal | None, rate: Decimal, overrun: int
) -> None:
    found = watchdog_run_on(a, watchdog_s=seconds, rate_ml_h=rate, overrun_ul=overrun)
    # In µL × 3600, exact: seconds × mL/h × 1000 against the allowance.
    beyond = seconds is not None and seconds * rate * 1000 > overrun * 3600
    assert bool(found) == (not a.stops_at_vtbi and beyond)
    if found:
        # The timeout it names fits, and a tenth of a second more does not.
        longest = D(found[0].message.split("at most ")[1].split(" s")[0])
        assert not watchdog_run_on(a, watchdog_s=longest, rate_ml_h=rate, overrun_ul=overrun)
        assert watchdog_run_on(a, watchdog_s=longest + D("0.1"), rate_ml_h=rate, overrun_ul=overrun)
        assert int(found[0].value or 0) > overrun

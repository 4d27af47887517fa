"""Keep-vein-open after the VTBI: the kernel lets the pump run at the prescribed KVO rate,
judges that rate, and ends KVO when its allowance (KVO rate × observation time) is used,
by the pump's counter or by the independently integrated expected volume, whichever says
so first. The planned-duration alarm does not time KVO (it has its own bound)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, limits, snapshot

from safety.actions import ActionKind, Priority
from safety.pump import PumpMode
from safety.tick import Outcome, SessionPhase, TickDecision, kvo_complete

D = Decimal
VTBI = 100_000
KVO_MAX = 2_500
KVO_RATE = D("5.00")
NOW = 2000.0


def kvo_tick(
    delivered: int, expected: int, rate: Decimal = KVO_RATE, **overrides: object
) -> TickDecision:
    """A tick in the KVO phase, the pump in KVO, the KVO rate commanded and settled."""
    fields: dict[str, object] = {
        "phase": SessionPhase.KVO,
        "commanded_rate_ml_h": KVO_RATE,
        "snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=delivered, rate_actual_ml_h=rate),
        "previous_snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=min(delivered, VTBI)),
        "expected_volume_ul": expected,
        "delivery_elapsed_s": 99_999.0,  # far beyond max_delivery_s: KVO is not timed
    }
    fields.update(overrides)
    return decide(limits(kvo_max_ul=KVO_MAX), **fields)


def test_kvo_at_its_rate_within_its_allowance_continues() -> None:
    decision = kvo_tick(VTBI + KVO_MAX - 1, VTBI + KVO_MAX - 1)
    assert decision.outcome is Outcome.CONTINUE, decision.codes


def test_kvo_ends_when_the_counter_has_used_the_allowance() -> None:
    decision = kvo_tick(VTBI + KVO_MAX, VTBI + KVO_MAX - 1)
    assert decision.codes == ("tick.vtbi.kvo_complete",)
    (action,) = decision.actions
    assert (action.kind, action.priority, action.rule) == (
        ActionKind.STOP,
        Priority.LOW,
        "tick.vtbi",
    )
    assert action.message == (
        "Keep-vein-open has used its allowance (2500 µL after the VTBI, at most 2500 µL); "
        "stop the pump."
    )


def test_kvo_ends_when_the_clock_has_used_the_allowance_though_the_counter_lags() -> None:
    decision = kvo_tick(VTBI + 2_200, VTBI + KVO_MAX + 100)
    assert decision.codes == ("tick.vtbi.kvo_complete",)
    assert "2600 µL after the VTBI" in decision.actions[0].message


def test_kvo_beyond_allowance_and_overrun_is_a_high_stop() -> None:
    decision = kvo_tick(VTBI + KVO_MAX + 201, VTBI + KVO_MAX + 201)
    assert decision.codes == ("tick.vtbi.exceeded",)
    assert decision.actions[0].priority is Priority.HIGH


def test_kvo_rate_is_judged_against_the_commanded_kvo_rate() -> None:
    # band max(5 % × 5, 0.5) = 0.5 mL/h
    assert kvo_tick(VTBI + 10, VTBI + 10, rate=D("5.50")).outcome is Outcome.CONTINUE
    decision = kvo_tick(VTBI + 10, VTBI + 10, rate=D("5.51"))
    assert decision.codes == ("tick.rate.mismatch",)
    assert decision.outcome is Outcome.PAUSE
    assert decision.actions[0].message.startswith("The pump runs at 5.51 mL/h but 5.00 mL/h")


def test_kvo_rate_settles_like_an_infusion_rate() -> None:
    settling = kvo_tick(VTBI + 10, VTBI + 10, rate=D("7.50"), rate_commanded_at_s=NOW - 9.9)
    assert settling.outcome is Outcome.CONTINUE
    settled = kvo_tick(VTBI + 10, VTBI + 10, rate=D("7.50"), rate_commanded_at_s=NOW - 10.0)
    assert settled.codes == ("tick.rate.mismatch",)


def test_pump_in_kvo_while_the_phase_is_still_infusing_is_not_rate_judged() -> None:
    decision = decide(
        limits(kvo_max_ul=KVO_MAX),
        snapshot=snapshot(mode=PumpMode.KVO, volume_infused_ul=VTBI, rate_actual_ml_h=KVO_RATE),
        expected_volume_ul=VTBI,
    )
    assert decision.outcome is Outcome.CONTINUE, decision.codes


def test_kvo_phase_with_the_pump_idle_is_not_ended_again() -> None:
    decision = kvo_tick(
        VTBI + KVO_MAX,
        VTBI + KVO_MAX,
        snapshot=snapshot(
            mode=PumpMode.IDLE, volume_infused_ul=VTBI + KVO_MAX, rate_actual_ml_h=D(0)
        ),
    )
    assert "tick.vtbi.kvo_complete" not in decision.codes
    assert decision.codes == ("tick.pump.not_delivering",)


def test_duration_still_times_the_infusion_phase() -> None:
    decision = decide(delivery_elapsed_s=3600.1)
    assert decision.codes == ("tick.duration.exceeded",)


volumes = st.integers(0, VTBI + 3 * KVO_MAX)


@given(volumes, volumes, st.integers(0, 10_000))
def test_kvo_complete_is_the_first_of_counter_and_clock(
    delivered: int, expected: int, kvo_max: int
) -> None:
    lim = limits(kvo_max_ul=kvo_max)
    used = kvo_complete(lim, delivered, expected)
    assert used == (delivered >= VTBI + kvo_max or expected >= VTBI + kvo_max)
    # More volume by either measure never ends KVO later.
    assert not used or kvo_complete(lim, delivered + 1, expected)
    assert not used or kvo_complete(lim, delivered, expected + 1)


@given(
    volumes, st.integers(-400, 400), st.decimals(min_value=D("4.50"), max_value=D("5.50"), places=2)
)
def test_kvo_either_continues_or_is_stopped_never_paused_for_its_volume(
    delivered: int, drift: int, rate: Decimal
) -> None:
    expected = max(0, delivered + drift)
    decision = kvo_tick(delivered, expected, rate=rate)
    over_allowance = max(delivered, expected) >= VTBI + KVO_MAX
    if over_allowance and delivered >= VTBI:
        assert decision.outcome is Outcome.STOP
    if not over_allowance and delivered >= VTBI:
        assert decision.outcome is Outcome.CONTINUE, decision.codes
    # A settled KVO rate inside its band is never called a mismatch.
    assert "tick.rate.mismatch" not in decision.codes
    # KVO is never timed by the planned-duration alarm.
    assert "tick.duration.exceeded" not in decision.codes


@given(st.decimals(min_value=D("0.00"), max_value=D("200.00"), places=2))
def test_kvo_rate_outside_the_band_pauses(rate: Decimal) -> None:
    decision = kvo_tick(VTBI + 10, VTBI + 10, rate=rate)
    outside = abs(rate - KVO_RATE) > D("0.5")
    assert ("tick.rate.mismatch" in decision.codes) == outside
    if outside:
        assert decision.outcome.rank >= Outcome.PAUSE.rank


def test_the_kvo_volume_stays_allowed_in_the_observation_after_it() -> None:
    after = decide(
        limits(kvo_max_ul=KVO_MAX),
        phase=SessionPhase.OBSERVATION,
        commanded_rate_ml_h=D(0),
        snapshot=snapshot(
            mode=PumpMode.IDLE, volume_infused_ul=VTBI + KVO_MAX + 200, rate_actual_ml_h=D(0)
        ),
        previous_snapshot=snapshot(mode=PumpMode.IDLE, volume_infused_ul=VTBI + KVO_MAX + 200),
    )
    assert "tick.vtbi.exceeded" not in after.codes, after.codes
    beyond = decide(
        limits(kvo_max_ul=KVO_MAX),
        phase=SessionPhase.OBSERVATION,
        commanded_rate_ml_h=D(0),
        snapshot=snapshot(
            mode=PumpMode.IDLE, volume_infused_ul=VTBI + KVO_MAX + 201, rate_actual_ml_h=D(0)
        ),
        previous_snapshot=snapshot(mode=PumpMode.IDLE, volume_infused_ul=VTBI + KVO_MAX + 201),
    )
    assert "tick.vtbi.exceeded" in beyond.codes
    assert beyond.outcome is Outcome.STOP

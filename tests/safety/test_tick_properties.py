"""Properties of the tick over generated limits and inputs: an alarm flag never lets the
infusion continue, tightening any limit never loosens the decision, and no input, however
odd, raises anything but the documented input errors."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from decimal import Decimal as D
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError
from test_tick_nominal import VITALS_RULES, inputs, limits, reading, snapshot

from safety.pump import InvalidPumpSnapshot, PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.tick import (
    InvalidTickInput,
    Outcome,
    SessionPhase,
    SupervisionLimits,
    TickInputs,
    evaluate,
)
from safety.vitals import InvalidVitals, VitalsRules, VitalsThreshold

DOCUMENTED = (InvalidTickInput, InvalidPumpSnapshot, InvalidVitals)

seconds = st.floats(min_value=0, max_value=5000, allow_nan=False)
fraction = st.decimals(min_value=0, max_value=1, places=3)
rates = st.decimals(min_value=0, max_value=1200, places=2)


@st.composite
def limits_st(draw: st.DrawFn) -> SupervisionLimits:
    stop_after = draw(st.floats(min_value=1, max_value=3600))
    return SupervisionLimits(
        vtbi_ul=draw(st.integers(1, 300_000)),
        vtbi_overrun_ul=draw(st.integers(0, 2_000)),
        kvo_max_ul=draw(st.integers(0, 5_000)),
        comm_timeout_s=draw(st.floats(min_value=0.1, max_value=60)),
        rate_tolerance_rel=draw(fraction),
        rate_tolerance_abs_ml_h=draw(st.decimals(min_value=0, max_value=20, places=2)),
        rate_settle_s=draw(st.floats(min_value=0, max_value=60)),
        volume_tolerance_rel=draw(fraction),
        volume_tolerance_abs_ul=draw(st.integers(0, 5_000)),
        pause_remind_after_s=draw(st.floats(min_value=0, max_value=stop_after)),
        pause_remind_every_s=draw(st.floats(min_value=1, max_value=600)),
        pause_stop_after_s=stop_after,
        max_delivery_s=draw(st.none() | st.floats(min_value=1, max_value=20_000)),
        vitals=draw(st.none() | st.just(VITALS_RULES)),
    )


@st.composite
def snapshot_st(draw: st.DrawFn, alarms: st.SearchStrategy[int] | None = None) -> PumpSnapshot:
    return PumpSnapshot(
        mode=draw(st.sampled_from(PumpMode)),
        alarms=PumpAlarm(draw(alarms if alarms is not None else st.integers(0, 127))),
        warnings=PumpWarning(draw(st.integers(0, 3))),
        rate_actual_ml_h=draw(rates),
        volume_infused_ul=draw(st.integers(0, 300_000)),
        volume_primed_ul=draw(st.integers(0, 30_000)),
        uptime_s=draw(st.integers(0, 100_000)),
    )


@st.composite
def inputs_st(draw: st.DrawFn, alarms: st.SearchStrategy[int] | None = None) -> TickInputs:
    now = draw(st.floats(min_value=0, max_value=20_000))
    before_now = st.floats(min_value=0, max_value=now)
    phase = draw(st.sampled_from(SessionPhase))
    with_vitals = draw(st.booleans())
    return TickInputs(
        now_s=now,
        phase=phase,
        commanded_rate_ml_h=draw(rates),
        commanded_vtbi_ul=draw(st.integers(0, 300_000)),
        rate_commanded_at_s=draw(before_now),
        snapshot=draw(st.none() | snapshot_st(alarms))
        if alarms is None
        else draw(snapshot_st(alarms)),
        previous_snapshot=draw(st.none() | snapshot_st()),
        last_good_comm_s=draw(before_now),
        delivery_elapsed_s=draw(st.none() | seconds),
        expected_volume_ul=draw(st.integers(0, 300_000)),
        volume_at_start_ul=draw(st.integers(0, 1_000)),
        vitals=reading(
            systolic_mmhg=draw(st.integers(50, 230)),
            heart_rate_bpm=draw(st.integers(20, 180)),
            spo2_percent=draw(st.none() | st.integers(70, 100)),
        )
        if with_vitals
        else None,
        vitals_taken_s=draw(before_now) if with_vitals else None,
        paused_since_s=draw(before_now) if phase is SessionPhase.PAUSED else None,
        volume_stop_primary=draw(st.booleans()),
    )


@st.composite
def near_nominal_inputs_st(draw: st.DrawFn) -> TickInputs:
    """A nominal infusion with a few figures pushed around their thresholds, so that most
    decisions are close calls rather than a stop for a dozen reasons at once."""
    now = 4000.0
    expected = draw(st.integers(0, 120_000))
    phase = draw(st.sampled_from([SessionPhase.INFUSING, SessionPhase.PAUSED, SessionPhase.KVO]))
    mode = {
        SessionPhase.INFUSING: PumpMode.INFUSING,
        SessionPhase.PAUSED: PumpMode.PAUSED,
        SessionPhase.KVO: PumpMode.KVO,
    }[phase]
    rate = draw(st.decimals(min_value=100, max_value=200, places=2))
    delivered = max(0, expected + draw(st.integers(-6_000, 6_000)))
    return inputs(
        now_s=now,
        phase=phase,
        commanded_rate_ml_h=D("150.00"),
        commanded_vtbi_ul=draw(st.sampled_from([100_000, 100_000, 250_000])),
        rate_commanded_at_s=now - draw(st.floats(min_value=0, max_value=120)),
        snapshot=snapshot(
            mode=mode,
            rate_actual_ml_h=rate if mode is PumpMode.INFUSING else D(0),
            volume_infused_ul=delivered,
        ),
        previous_snapshot=draw(
            st.none()
            | st.builds(lambda v: snapshot(volume_infused_ul=v), st.integers(0, delivered))
        ),
        last_good_comm_s=now - draw(st.floats(min_value=0, max_value=120)),
        delivery_elapsed_s=draw(st.none() | st.floats(min_value=0, max_value=6000)),
        expected_volume_ul=expected,
        vitals=reading(
            systolic_mmhg=draw(st.integers(70, 210)),
            heart_rate_bpm=draw(st.integers(35, 150)),
            spo2_percent=draw(st.none() | st.integers(85, 100)),
        ),
        vitals_taken_s=now - draw(st.floats(min_value=0, max_value=2000)),
        paused_since_s=now - draw(st.floats(min_value=0, max_value=3600))
        if phase is SessionPhase.PAUSED
        else None,
    )


@given(st.data(), limits_st(), near_nominal_inputs_st())
def test_tightening_near_the_thresholds_never_loosens_the_decision(
    data: st.DataObject, lim: SupervisionLimits, tick: TickInputs
) -> None:
    stricter = data.draw(tightened(lim))
    loose, tight = evaluate(lim, tick), evaluate(stricter, tick)
    assert tight.outcome.rank >= loose.outcome.rank
    # Per rule, too: a rule that fired under the looser limits still fires.
    assert {a.rule for a in loose.actions if a.kind.rank >= 3} <= {
        a.rule for a in tight.actions if a.kind.rank >= 3
    }


@given(limits_st(), inputs_st(alarms=st.integers(1, 127)))
def test_an_alarm_flag_never_lets_the_infusion_continue(
    lim: SupervisionLimits, tick: TickInputs
) -> None:
    decision = evaluate(lim, tick)
    assert decision.outcome is Outcome.STOP
    assert any(a.code.startswith("tick.pump.alarm.") for a in decision.actions)


@given(limits_st(), inputs_st())
def test_decision_is_deterministic_ordered_and_continue_means_no_action(
    lim: SupervisionLimits, tick: TickInputs
) -> None:
    first, second = evaluate(lim, tick), evaluate(lim, tick)
    assert first == second
    ranks = [(a.kind.rank, a.priority.rank) for a in first.actions]
    assert ranks == sorted(ranks, reverse=True)
    assert (first.outcome is Outcome.CONTINUE) == (first.actions == ())
    if tick.snapshot is not None and tick.snapshot.in_alarm:
        assert first.outcome is Outcome.STOP


def _narrow(band: VitalsThreshold, shift: int) -> dict[str, Any]:
    data = band.model_dump()
    for key, value in data.items():
        if value is not None:
            data[key] = value + shift if key.endswith("_min") else value - shift
    return data


@st.composite
def tightened(draw: st.DrawFn, lim: SupervisionLimits) -> SupervisionLimits:
    """A copy of ``lim`` with any subset of limits made stricter (or left as they were)."""

    def scale(value: float) -> float:
        return (
            value * draw(st.floats(min_value=0.01, max_value=1)) if draw(st.booleans()) else value
        )

    def dscale(value: Decimal) -> Decimal:
        return value * draw(fraction) if draw(st.booleans()) else value

    def iscale(value: int, floor: int = 0) -> int:
        return draw(st.integers(floor, value)) if draw(st.booleans()) and value >= floor else value

    stop_after = scale(lim.pause_stop_after_s)
    max_delivery = lim.max_delivery_s
    if draw(st.booleans()):
        max_delivery = scale(max_delivery) if max_delivery is not None else draw(seconds) + 1
    vitals = lim.vitals
    if vitals is not None and draw(st.booleans()):
        shift = draw(st.integers(0, 20))
        try:
            vitals = VitalsRules(
                **{
                    **vitals.model_dump(),
                    "interval_min": iscale(vitals.interval_min, 1),
                    "overdue_grace_min": iscale(vitals.overdue_grace_min),
                    "refuse_start": _narrow(vitals.refuse_start, shift),
                    "pause": _narrow(vitals.pause, shift),
                    "stop": _narrow(vitals.stop, shift),
                }
            )
        except ValidationError:
            assume(False)
    return dataclasses.replace(
        lim,
        vtbi_ul=iscale(lim.vtbi_ul, 1),
        vtbi_overrun_ul=iscale(lim.vtbi_overrun_ul),
        kvo_max_ul=iscale(lim.kvo_max_ul),
        comm_timeout_s=scale(lim.comm_timeout_s),
        rate_tolerance_rel=dscale(lim.rate_tolerance_rel),
        rate_tolerance_abs_ml_h=dscale(lim.rate_tolerance_abs_ml_h),
        rate_settle_s=scale(lim.rate_settle_s),
        volume_tolerance_rel=dscale(lim.volume_tolerance_rel),
        volume_tolerance_abs_ul=iscale(lim.volume_tolerance_abs_ul),
        pause_remind_after_s=min(scale(lim.pause_remind_after_s), stop_after),
        pause_stop_after_s=stop_after,
        max_delivery_s=max_delivery,
        vitals=vitals,
    )


@given(st.data(), limits_st(), inputs_st())
def test_tightening_a_limit_never_loosens_the_decision(
    data: st.DataObject, lim: SupervisionLimits, tick: TickInputs
) -> None:
    stricter = data.draw(tightened(lim))
    loose, tight = evaluate(lim, tick), evaluate(stricter, tick)
    assert tight.outcome.rank >= loose.outcome.rank
    if loose.outcome is Outcome.STOP:
        assert tight.outcome is Outcome.STOP


odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.just(object()),
    st.sampled_from([PumpMode.IDLE, SessionPhase.INFUSING, PumpAlarm.DOOR_OPEN]),
)

INPUT_FIELDS = [f.name for f in dataclasses.fields(TickInputs)]
LIMIT_FIELDS = [f.name for f in dataclasses.fields(SupervisionLimits)]
SNAPSHOT_FIELDS = [f.name for f in dataclasses.fields(PumpSnapshot)]


@given(st.sampled_from(INPUT_FIELDS), odd)
def test_odd_tick_inputs_raise_only_the_documented_error(name: str, value: object) -> None:
    try:
        decision = evaluate(limits(), inputs(**{name: value}))
    except DOCUMENTED:
        return
    assert decision.outcome in set(Outcome)


@given(st.sampled_from(LIMIT_FIELDS), odd)
def test_odd_limits_raise_only_the_documented_error(name: str, value: object) -> None:
    try:
        decision = evaluate(limits(**{name: value}), inputs())
    except DOCUMENTED:
        return
    assert decision.outcome in set(Outcome)


@given(st.sampled_from(SNAPSHOT_FIELDS), odd)
def test_odd_pump_snapshots_raise_only_the_documented_error(name: str, value: object) -> None:
    try:
        decision = evaluate(limits(), inputs(snapshot=snapshot(**{name: value})))
    except DOCUMENTED:
        return
    assert decision.outcome in set(Outcome)


@given(
    st.sampled_from(
        [
            "systolic_mmhg",
            "diastolic_mmhg",
            "heart_rate_bpm",
            "spo2_percent",
            "resp_rate_per_min",
            "taken_at",
        ]
    ),
    odd,
)
def test_odd_vitals_raise_only_the_documented_error(name: str, value: object) -> None:
    try:
        decision = evaluate(limits(), inputs(vitals=reading(**{name: value})))
    except DOCUMENTED:
        return
    assert decision.outcome in set(Outcome)


INSTANTS = (
    "now_s",
    "rate_commanded_at_s",
    "last_good_comm_s",
    "vitals_taken_s",
    "paused_since_s",
    "input_pending_since_s",
)


def _on_grid(tick: TickInputs) -> TickInputs:
    """The same inputs with every instant rounded down to 1/1024 s, so that moving them all
    by a whole number of seconds is exact in binary floating point (rounding down keeps
    every instant at or before ``now_s``)."""
    return dataclasses.replace(
        tick,
        **{
            name: math.floor(value * 1024) / 1024
            for name in INSTANTS
            if (value := getattr(tick, name)) is not None
        },
    )


@given(limits_st(), inputs_st(), st.integers(-(10**9), 10**9))
def test_only_the_order_of_instants_matters_not_their_origin(
    lim: SupervisionLimits, tick: TickInputs, offset_s: int
) -> None:
    """A monotonic clock's origin is arbitrary (boot, a process start): a session restored
    after a restart holds instants from before it, negative ones. Moving every instant by
    the same amount, to either side of 0, changes no decision."""
    tick = _on_grid(tick)
    moved = dataclasses.replace(
        tick,
        **{
            name: value + offset_s
            for name in INSTANTS
            if (value := getattr(tick, name)) is not None
        },
    )
    assert evaluate(lim, moved) == evaluate(lim, tick)

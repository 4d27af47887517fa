"""The poll schedule's promises, for any timing: a poll is never due later than its period
says, never before the previous one, and a poll on a shared line settles in its slot.

`PollSchedule` and `PollSlots` are pure (the clock is passed in), so they are driven here by
a hand-moved clock; the wire-level effect is `test_poll_slots.py`.
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pumpd.controller.schedule import PollSchedule
from pumpd.drivers import PollSlots


class Hand:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_slots_divide_the_period_by_the_pumps_the_line_holds() -> None:
    slots = PollSlots(origin_s=0.0)
    taken = [slots.take() for _ in range(4)]
    assert [s.index for s in taken] == [0, 1, 2, 3]
    assert [s.at_or_before(10.0, 1.0) for s in taken] == [10.0, 9.25, 9.5, 9.75]
    slots.give_back(taken[1])
    again = slots.take()
    assert again.index == 1  # a pump that rejoins takes the freed slot
    assert slots.count == 4


@given(
    index=st.integers(0, 31),
    extra=st.integers(0, 31),
    origin=st.floats(-1e4, 1e4),
    t=st.floats(-1e5, 1e5),
    period=st.floats(1e-3, 60.0),
)
def test_a_slot_is_never_later_and_less_than_a_period_sooner(
    index: int, extra: int, origin: float, t: float, period: float
) -> None:
    slots = PollSlots(origin_s=origin)
    mine = [slots.take() for _ in range(index + 1 + extra)][index]
    at = mine.at_or_before(t, period)
    tol = 1e-6 * period + 1e-9 * abs(t)
    assert at <= t + tol
    assert at > t - period - tol


@given(
    durations=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=60),
    steps=st.lists(st.sampled_from([0.1, 0.1, 0.1, 0.03]), min_size=60, max_size=60),
    index=st.integers(0, 7),
)
def test_a_poll_is_never_due_later_than_its_step(
    durations: list[float], steps: list[float], index: int
) -> None:
    clock = Hand()
    slots = PollSlots(origin_s=3.7)
    mine = [slots.take() for _ in range(8)][index]
    schedule = PollSchedule(clock, mine)
    due = clock.t
    for took, step in zip(durations, steps, strict=False):
        clock.t = max(clock.t, due) + took  # the poll ran, from its due time
        delay = schedule.delay_s(step, 0.1)
        assert delay >= 0
        nxt = clock.t + delay
        assert nxt <= max(due + step, clock.t) + 1e-9, "a poll came later than its step"
        assert nxt >= due - 1e-9, "a poll came before the one before it"
        due = nxt


def test_a_pump_settles_in_its_slot_and_keeps_the_period() -> None:
    clock = Hand(5.0)
    slots = PollSlots(origin_s=0.0)
    mine = [slots.take() for _ in range(4)][2]
    schedule = PollSchedule(clock, mine)
    dues = []
    for _ in range(6):
        clock.t += 0.002  # the poll's own time
        clock.t += schedule.delay_s(0.1, 0.1)
        dues.append(clock.t)
    # Slot 2 of 4 at a 0.1 s period: 0.05 s past each tenth of a second.
    assert all(abs((d % 0.1) - 0.05) < 1e-9 for d in dues[1:]), dues
    gaps = [b - a for a, b in itertools.pairwise(dues[1:])]
    assert all(abs(g - 0.1) < 1e-9 for g in gaps), gaps


def test_behind_its_schedule_a_pump_polls_at_once_and_then_finds_its_slot() -> None:
    clock = Hand(5.0)
    slots = PollSlots(origin_s=0.0)
    mine = [slots.take() for _ in range(2)][1]
    schedule = PollSchedule(clock, mine)
    clock.t += 0.002
    clock.t += schedule.delay_s(0.1, 0.1)  # 5.05, its slot
    clock.t += 0.33  # a poll that took three periods
    assert schedule.delay_s(0.1, 0.1) == 0.0  # at once, no catching up
    clock.t += 0.001
    clock.t += schedule.delay_s(0.1, 0.1)
    assert abs((clock.t % 0.1) - 0.05) < 1e-9, clock.t


def test_a_sooner_read_is_taken_at_its_time() -> None:
    clock = Hand(5.0)
    slots = PollSlots(origin_s=0.0)
    mine = [slots.take() for _ in range(2)][1]
    schedule = PollSchedule(clock, mine)
    clock.t += schedule.delay_s(0.1, 0.1)
    start = clock.t
    clock.t += 0.001
    assert abs(schedule.delay_s(0.02, 0.1) - 0.019) < 1e-9  # not moved onto the slot
    clock.t = start + 0.02
    clock.t += schedule.delay_s(0.1, 0.1)
    assert abs((clock.t % 0.1) - 0.05) < 1e-9  # and back in it after

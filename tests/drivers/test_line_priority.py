"""The line's lock: a halt goes next, ahead of queued routine requests; FIFO within a class.

The properties run the real `LineLock` on a real event loop against a reference model of
the rule (the most urgent waiter first, arrival order among equals), over random
sequences of arrivals, releases and cancellations.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpd.drivers.priority import LineLock, Urgency, current_urgency, halting

H, R = Urgency.HALT, Urgency.ROUTINE


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@dataclass
class _Rig:
    """Tasks queued on one lock; each holds it until the test lets it go."""

    lock: LineLock
    granted: list[int] = field(default_factory=list)
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    go: dict[int, asyncio.Event] = field(default_factory=dict)

    def arrive(self, name: int, urgency: Urgency | None) -> None:
        self.go[name] = asyncio.Event()

        async def holder() -> None:
            await self.lock.acquire(urgency)
            self.granted.append(name)
            try:
                await self.go[name].wait()
            finally:
                self.lock.release()

        self.tasks[name] = asyncio.create_task(holder())


async def test_a_halt_overtakes_every_queued_routine_request() -> None:
    rig = _Rig(LineLock())
    rig.arrive(0, R)  # on the wire
    await _settle()
    for name in range(1, 6):
        rig.arrive(name, R)
    rig.arrive(9, H)
    await _settle()
    for name in [0, 9, 1, 2, 3, 4, 5]:
        assert rig.granted[-1] == name
        rig.go[name].set()
        await _settle()
    assert rig.granted == [0, 9, 1, 2, 3, 4, 5]
    assert not rig.lock.locked()


async def test_without_priority_the_halt_waits_its_turn() -> None:
    rig = _Rig(LineLock(prioritize=False))
    for name in [0, 1, 2, 9]:
        rig.arrive(name, H if name == 9 else R)
        await _settle()
    for name in [0, 1, 2, 9]:
        rig.go[name].set()
        await _settle()
    assert rig.granted == [0, 1, 2, 9]


async def test_the_request_on_the_wire_is_never_overtaken() -> None:
    lock = LineLock()
    await lock.acquire(R)
    rig = _Rig(lock)
    rig.arrive(1, H)
    await _settle()
    assert rig.granted == []  # the holder keeps the line until it releases
    lock.release()
    await _settle()
    assert rig.granted == [1]
    rig.go[1].set()
    await _settle()
    assert not lock.locked()


async def test_urgency_comes_from_the_halting_context_and_does_not_leak() -> None:
    assert current_urgency() is R
    rig = _Rig(LineLock())
    rig.arrive(0, R)
    await _settle()
    rig.arrive(1, None)  # routine: outside halting()
    with halting():
        assert current_urgency() is H
        rig.arrive(2, None)  # the task copies the context: a halt
    assert current_urgency() is R
    await _settle()
    for name in [0, 2, 1]:
        rig.go[name].set()
        await _settle()
    assert rig.granted == [0, 2, 1]


async def test_a_waiter_cancelled_after_being_handed_the_line_passes_it_on() -> None:
    lock = LineLock()
    await lock.acquire(R)
    rig = _Rig(lock)
    rig.arrive(1, H)
    rig.arrive(2, R)
    await _settle()
    lock.release()  # hands the line to 1 ...
    rig.tasks[1].cancel()  # ... which is cancelled before it runs
    await _settle()
    assert rig.granted == [2]
    rig.go[2].set()
    await _settle()
    assert not lock.locked()


async def test_release_of_an_unheld_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        LineLock().release()


# ------------------------------------------------------------------ properties

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.sampled_from([H, R])),
        st.tuples(st.just("release"), st.just(None)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
    ),
    max_size=40,
)


def _run(ops: list[tuple[str, object]], prioritize: bool) -> tuple[list[int], list[int]]:
    """(grant order of the real lock, grant order of the model)."""

    async def scenario() -> tuple[list[int], list[int]]:
        rig = _Rig(LineLock(prioritize=prioritize))
        urgency_of: dict[int, Urgency] = {}
        queue: list[int] = []  # the model's waiters, in arrival order
        holder: int | None = None
        expected: list[int] = []

        def model_grant() -> None:
            nonlocal holder
            if holder is None and queue:
                key = (lambda n: (urgency_of[n], n)) if prioritize else (lambda n: n)
                holder = min(queue, key=key)
                queue.remove(holder)
                expected.append(holder)

        for kind, arg in ops:
            if kind == "arrive":
                assert isinstance(arg, Urgency)
                name = len(urgency_of)
                urgency_of[name] = arg
                rig.arrive(name, arg)
                queue.append(name)
                model_grant()
            elif kind == "release" and holder is not None:
                rig.go[holder].set()
                holder = None
                await _settle()
                model_grant()
            elif kind == "cancel" and isinstance(arg, int) and arg in queue:
                rig.tasks[arg].cancel()
                queue.remove(arg)
            await _settle()
        for task in rig.tasks.values():
            task.cancel()
        await asyncio.gather(*rig.tasks.values(), return_exceptions=True)
        assert not rig.lock.locked()
        return rig.granted, expected

    return asyncio.run(scenario())


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_grant_order_is_most_urgent_first_then_arrival(ops: list[tuple[str, object]]) -> None:
    granted, expected = _run(ops, prioritize=True)
    assert granted == expected


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_without_priority_the_grant_order_is_arrival(ops: list[tuple[str, object]]) -> None:
    granted, expected = _run(ops, prioritize=False)
    assert granted == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([H, R]), min_size=1, max_size=30))
def test_no_waiter_is_overtaken_by_a_later_one_of_its_class_or_a_lower_one(
    arrivals: list[Urgency],
) -> None:
    """Fairness: among everyone queued behind one holder, a waiter is granted before every
    later arrival of the same or lower urgency, and a halt waits only for earlier halts."""

    async def scenario() -> list[int]:
        rig = _Rig(LineLock())
        rig.arrive(-1, R)
        await _settle()
        for name, urgency in enumerate(arrivals):
            rig.arrive(name, urgency)
        await _settle()
        rig.go[-1].set()
        for _ in arrivals:
            await _settle()
            rig.go[rig.granted[-1]].set()
        await _settle()
        return rig.granted[1:]

    order = asyncio.run(scenario())
    assert sorted(order) == list(range(len(arrivals)))
    position = {name: i for i, name in enumerate(order)}
    for a, ua in enumerate(arrivals):
        for b in range(a + 1, len(arrivals)):
            if arrivals[b] >= ua:  # same class or less urgent, and later
                assert position[a] < position[b]
        if ua is H:
            halts_before = sum(1 for u in arrivals[:a] if u is H)
            assert position[a] == halts_before

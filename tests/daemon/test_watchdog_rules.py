"""The watchdog's verdicts and its ping discipline, with health figures given directly."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from pumpd.daemon.watchdog import Verdict, Watchdog, judge


def test_fresh_loops_earn_a_ping() -> None:
    assert judge({"chair-1": 0.1, "chair-2": 0.4}, lag_s=0.0, stale_after_s=2.0).healthy


def test_a_stale_or_dead_loop_is_named() -> None:
    verdict = judge({"chair-1": 0.1, "chair-2": 3.5, "chair-3": math.inf}, 0.0, 2.0)
    assert not verdict.healthy
    assert verdict.stale == ("chair-2", "chair-3")
    assert verdict.reason == "poll loop stalled: chair-2 3.5 s, chair-3 dead"


def test_a_lagging_event_loop_withholds_the_ping() -> None:
    verdict = judge({"chair-1": 0.1}, lag_s=2.5, stale_after_s=2.0)
    assert verdict == Verdict(False, "event loop lagging by 2.5 s")


def test_pings_only_while_healthy_and_changes_are_reported() -> None:
    ages = {"chair-1": 0.1}
    pings: list[int] = []
    changes: list[Verdict] = []
    dog = Watchdog(
        health=lambda: ages,
        stale_after_s=1.0,
        interval_s=0.1,
        ping=lambda: pings.append(1),
        on_change=changes.append,
    )
    dog.check(0.0)
    dog.check(0.0)
    assert len(pings) == 2
    ages["chair-1"] = 5.0
    dog.check(0.0)
    dog.check(0.0)
    assert len(pings) == 2
    assert dog.withheld == 2
    ages["chair-1"] = 0.0
    dog.check(0.0)
    assert len(pings) == 3
    assert [c.healthy for c in changes] == [False, True]


def test_a_failing_ping_is_reported_and_the_loop_goes_on() -> None:
    errors: list[Exception] = []

    def ping() -> None:
        raise OSError("socket gone")

    dog = Watchdog(
        health=dict, stale_after_s=1.0, interval_s=0.1, ping=ping, on_ping_error=errors.append
    )
    dog.check(0.0)
    dog.check(0.0)
    assert len(errors) == 2
    assert dog.pings == 0


async def test_run_measures_lag_from_a_blocked_event_loop() -> None:
    seen: list[Verdict] = []
    changed = asyncio.Event()

    def on_change(verdict: Verdict) -> None:
        seen.append(verdict)
        changed.set()

    dog = Watchdog(health=dict, stale_after_s=0.2, interval_s=0.05, ping=None, on_change=on_change)
    task = asyncio.create_task(dog.run())
    await asyncio.sleep(0.01)
    # Deliberately block the whole event loop: nothing can run; the lag shows afterwards.
    time.sleep(0.5)  # noqa: ASYNC251
    async with asyncio.timeout(10):
        await changed.wait()
    task.cancel()
    assert seen[0].reason.startswith("event loop lagging by")


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Watchdog(health=dict, stale_after_s=1, interval_s=0, ping=None)

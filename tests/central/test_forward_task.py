"""The daemon's forwarding task with its forwarding process, against a real PostgreSQL that
the test makes slow or stalls (a trigger on the test's own central database): a catch-up
is paced, the event loop runs while a step is stuck at the centre, a killed process is
restarted and logged, and stopping kills a step in flight — all ending exactly-once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import structlog

from pumpd.central.forwarder import Conflict, ForwardStatus
from pumpd.central.task import ForwardTask, catch_up_pause_s

from .conftest import Centre, Site, drain

pytestmark = pytest.mark.postgres

STALL_LOCK = 4242
"""The advisory lock the centre's trigger waits for: held by the test, the centre stalls."""
CENTRE_STEP_S = 0.05
"""What the trigger adds to every batch at the centre (pg_sleep)."""


def slow_centre(centre: Centre) -> None:
    """Every INSERT into central_event waits for the stall lock, then sleeps a little."""
    centre.admin(
        "CREATE FUNCTION test_slow_centre() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_advisory_lock_shared({STALL_LOCK}); "
        f"PERFORM pg_advisory_unlock_shared({STALL_LOCK}); "
        f"PERFORM pg_sleep({CENTRE_STEP_S}); RETURN NULL; END $$"
    )
    centre.admin(
        "CREATE TRIGGER test_slow_centre BEFORE INSERT ON central_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION test_slow_centre()"
    )


@contextlib.contextmanager
def stalled(centre: Centre) -> Any:
    """The centre stalls every batch until the block ends."""
    with psycopg.connect(centre.conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (STALL_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (STALL_LOCK,))


def forwarder_stuck(centre: Centre) -> bool:
    """A forwarding backend waits for the stall lock, inside a batch."""
    return bool(
        centre.admin(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'pumpd-forward' AND wait_event = 'advisory'"
        )
    )


async def wait_until(predicate: Callable[[], bool], what: str, within_s: float = 60) -> None:
    """A bound, not a speed check."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Running:
    def __init__(self, task: ForwardTask) -> None:
        self.task = task
        self.runner = asyncio.create_task(task.run())
        self.conflicts: list[Conflict] = []

    async def stop(self) -> None:
        self.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.runner
        self.task.close()
        await self.task.wait_closed()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Site], Running]]:
    made: list[Running] = []

    def start(site: Site, **changes: Any) -> Running:
        conflicts: list[Conflict] = []

        async def on_conflict(conflict: Conflict) -> None:
            conflicts.append(conflict)

        async def on_lag(status: ForwardStatus) -> None:
            return None

        task = ForwardTask(
            replace(site.settings, **changes),
            f"sqlite:///{site.path}",
            on_conflict=on_conflict,
            on_lag=on_lag,
        )
        run = Running(task)
        run.conflicts = conflicts
        made.append(run)
        return run

    yield start
    for run in made:
        await run.stop()


async def test_a_catch_up_is_paced_by_the_duty_cycle(
    centre: Centre, make_site: Callable[..., Site], running: Callable[..., Running]
) -> None:
    slow_centre(centre)
    site = make_site("north", batch_size=25)
    site.append(100)
    run = running(site, duty_cycle=0.25)
    await wait_until(lambda: centre.events("north") == site.rows(), "the catch-up")
    await wait_until(lambda: run.task.status().state == "current", "the empty step after")

    # Four full batches, each followed by a pause of three times its step (25 % duty).
    assert len(run.task.pauses) == 4
    for step_s, pause_s in run.task.pauses:
        assert step_s >= CENTRE_STEP_S
        assert pause_s == catch_up_pause_s(step_s, 0.25) == pytest.approx(3 * step_s)
    # The centre saw the pauses: each batch's transaction began at least its
    # predecessor's pause after it (the centre's clock, a lower bound).
    starts = [
        r[0].timestamp()
        for r in centre.admin(
            "SELECT DISTINCT received_at FROM central_event WHERE site = 'north' "
            "ORDER BY received_at"
        )
    ]
    assert len(starts) == 4
    for (later, earlier), (_, pause_s) in zip(
        zip(starts[1:], starts, strict=False), run.task.pauses, strict=False
    ):
        assert later - earlier >= 0.9 * pause_s
    status = run.task.status()
    assert (status.state, status.acked_seq, status.shipped) == ("current", 100, 100)
    child = run.task.child
    assert child is not None
    assert child.pid != os.getpid()
    assert run.conflicts == []
    assert centre.conflicts() == []


async def test_the_loop_runs_while_the_centre_stalls_and_a_killed_process_is_replaced(
    centre: Centre, make_site: Callable[..., Site], running: Callable[..., Running]
) -> None:
    slow_centre(centre)
    site = make_site("north", batch_size=20)
    site.append(60)
    run = running(site, duty_cycle=1.0)
    with structlog.testing.capture_logs() as logged:
        with stalled(centre):
            await wait_until(lambda: forwarder_stuck(centre), "a step stuck at the centre")
            # The event loop is ours while the step waits at the centre: the task answers
            # at once with what it knew before the step.
            for _ in range(100):
                await asyncio.sleep(0)
                assert run.task.status().state == "starting"
            first = run.task.child
            assert first is not None
            assert first.exit_code is None
            os.kill(first.pid, signal.SIGKILL)  # a crash in the middle of a batch
            await wait_until(lambda: run.task.restarts == 1, "the crash to be noticed")
        await wait_until(lambda: centre.events("north") == site.rows(), "the catch-up")
    second = run.task.child
    assert second is not None
    assert second.pid != first.pid
    assert first.exit_code == -signal.SIGKILL
    ended = [e for e in logged if e["event"].startswith("the forwarding process ended")]
    assert len(ended) == 1
    assert ended[0]["exit_code"] == -signal.SIGKILL
    assert ended[0]["log_level"] == "error"
    assert run.conflicts == []
    assert centre.conflicts() == []


async def test_stopping_kills_a_step_stuck_at_the_centre_and_the_next_run_sends_it_once(
    centre: Centre, make_site: Callable[..., Site], running: Callable[..., Running]
) -> None:
    slow_centre(centre)
    site = make_site("north", batch_size=20)
    site.append(30)
    run = running(site, duty_cycle=1.0)
    await wait_until(lambda: centre.events("north") == site.rows(), "the first catch-up")
    site.append(30)
    with stalled(centre):
        await wait_until(lambda: forwarder_stuck(centre), "a step stuck at the centre")
        child = run.task.child
        assert child is not None
        run.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.runner
        run.task.close()  # returns at once: the step is still stuck at the centre
        assert forwarder_stuck(centre)
        assert await child.wait_closed() == -signal.SIGKILL
    held = centre.events("north")
    assert held == site.rows()[: len(held)]
    assert len(held) >= 30
    # The next run (the daemon's next start) sends what was not acknowledged, once.
    drain(site.forwarder())
    assert centre.events("north") == site.rows()
    assert centre.conflicts() == []

"""End to end: a controller supervising an infusion on the simulator while the audit
database goes away and comes back. The infusion stays supervised (a runaway injected
during the outage is still stopped), the nurses see an alarm, no new start goes through,
and every event ends up in the database, in order, once, with the chain intact."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import controller.conftest as controller_conftest
import pytest
from controller.conftest import (
    Rig,
    halt,
    protocol,
    running,
    session_state,
    to_infusing,
    wait_until,
)
from controller.test_faults import PAUSE, intents_precede_commands
from pumpsim.harness import Fault, Simulator
from sqlalchemy import event

from pumpd.audit import Actor, AsyncAuditWriter, AuditStore, migrate
from pumpd.clock import ScaledClock
from pumpd.controller import AuditUnavailable
from pumpd.db import make_engine
from pumpd.session import State
from safety.plan import Order, Patient

from .conftest import Db, note

SCALE = 600.0


@dataclasses.dataclass
class Outage:
    rig: Rig
    db: Db
    pages: list[int]

    def database_full(self) -> None:
        self.pages[0] = self.db.page_count()

    async def until_spooling(self) -> None:
        """Another pump's events keep coming until the last page is used up."""
        for i in range(500):
            if self.rig.writer.degraded:
                return
            await self.rig.writer.log(note(5, i))
        raise AssertionError("the full database took 500 more events")

    def database_back(self) -> None:
        self.pages[0] = 0


def _rig(sim: Simulator, store: AuditStore, writer: AsyncAuditWriter, path: Path) -> Rig:
    """The controller tests' rig, built their way (tests/controller/conftest.py is being
    reworked by its owner: ``make_rig`` shares a stall-free simulated time when present)."""
    make_rig = getattr(controller_conftest, "make_rig", None)
    if make_rig is not None:
        made: Rig = make_rig(sim, store, writer, path)
        return made
    return Rig(sim, store, writer, SCALE, path, ScaledClock(SCALE))  # type: ignore[call-arg]


@pytest.fixture
async def outage(tmp_path: Path) -> AsyncIterator[Outage]:
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    migrate.upgrade_url(url)
    pages = [0]
    engine = make_engine(url, pool_pre_ping=False)

    @event.listens_for(engine, "begin", insert=True)
    def _limit(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count={pages[0] or 1073741823}")

    store = AuditStore(engine, simulated=True)
    writer = AsyncAuditWriter(store, spool=tmp_path / "audit.spool")
    async with Simulator(pumps=2, tcp=True, time_scale=SCALE) as sim:
        rig = _rig(sim, store, writer, path)
        yield Outage(rig, Db(backend="sqlite", url=url, path=path), pages)
        pages[0] = 0
        for driver in rig.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


async def test_runaway_during_the_outage_is_stopped_and_everything_drains(
    outage: Outage,
) -> None:
    rig = outage.rig
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 1_000, what="some delivery")
        outage.database_full()
        await wait_until(lambda: rig.writer.degraded, what="the writer to spool")
        await wait_until(
            lambda: any(n.code == "audit.write_failed" for n in ctl.notices),
            what="the nurses' alarm",
        )
        rig.sim.inject(1, Fault.RUNAWAY, on=True, factor="1.5")
        await wait_until(
            lambda: session_state(ctl) is State.ALARM, within_s=20, what="the runaway alarm"
        )
        await wait_until(lambda: rig.sim.status(1)["state"] != "INFUSING", what="delivery to end")
        assert rig.writer.degraded, "the runaway was stopped while the database was away"
        spooled_during = rig.writer.health().spooled_total

        outage.database_back()
        await wait_until(lambda: not rig.writer.degraded, within_s=30, what="the drain")
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert spooled_during > 0
    assert not ctl.journal.backlog, "nothing failed: the spool took every event"
    events = rig.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    mine = [e.mono_ns for e in events if e.instance_id == rig.store.instance_id]
    assert mine == sorted(set(mine)), "events out of order or written twice"
    kinds = rig.types(session="S-1")
    assert "interlock.triggered" in kinds
    assert kinds.index("interlock.triggered") > kinds.index("session.started")
    intents_precede_commands(rig)
    assert outage.db.chain_intact() == len(events)


SPOOL_DELAY_S = 1.0


def slow_spool(writer: AsyncAuditWriter, delay_s: float) -> None:
    """Each of the writer's spool appends (its fsync) takes ``delay_s`` longer, as on a slow
    or busy disk. The real spool, wrapped on the instance (no public hook)."""
    spool = writer._spool
    assert spool is not None
    append = spool.append

    def slow_append(events: Any) -> Any:
        time.sleep(delay_s)  # the writer's own thread
        return append(events)

    spool.append = slow_append  # type: ignore[method-assign]


async def test_a_halt_in_the_outage_waits_for_nothing_and_its_intent_is_spooled(
    outage: Outage,
) -> None:
    """During an outage a halt is not held even for the spool's fsync (made slow here): the
    PAUSE goes out at once, its intent queued ahead of it; the spool holds the intent
    (fsync'd, in order) while the database is away, and the drained log reads intent →
    result."""
    rig = outage.rig
    wait_s = 4.0
    ctl = await rig.controller(intent_wait_s=wait_s)
    task = await running(ctl)
    try:
        # 240 min, 24 s real: the infusion outlasts the outage's set-up and the wait.
        await to_infusing(rig, ctl, name="ketamine-chronic-pain")
        outage.database_full()
        await outage.until_spooling()
        slow_spool(rig.writer, SPOOL_DELAY_S)
        asked_at = time.monotonic()
        await ctl.pause(by=Actor.person("nurse.ada", "nurse"), reason="patient asked")
        paused = [r for r in rig.sim.command_log(1) if r.command == PAUSE]
        assert paused, "the PAUSE reached the pump"
        took_s = paused[0].t_monotonic - asked_at  # at the pump (the call itself then waits)
        assert took_s < SPOOL_DELAY_S / 2, (
            f"the PAUSE reached the pump {took_s:.1f} s after it was asked for, with each "
            f"spool fsync taking {SPOOL_DELAY_S} s"
        )
        assert rig.writer.degraded, "the pause was sent while the database was away"
        spool = outage.db.path.parent / "audit.spool"
        await wait_until(
            lambda: spool.exists() and '"command":"pause"' in spool.read_text().replace('\\"', '"'),
            what="the PAUSE's intent in the spool",
        )
        outage.database_back()
        await wait_until(lambda: not rig.writer.degraded, within_s=30, what="the drain")
    finally:
        await halt(task)
    await ctl.journal.drain()
    pauses = [
        e
        for e in rig.events(session="S-1")
        if e.event_type.startswith("pump.command.") and '"command":"pause"' in e.payload
    ]
    assert [e.event_type for e in pauses][:2] == [
        "pump.command.requested",
        "pump.command.confirmed",
    ]
    assert pauses[0].correlation_id == pauses[1].correlation_id
    intents_precede_commands(rig)
    assert outage.db.chain_intact() == len(rig.events())


async def test_no_new_start_while_the_database_is_away(outage: Outage) -> None:
    """A start's intent must be in the database before the pump is commanded: while the
    writer spools, the start is refused and the pump stays still."""
    rig = outage.rig
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await ctl.program(
            by=Actor.person("nurse.ada", "nurse"),
            session_id="S-1",
            patient_ref="P-0117",
            protocol=protocol("ketamine-trd-standard"),
            patient=Patient(weight_kg=Decimal(80)),
            order=Order(),
        )
        await ctl.confirm(by=Actor.person("nurse.grace", "nurse"), weight="80 kg")
        outage.database_full()
        await outage.until_spooling()
        with pytest.raises(AuditUnavailable):
            await ctl.prime(by=Actor.person("nurse.ada", "nurse"), line_disconnected=True)
        assert rig.sim.status(1)["state"] not in ("PRIMING", "INFUSING")
        outage.database_back()
        await wait_until(lambda: not rig.writer.degraded, within_s=30, what="the drain")
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert "pump.command.failed" in rig.types(session="S-1")
    assert rig.chain_ok()


async def test_idle_pump_shows_the_alarm_while_the_writer_spools(outage: Outage) -> None:
    """No session, nothing of this pump in flight: the nurses must still see that the
    audit database is away before they try to start anything."""
    rig = outage.rig
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        outage.database_full()
        await outage.until_spooling()
        await wait_until(
            lambda: any(n.code == "audit.write_failed" for n in ctl.notices),
            within_s=5,
            what="the nurses' alarm on an idle pump",
        )
    finally:
        outage.database_back()
        await halt(task)

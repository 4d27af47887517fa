"""A programmed session survives a crash at any commit: its step and its checkpoint are one.

Recovery rebuilds a session from its newest checkpoint only. A SIGKILL that landed after a
new session's ``session.programmed`` was committed but before its first checkpoint was
(found by the soak: two writes, a race with the writer's group commit) left the restarted
daemon with no session on that pump: the nurse's double-checked programming gone, and a
session in the log that never ends. Here the writer commits every event on its own
(``max_batch=1``, the sharpest form of that race), the disk is photographed right after
the commit that makes the step durable (SQLite's backup of the committed database, taken
in the committing thread before the next commit: what a kill at that instant leaves), and
a new supervisor recovers from that photograph. No poll ever runs on the first controller,
so no later checkpoint can stand in for the step's own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pumpsim import registers as reg

from pumpd.audit import AsyncAuditWriter, AuditStore
from pumpd.controller import Controller
from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.session import Session, State
from pumpd.supervisor import Supervisor

from .conftest import CHECKER, NURSE, Rig, library, program

MOVING = {int(reg.Command.START), int(reg.Command.PRIME)}


@dataclass
class Photographer:
    """Copies the committed database the moment a commit holds ``event_type``."""

    db_path: Path
    out_dir: Path
    wanted: dict[str, Path] = field(default_factory=dict)

    def want(self, event_type: str) -> Path:
        self.wanted[event_type] = self.out_dir / f"at-{event_type}.db"
        return self.wanted[event_type]

    def __call__(self, head: Any, count: int) -> None:
        """The store's commit listener: ``head`` the new chain head, ``count`` events."""
        src = sqlite3.connect(self.db_path)
        try:
            types = {
                row[0]
                for row in src.execute(
                    "SELECT event_type FROM audit_event WHERE seq > ? AND seq <= ?",
                    (head.seq - count, head.seq),
                )
            }
            for event_type, target in self.wanted.items():
                if event_type in types and not target.exists():
                    dst = sqlite3.connect(target)
                    src.backup(dst)
                    dst.close()
        finally:
            src.close()


@pytest.fixture
def writer_max_batch() -> int:
    """The controllers' rig (conftest.py), its writer committing one event per transaction."""
    return 1


@pytest.fixture
def photos(rig: Rig, tmp_path: Path) -> Photographer:
    photographer = Photographer(rig.db_path, tmp_path)
    rig.store.add_commit_listener(photographer)
    return photographer


def _kept(s: Session) -> dict[str, Any]:
    """What the nurse gave and the session decided, without the clock's instants (a
    restore moves those onto the new process's clock)."""
    d = s.data
    return {
        "session_id": d.session_id,
        "patient_ref": d.patient_ref,
        "protocol": (d.protocol_id, d.protocol_version, d.protocol_sha256),
        "patient": d.patient,
        "order": d.order,
        "container_ul": d.container_ul,
        "programmed_by": d.programmed_by,
        "confirmed_by": d.confirmed_by,
        "plan_override": d.plan_override,
        "plan": s.plan.as_dict(),
    }


async def _recovered_from(rig: Rig, photo: Path) -> tuple[State, dict[str, Any]]:
    """A new daemon on the database as the kill left it: its supervisor recovers the pump."""
    assert photo.is_file(), "no commit held the step's event"  # noqa: ASYNC240
    logged = len(rig.sim.command_log(1))
    store = AuditStore.open(f"sqlite:///{photo}", simulated=True)
    writer = AsyncAuditWriter(store)
    assert rig.sim.tcp_address is not None
    host, port = rig.sim.tcp_address
    driver = ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=host, port=port, unit=1, timeout_s=0.2)
    )
    await driver.connect()
    sup = Supervisor(writer=writer, engine=store.engine, clock=rig.clock, library=library())
    try:
        ctl = await sup.add(driver, rig.config())
        await asyncio.sleep(0.1)  # some polls: nothing may change a programmed session
        s = ctl.session
        assert s is not None, "the restarted daemon rebuilt no session on the pump"
        state, kept = s.state, _kept(s)
    finally:
        await sup.close()
        await driver.close()
        await writer.aclose()
        store.close()
    assert not [r for r in rig.sim.command_log(1)[logged:] if r.command in MOVING]
    return state, kept


async def _programmed(rig: Rig) -> Controller:
    ctl = await rig.controller()
    await program(ctl)
    await ctl.journal.drain()
    return ctl


async def test_a_kill_right_after_the_programming_commits_leaves_the_session_recoverable(
    rig: Rig, photos: Photographer
) -> None:
    photo = photos.want("session.programmed")
    ctl = await _programmed(rig)
    s = ctl.session
    assert s is not None
    assert s.state is State.PROGRAMMED
    state, kept = await _recovered_from(rig, photo)
    assert state is State.PROGRAMMED
    assert kept == _kept(s)
    assert kept["session_id"] == "S-1"
    assert kept["confirmed_by"] is None


async def test_a_kill_right_after_the_double_check_commits_leaves_it_verified(
    rig: Rig, photos: Photographer
) -> None:
    photo = photos.want("double_check.completed")
    ctl = await _programmed(rig)
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.journal.drain()
    s = ctl.session
    assert s is not None
    assert s.state is State.VERIFIED
    state, kept = await _recovered_from(rig, photo)
    assert state is State.VERIFIED
    assert kept == _kept(s)
    assert kept["programmed_by"] == NURSE.name
    assert kept["confirmed_by"] == CHECKER.name

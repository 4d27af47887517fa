"""Daemon tests: the real Daemon (in-process or as a `pumpd` process) against the real
simulator over Modbus TCP, a real SQLite audit file, and real notify sockets.

The simulator and the daemon run at the same time scale (SCALE). Link timings in the
configuration are real seconds (docs/daemon.md), so heartbeats and communication timeouts
keep their real-time size under load; nothing here asserts on speed, waits are bounds.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import Actor, EventFilter, EventRecord, iter_events
from pumpd.config import load_config
from pumpd.controller import Controller
from pumpd.daemon.app import Daemon
from pumpd.daemon.notify import Notifier
from pumpd.db import make_engine
from pumpd.protocols import load_library
from pumpd.session import State
from safety.plan import Order, Patient
from safety.vitals import VitalsReading

SCALE = 60.0
NURSE = Actor.person("nurse.ada", "nurse")
CHECKER = Actor.person("nurse.grace", "nurse")


def write_config(
    directory: Path,
    sim: Simulator,
    *,
    pumps: int = 2,
    daemon_extra: str = "",
    heartbeat_timeout_s: int = 30,
) -> Path:
    assert sim.tcp_address is not None
    host, port = sim.tcp_address
    (directory / "spool").mkdir(exist_ok=True)
    text = f"""
[daemon]
socket = "{directory / "pumpd.sock"}"
database = "sqlite:///{directory / "audit.db"}"
audit_spool = "{directory / "spool" / "audit.spool"}"
simulation = true
time_scale = {SCALE:g}
poll_hz = 10
log_format = "json"
{daemon_extra}
"""
    for unit in range(1, pumps + 1):
        text += f"""
[[pump]]
id = "chair-{unit}"
transport = "modbus-tcp"
address = "{host}:{port}"
unit = {unit}
heartbeat_timeout_s = {heartbeat_timeout_s}
"""
    path = directory / "pumpd.toml"
    path.write_text(text)
    return path


def events(db: Path, **flt: Any) -> list[EventRecord]:
    engine = make_engine(f"sqlite:///{db}", read_only=True)
    try:
        with engine.connect() as conn:
            return list(iter_events(conn, EventFilter(**flt)))
    finally:
        engine.dispose()


async def wait_until(
    predicate: Callable[[], bool], *, within_s: float = 60.0, what: str = "condition"
) -> None:
    """Wait (real seconds, a bound not a speed check) for ``predicate``."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class FakeSystemd:
    """An abstract NOTIFY_SOCKET that keeps every datagram with its arrival time."""

    def __init__(self) -> None:
        self.name = f"@pumpd-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.sock.setblocking(False)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> list[tuple[float, dict[str, str]]]:
        while True:
            try:
                data = self.sock.recv(8192).decode()
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.split("\n"))
            self.messages.append((time.monotonic(), fields))

    def pings_since(self, since: float) -> int:
        self.drain()
        return sum(1 for at, f in self.messages if at >= since and f.get("WATCHDOG") == "1")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Rig:
    sim: Simulator
    directory: Path
    config_path: Path

    @property
    def db(self) -> Path:
        return self.directory / "audit.db"

    def events(self, **flt: Any) -> list[EventRecord]:
        return events(self.db, **flt)

    def types(self, **flt: Any) -> list[str]:
        return [e.event_type for e in self.events(**flt)]

    def daemon(self, notifier: Notifier | None = None) -> Daemon:
        return Daemon(load_config(self.config_path), notifier=notifier, out=io.StringIO())


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=True, time_scale=SCALE) as simulator:
        yield simulator


@pytest.fixture
def rig(sim: Simulator, tmp_path: Path) -> Rig:
    return Rig(sim, tmp_path, write_config(tmp_path, sim))


def vitals(ctl: Controller, clock_now: Any) -> VitalsReading:
    return VitalsReading(
        taken_at=clock_now,
        systolic_mmhg=120,
        diastolic_mmhg=80,
        heart_rate_bpm=72,
        spo2_percent=98,
        resp_rate_per_min=14,
    )


async def to_infusing(
    daemon: Daemon, pump_id: str = "chair-1", session_id: str = "S-1"
) -> Controller:
    """Program, double-check, prime (line off the patient), vitals, start: the nurse's path,
    through the controller API (the control socket is tested on its own)."""
    assert daemon.supervisor is not None
    ctl = daemon.supervisor.controllers[pump_id]
    library = load_library(daemon.config.protocols)
    await ctl.program(
        by=NURSE,
        session_id=session_id,
        patient_ref="P-0117",
        protocol=library.get("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    await wait_until(
        lambda: ctl.session is not None and ctl.session.state is State.PRIMED,
        what="priming to finish",
    )
    await ctl.vitals(by=NURSE, reading=vitals(ctl, daemon.clock.now_utc()))
    await ctl.start(by=NURSE)
    assert ctl.session is not None
    assert ctl.session.state is State.INFUSING
    return ctl

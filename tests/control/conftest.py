"""Control-socket tests: a real ControlServer on a real Unix socket, in front of a real
Supervisor whose controllers drive the real simulator over Modbus TCP, with a real
SQLite audit store (migrated, so the staff registry table exists).

Roles are configured by Unix group. The test process (usually root, in group ``root``)
is mapped to roles by putting ``root``'s primary group into the role table, so most tests
run as one caller with the roles they need; ``test_roles.py`` creates throwaway users and
groups (when root) and connects from child processes running as those users.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter, AuditStore, EventFilter, EventRecord, iter_events, migrate
from pumpd.clock import ScaledClock
from pumpd.control import ControlContext, ControlServer, PumpInfo
from pumpd.controller import ControllerConfig
from pumpd.drivers import ModbusConfig, ModbusPumpDriver, PumpUnreachable
from pumpd.protocols import load_library
from pumpd.supervisor import Supervisor
from safety.tick import DEFAULT_POLICY

SCALE = 600.0
PUMPS = ("chair-1", "chair-2")
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
"""The test process's primary group: the role table maps it to whatever a test needs."""


def roles_table(
    *roles: str, extra: Mapping[str, frozenset[str]] | None = None
) -> dict[str, frozenset[str]]:
    table = {
        r: frozenset({MY_GROUP}) if r in roles else frozenset()
        for r in ("nurse", "auditor", "admin")
    }
    for role, groups in (extra or {}).items():
        table[role] = table[role] | groups
    return table


class Client:
    """One connection speaking JSON lines."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.token: str | None = None

    @classmethod
    async def connect(cls, path: str) -> Client:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
        return cls(reader, writer)

    async def raw(self, line: bytes, *, within_s: float = 30.0) -> dict[str, Any]:
        self.writer.write(line)
        await self.writer.drain()
        answer = await asyncio.wait_for(self.reader.readline(), within_s)
        assert answer, "the server closed the connection"
        return json.loads(answer)  # type: ignore[no-any-return]

    async def call(self, method: str, /, **params: Any) -> dict[str, Any]:
        if self.token is not None and "auth" not in params:
            params["auth"] = {"token": self.token}
        rid = next(self._ids)
        reply = await self.raw(
            json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
            + b"\n"
        )
        assert reply["id"] == rid
        return reply

    async def ok(self, method: str, /, **params: Any) -> Any:
        reply = await self.call(method, **params)
        assert "error" not in reply, f"{method} failed: {reply['error']}"
        return reply["result"]

    async def err(self, method: str, /, **params: Any) -> dict[str, Any]:
        reply = await self.call(method, **params)
        assert "error" in reply, f"{method} unexpectedly succeeded: {reply['result']}"
        return reply["error"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close; a client whose unread answers filled the buffers is aborted (a graceful
        close would wait forever to flush into a server that stopped reading from it)."""
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        self.writer.transport.abort()


@dataclass
class Rig:
    sim: Simulator
    store: AuditStore
    writer: AsyncAuditWriter
    supervisor: Supervisor
    ctx: ControlContext
    server: ControlServer
    path: str
    clock: ScaledClock
    clients: list[Client] = dataclasses.field(default_factory=list)

    async def client(self) -> Client:
        c = await Client.connect(self.path)
        self.clients.append(c)
        return c

    def events(self, **flt: Any) -> list[EventRecord]:
        with self.store.engine.connect() as conn:
            return list(iter_events(conn, EventFilter(**flt)))

    async def flushed_events(self, **flt: Any) -> list[EventRecord]:
        await self.server.recorder.flush()
        return self.events(**flt)

    def use_roles(self, *roles: str) -> None:
        """Map the test process's group to ``roles`` (read at connect time)."""
        self.ctx.roles = roles_table(*roles)


def controller_config(pump_id: str) -> ControllerConfig:
    s = SCALE
    return ControllerConfig(
        pump_id=pump_id,
        poll_period_s=0.01 * s,
        heartbeat_timeout_s=max(2, round(0.6 * s)),
        command_timeout_s=0.3,
        intent_wait_s=2.0,  # real seconds; see tests/controller/conftest.py
        policy=dataclasses.replace(DEFAULT_POLICY, comm_timeout_s=0.4 * s),
    )


def socket_dir() -> Path:
    """A directory other users can traverse (tmp_path is 0700 for root)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="pumpd-ctl-", dir="/tmp"))
    d.chmod(0o711)
    return d


async def connect_with_retries(driver: ModbusPumpDriver, attempts: int = 5) -> None:
    """Connect as the daemon's bring-up does: a first read that a stall of this shared
    machine made late (0.2 s timeout) is tried again instead of failing the set-up."""
    for attempt in range(attempts):
        try:
            await driver.connect()
            return
        except PumpUnreachable:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"
    migrate.upgrade_url(url)
    store = AuditStore.open(url, simulated=True)
    writer = AsyncAuditWriter(store)
    clock = ScaledClock(SCALE)
    library = load_library()
    sdir = socket_dir()
    path = str(sdir / "pumpd.sock")
    drivers: list[ModbusPumpDriver] = []
    async with Simulator(pumps=2, tcp=True, time_scale=SCALE) as sim:
        assert sim.tcp_address is not None
        host, port = sim.tcp_address
        sup = Supervisor(writer=writer, engine=store.engine, clock=clock, library=library)
        pumps = {}
        for unit, pump_id in enumerate(PUMPS, start=1):
            driver = ModbusPumpDriver(
                ModbusConfig(transport="tcp", host=host, port=port, unit=unit, timeout_s=0.2)
            )
            await connect_with_retries(driver)
            drivers.append(driver)
            await sup.add(driver, controller_config(pump_id))
            pumps[pump_id] = PumpInfo(pump_id, "modbus-tcp", f"{host}:{port}", unit)
        ctx = ControlContext(
            controllers=lambda: sup.controllers,
            pumps=pumps,
            library=library,
            roles=roles_table("nurse"),
            writer=writer,
            engine=store.engine,
            clock=clock,
            simulated=True,
            staff_idle_timeout_s=600.0,
            staff_max_failures=3,
            staff_lockout_s=900.0,
        )
        server = ControlServer(ctx, path=path, group=None)
        await server.start()
        made = Rig(sim, store, writer, sup, ctx, server, path, clock)
        try:
            yield made
        finally:
            for c in made.clients:
                await c.close()
            await server.close()
            await sup.close()
            for driver in drivers:
                await driver.close()
    await writer.aclose()
    store.close()
    for leftover in sdir.iterdir():
        leftover.unlink()
    sdir.rmdir()


async def wait_until(
    predicate: Callable[[], bool],
    *,
    within_s: float = 30.0,
    what: str = "condition",
    seen: Callable[[], object] | None = None,
) -> None:
    """A bound (real seconds), not a speed check; says what was seen instead."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            instead = "" if seen is None else f"; seen: {seen()}"
            raise AssertionError(f"timed out waiting for {what}{instead}")
        await asyncio.sleep(0.01)


PROGRAM = {
    "pump": "chair-1",
    "patient_ref": "P-0117",
    "weight": "80kg",
    "protocol": "ketamine-trd-standard",
}
WEIGHT = Decimal(80)

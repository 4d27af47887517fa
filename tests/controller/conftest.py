"""Controller tests: the real controller, the real simulator over Modbus TCP, a real
SQLite audit store on disk, and a scaled clock whose scale equals the simulator's.

Time-scaled settings: at scale S one real second is S simulated seconds, so the poll
period, the pump's heartbeat timeout and the kernel's communication timeout are given in
simulated seconds that correspond to sane real intervals (about 10 ms, 0.6 s and 0.4 s of
real time). Nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import (
    Actor,
    AsyncAuditWriter,
    AuditStore,
    EventFilter,
    EventRecord,
    Hasher,
    iter_events,
    migrate,
    verify,
)
from pumpd.clock import Clock, ScaledClock, SystemClock
from pumpd.controller import Controller, ControllerConfig
from pumpd.drivers import (
    ModbusConfig,
    ModbusPumpDriver,
    NewEraConfig,
    NewEraPumpDriver,
    Profile,
)
from pumpd.protocols import Library, LoadedProtocol, load_library
from pumpd.session import State
from safety.plan import Order, Patient
from safety.tick import DEFAULT_POLICY
from safety.vitals import VitalsReading

from .simtime import SimulatorTime, StallFreeClock, shared_clocks

NURSE = Actor.person("nurse.ada", "nurse")
CHECKER = Actor.person("nurse.grace", "nurse")
PUMP_ID = "chair-2"
_LIBRARY: Library | None = None


def library() -> Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = load_library()
    return _LIBRARY


def protocol(name: str) -> LoadedProtocol:
    return library().get(name)


@dataclass
class Rig:
    """One simulator, one audit store, and a way to make controllers on them."""

    sim: Simulator
    store: AuditStore
    writer: AsyncAuditWriter
    scale: float
    db_path: Path
    clock: ScaledClock
    base_clock: StallFreeClock
    drivers: list[ModbusPumpDriver] = dataclasses.field(default_factory=list)

    def config(self, **overrides: Any) -> ControllerConfig:
        s = self.scale
        policy = dataclasses.replace(DEFAULT_POLICY, comm_timeout_s=0.4 * s)
        fields: dict[str, Any] = {
            "pump_id": PUMP_ID,
            "poll_period_s": 0.01 * s,
            "heartbeat_timeout_s": max(2, round(0.6 * s)),
            "command_timeout_s": 0.3,
            # Real seconds an intent may take to commit before the command is refused. The
            # daemon's default is 0.5; an fsync on this shared 2-core machine under a
            # full suite took longer (a prime refused as "not durable in time"). Tests of
            # the refusal itself hold the lock, so the bound only makes them wait longer.
            "intent_wait_s": 2.0,
            "policy": policy,
        }
        fields.update(overrides)
        return ControllerConfig(**fields)

    async def controller(
        self,
        unit: int = 1,
        transport: str = "tcp",
        timeout_s: float = 0.2,
        profile: Profile | None = None,
        **overrides: Any,
    ) -> Controller:
        """A controller of pump ``unit`` over Modbus TCP, or RTU on the simulator's pty;
        ``timeout_s`` is the driver's (real seconds); ``profile`` a map other than GIP-MB1's
        shipped one (the same registers, other declared capabilities)."""
        if transport == "rtu":
            assert self.sim.rtu_path is not None
            link = ModbusConfig(
                transport="rtu",
                device=self.sim.rtu_path,
                baudrate=115_200,
                unit=unit,
                timeout_s=timeout_s,
            )
        else:
            assert self.sim.tcp_address is not None
            host, port = self.sim.tcp_address
            link = ModbusConfig(
                transport="tcp", host=host, port=port, unit=unit, timeout_s=timeout_s
            )
        driver = ModbusPumpDriver(link, profile)
        await driver.connect()
        self.drivers.append(driver)
        ctl = Controller(
            driver=driver, writer=self.writer, clock=self.clock, config=self.config(**overrides)
        )
        await ctl.attach()
        return ctl

    def events(self, **flt: Any) -> list[EventRecord]:
        with self.store.engine.connect() as conn:
            return list(iter_events(conn, EventFilter(**flt)))

    def types(self, **flt: Any) -> list[str]:
        return [e.event_type for e in self.events(**flt)]

    def chain_ok(self) -> bool:
        return verify(self.store.engine, Hasher(None)).ok

    def vitals(self) -> VitalsReading:
        return normal_vitals(self.clock)


async def newera_driver(
    sim: Simulator, *, heartbeat_timeout_s: int, timeout_s: float = 0.3
) -> NewEraPumpDriver:
    """A connected driver of the New Era pump at address 1 of ``sim``'s line (a 60 mL
    syringe, 26.59 mm); ``heartbeat_timeout_s`` is its Safe-mode watchdog (wall seconds)."""
    assert sim.newera_path is not None
    driver = NewEraPumpDriver(
        NewEraConfig(
            device=sim.newera_path,
            address=1,
            syringe_diameter_mm=Decimal("26.59"),
            heartbeat_timeout_s=heartbeat_timeout_s,
            timeout_s=timeout_s,
        )
    )
    await driver.connect()
    return driver


def make_store(db_path: Path) -> AuditStore:
    url = f"sqlite:///{db_path}"
    migrate.upgrade_url(url)
    return AuditStore.open(url, simulated=True)


class SlowStore:
    """The real :class:`AuditStore`; each write (a group commit) waits ``delay_s`` before it
    commits, as a database behind a network or behind the other pumps' group commits does,
    and the monotonic time each event type's commit returned is noted."""

    WRITES = ("write", "write_stamped")

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self.delay_s = 0.0
        self.commits: list[tuple[str, str | None, float]] = []
        """(event type, correlation id, when its commit returned)."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in self.WRITES:
            return method

        def slow_write(batch: Sequence[Any]) -> Any:
            if self.delay_s:
                time.sleep(self.delay_s)  # the writer's own thread, as a slow commit is
            records = method(batch)
            t = time.monotonic()
            self.commits += [(r.event_type, r.correlation_id, t) for r in records]
            return records

        return slow_write


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[Rig, SlowStore]]:
    """A rig whose audit writer commits through a :class:`SlowStore` (not slow until told)."""
    db_path = tmp_path / "audit.db"
    store = make_store(db_path)
    slow_store = SlowStore(store)
    writer = AsyncAuditWriter(slow_store)  # type: ignore[arg-type]
    async with Simulator(pumps=2, tcp=True, time_scale=600.0) as sim:
        made = make_rig(sim, store, writer, db_path)
        yield made, slow_store
        for driver in made.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


NEWERA_WATCHDOG_S = 1
"""The New Era rig's Safe-mode watchdog (``SAF 1``): a second of silence stops the pump."""
NeweraRig = tuple[Simulator, Controller, SlowStore]


@pytest.fixture
async def newera_infusing(tmp_path: Path) -> AsyncIterator[NeweraRig]:
    """A New Era syringe pump (address 1) on its own line, in real time, infusing the
    standard protocol (primed by hand); its watchdog ``NEWERA_WATCHDOG_S``, the intent bound
    3 s, the audit writer's commits through a :class:`SlowStore` (not slow until told)."""
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=1, newera_link=str(tmp_path / "ne"), time_scale=1.0
    ) as sim:
        store = make_store(tmp_path / "audit.db")
        slow = SlowStore(store)
        writer = AsyncAuditWriter(slow)  # type: ignore[arg-type]
        driver = await newera_driver(sim, heartbeat_timeout_s=NEWERA_WATCHDOG_S)
        config = ControllerConfig(
            pump_id="chair-4",
            poll_period_s=0.2,
            heartbeat_timeout_s=NEWERA_WATCHDOG_S,
            command_timeout_s=0.5,
            intent_wait_s=3.0,
        )
        clock = SystemClock()
        ctl = Controller(driver=driver, writer=writer, clock=clock, config=config)
        await ctl.attach()
        task = asyncio.create_task(ctl.run())
        try:
            await to_infusing_primed_by_hand(ctl, clock)
            await ctl.journal.drain()
            yield sim, ctl, slow
        finally:
            slow.delay_s = 0.0
            await halt(task)
            await driver.close()
            await writer.aclose()
            store.close()


@pytest.fixture
def scale() -> float:
    return 600.0


@pytest.fixture
def writer_max_batch() -> int | None:
    """The rig's writer's batch bound, None for the writer's own (a module may override it:
    1 commits each event alone)."""
    return None


@pytest.fixture
async def rig(tmp_path: Path, scale: float, writer_max_batch: int | None) -> AsyncIterator[Rig]:
    db_path = tmp_path / "audit.db"
    store = make_store(db_path)
    writer = (
        AsyncAuditWriter(store)
        if writer_max_batch is None
        else AsyncAuditWriter(store, max_batch=writer_max_batch)
    )
    async with Simulator(pumps=2, tcp=True, time_scale=scale) as sim:
        made = make_rig(sim, store, writer, db_path)
        yield made
        for driver in made.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


def make_rig(sim: Simulator, store: AuditStore, writer: AsyncAuditWriter, db_path: Path) -> Rig:
    """A rig whose controllers and simulator share one stall-free simulated time."""
    base, clock = shared_clocks(sim.time_scale)
    share_time(sim, base)
    return Rig(sim, store, writer, sim.time_scale, db_path, clock, base)


def share_time(sim: Simulator, base: StallFreeClock) -> None:
    """Run the simulator on the controller's time base (tests/controller/simtime.py).

    The harness has no public way to give it a clock yet, so its bank's clock is replaced
    right after start, continuing from where it stood (the models only move forward).
    """
    bank = sim._bank  # no public hook yet; see the docstring
    bank.clock = SimulatorTime(base, sim.time_scale, bank.clock.now_s())  # type: ignore[assignment]


async def wait_until(
    predicate: Callable[[], bool],
    *,
    within_s: float = 15.0,
    what: str = "condition",
    seen: Callable[[], str] | None = None,
) -> None:
    """Wait (real seconds) for ``predicate``; fail saying what did not happen and what
    was seen instead."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            instead = "" if seen is None else f"; seen: {seen()}"
            raise AssertionError(f"timed out waiting for {what}{instead}")
        await asyncio.sleep(0.005)


async def running(ctl: Controller) -> asyncio.Task[None]:
    return asyncio.create_task(ctl.run(), name=f"controller-{ctl.config.pump_id}")


async def halt(task: asyncio.Task[None]) -> None:
    """Kill a controller the way a crash would: cancel it, no cleanup, pump left as is."""
    # pymodbus can absorb a cancellation that lands inside a request; cancel until done.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


async def program(
    ctl: Controller,
    name: str = "ketamine-trd-standard",
    order: Order | None = None,
    session_id: str = "S-1",
    loaded: LoadedProtocol | None = None,
) -> None:
    """The nurse programs an infusion for the test patient (P-0117, 80 kg)."""
    await ctl.program(
        by=NURSE,
        session_id=session_id,
        patient_ref="P-0117",
        protocol=loaded or protocol(name),
        patient=Patient(weight_kg=Decimal(80)),
        order=order or Order(),
    )


async def to_infusing(
    rig: Rig,
    ctl: Controller,
    name: str = "ketamine-trd-standard",
    order: Order | None = None,
    session_id: str = "S-1",
    loaded: LoadedProtocol | None = None,
) -> None:
    """Program, double-check, prime (line off the patient), vitals, start: the nurse's path.

    ``loaded`` is a protocol from outside the shipped library (the derived KVO one)."""
    await program(ctl, name, order, session_id, loaded)
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.prime(by=NURSE, line_disconnected=True)
    session = ctl.session
    assert session is not None
    await wait_until(lambda: session_state(ctl) is State.PRIMED, what="priming to finish")
    await ctl.vitals(by=NURSE, reading=rig.vitals())
    await ctl.start(by=NURSE)
    assert session_state(ctl) is State.INFUSING


def normal_vitals(clock: Clock) -> VitalsReading:
    """The test patient's unremarkable vital signs, taken now."""
    return VitalsReading(
        taken_at=clock.now_utc(),
        systolic_mmhg=120,
        diastolic_mmhg=80,
        heart_rate_bpm=72,
        spo2_percent=98,
        resp_rate_per_min=14,
    )


async def to_infusing_primed_by_hand(
    ctl: Controller, clock: Clock, name: str = "ketamine-trd-standard"
) -> None:
    """Program, double-check, vitals, start on a line the nurse primed by hand: the path of
    a pump that cannot prime over its bus, or of a test whose point is not the prime."""
    await program(ctl, name)
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.vitals(by=NURSE, reading=normal_vitals(clock))
    await ctl.start(by=NURSE, primed_confirmed=True)
    assert session_state(ctl) is State.INFUSING


def session_state(ctl: Controller) -> State | None:
    s = ctl.session
    return None if s is None else s.state

"""What the daemon keeps in memory as it polls and checks PINs.

- **Python heap per 1000 polls**: idle pumps polled at 10 Hz by a ``Supervisor`` (one
  ``Controller`` per pump, the real audit writer on SQLite), the bytes still allocated
  (``tracemalloc``) at the end of a window minus at its start, per 1000 polls; beside the
  same figure for a bare pymodbus loop doing the same wire work (a status read and a
  heartbeat write per pump at 10 Hz) in the same run. Nothing may be kept per poll: what
  remains is noise and bounded caches (CPython's type attribute cache holds the names it
  looked up, SQLAlchemy's pool its connections).
- **RSS per 1000 polls**: the process's resident set over the same windows.
- **PIN checks**: argon2id (``pumpd.staff``, argon2-cffi's defaults: 64 MiB a hash, at most
  ``MAX_CONCURRENT_HASHES`` at once in worker threads). The peak RSS above the level before
  the checks, beside ``MAX_CONCURRENT_HASHES`` × the hash's memory; and what is still
  resident once they are over, beside one hash's memory. The daemon's RSS read at a random
  moment of a busy clinic may hold the peak; what it keeps is the level after.

The simulator runs in a child process (``bench/simhost.py``), so its memory is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from pymodbus.client import AsyncModbusTcpClient

from bench.bench_controller import (
    HEARTBEAT_REG,
    POLL_PERIOD_S,
    STATUS_REGS,
    SimProcess,
    _paced,
    daemon_logs_to_nowhere,
)
from bench.report import Report, Row
from pumpd.audit import AsyncAuditWriter, AuditStore, migrate
from pumpd.clock import SystemClock
from pumpd.controller import ControllerConfig
from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.protocols import load_library
from pumpd.staff import StaffRegistry
from pumpd.staff.registry import MAX_CONCURRENT_HASHES
from pumpd.supervisor import Supervisor

SUITE = "memory"


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _window(polls: Callable[[], int], window_s: float) -> tuple[float, float, int]:
    """(Python heap KiB, RSS KiB) kept per 1000 polls over ``window_s``, and the polls.

    Warmed up first; ``tracemalloc`` starts half a window before the measured one, so what
    is merely in flight at any moment (a request, a future) is there at both ends and only
    what accumulates counts."""
    await asyncio.sleep(window_s / 4)
    tracemalloc.start(1)
    try:
        await asyncio.sleep(window_s / 2)
        before, rss0, n0 = tracemalloc.get_traced_memory()[0], rss_kib(), polls()
        await asyncio.sleep(window_s)
        after, rss1, n1 = tracemalloc.get_traced_memory()[0], rss_kib(), polls()
    finally:
        tracemalloc.stop()
    per = 1000 / max(1, n1 - n0)
    return (after - before) / 1024 * per, (rss1 - rss0) * per, n1 - n0


async def _bare(sim: SimProcess, pumps: int, window_s: float) -> tuple[float, float, int]:
    client = AsyncModbusTcpClient(sim.host, port=sim.port, retries=0)
    await client.connect()
    lock, count = asyncio.Lock(), [0]

    def poll_of(unit: int) -> Callable[[], Awaitable[None]]:
        async def once() -> None:
            async with lock:
                await client.read_input_registers(0, count=STATUS_REGS, device_id=unit)
            async with lock:
                await client.write_register(HEARTBEAT_REG, count[0] % 0xFFFF + 1, device_id=unit)
            count[0] += 1

        return once

    stop_at = asyncio.get_running_loop().time() + window_s * 1.75 + 1
    loops = asyncio.gather(
        *(_paced(POLL_PERIOD_S, stop_at, poll_of(u)) for u in range(1, pumps + 1))
    )
    try:
        return await _window(lambda: count[0], window_s)
    finally:
        await loops
        client.close()


async def _supervised(
    sim: SimProcess, pumps: int, window_s: float, tmp: Path
) -> tuple[float, float, int]:
    url = f"sqlite:///{tmp / 'audit.db'}"
    migrate.upgrade_url(url)
    store = AuditStore.open(url, simulated=True)
    writer = AsyncAuditWriter(store)
    sup = Supervisor(
        writer=writer, engine=store.engine, clock=SystemClock(), library=load_library()
    )
    drivers = []
    try:
        for unit in range(1, pumps + 1):
            link = ModbusConfig(
                transport="tcp", host=sim.host, port=sim.port, unit=unit, timeout_s=0.5
            )
            driver = ModbusPumpDriver(link)
            await driver.connect()
            drivers.append(driver)
            await sup.add(driver, ControllerConfig(pump_id=f"chair-{unit}", simulation=True))
        ctls = list(sup.controllers.values())
        return await _window(lambda: sum(c.polls for c in ctls), window_s)
    finally:
        await sup.close()
        for driver in drivers:
            await driver.close()
        await writer.aclose()
        store.close()


async def _pin_checks(tmp: Path, checks: int) -> tuple[float, float, int]:
    """(peak MiB above before, MiB still resident after, hash memory MiB)."""
    url = f"sqlite:///{tmp / 'staff.db'}"
    migrate.upgrade_url(url)
    store = AuditStore.open(url, simulated=True)
    registry = StaffRegistry(store.engine, SystemClock())
    memory_kib = PasswordHasher().memory_cost  # the registry's hasher: the defaults, KiB
    for n in range(MAX_CONCURRENT_HASHES):
        await registry.add(f"N-{n}", f"Nurse {n}", "nurse", f"{n}9{n}3{n}7x")
    await asyncio.sleep(0.5)
    before, peak, stop = rss_kib(), [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(checks // MAX_CONCURRENT_HASHES):
            await asyncio.gather(
                *(registry.verify(f"N-{n}", f"{n}9{n}3{n}7x") for n in range(MAX_CONCURRENT_HASHES))
            )
    finally:
        stop.set()
        watcher.join()
    await asyncio.sleep(0.5)
    after = rss_kib()
    store.close()
    return (peak[0] - before) / 1024, (after - before) / 1024, memory_kib // 1024


@dataclass(frozen=True)
class Sizes:
    pumps: int
    window_s: float
    checks: int


FULL = Sizes(pumps=16, window_s=60.0, checks=24)
QUICK = Sizes(pumps=8, window_s=15.0, checks=8)


async def measure(report: Report, sizes: Sizes) -> None:
    pumps, window_s, checks = sizes.pumps, sizes.window_s, sizes.checks
    with tempfile.TemporaryDirectory(prefix="pumpd-bench-") as tmp:
        sim = await SimProcess.start(pumps)
        try:
            bare_heap, bare_rss, bare_polls = await _bare(sim, pumps, window_s)
            heap, rss, polls = await _supervised(sim, pumps, window_s, Path(tmp))
        finally:
            await sim.close()
        peak, kept, hash_mib = await _pin_checks(Path(tmp), checks)
    for name, figure, base in (
        ("Python heap kept per 1000 polls", heap, bare_heap),
        ("RSS kept per 1000 polls", rss, bare_rss),
    ):
        report.add(
            Row(
                SUITE,
                f"{name}, {pumps} idle pumps at 10 Hz, {window_s:g} s, {polls} polls "
                f"(bare {bare_polls})",
                figure,
                "KiB",
                baseline=base,
                baseline_name="bare pymodbus loop, same wire work",
                goal="about the bare loop's: nothing kept per poll (noise, bounded caches)",
            )
        )
    limit = MAX_CONCURRENT_HASHES * hash_mib
    report.add(
        Row(
            SUITE,
            f"RSS peak above before, {checks} PIN checks {MAX_CONCURRENT_HASHES} at a time",
            peak,
            "MiB",
            baseline=limit,
            baseline_name=f"{MAX_CONCURRENT_HASHES} × argon2id memory",
            goal=f"≤ {limit} MiB plus thread stacks: transient",
        )
    )
    report.add(
        Row(
            SUITE,
            f"RSS kept after {checks} PIN checks",
            kept,
            "MiB",
            baseline=hash_mib,
            baseline_name="one argon2id hash's memory",
            goal="≪ one hash's memory: nothing of the hashes kept",
            met=kept < hash_mib / 8,
        )
    )


def run(report: Report, quick: bool) -> None:
    with daemon_logs_to_nowhere():
        try:
            asyncio.run(measure(report, QUICK if quick else FULL))
        finally:
            with contextlib.suppress(Exception):
                tracemalloc.stop()

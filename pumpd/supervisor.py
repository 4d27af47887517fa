"""All pumps of one daemon: start each controller after recovering its session, and say
how fresh each poll loop is (for the watchdog that only pets systemd while all are)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy import Engine

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import Clock, stamp
from pumpd.controller import Controller, ControllerConfig
from pumpd.drivers import PumpDriver
from pumpd.protocols import Library
from pumpd.recovery import last_checkpoint, rebuild

QUIESCE_BOUND_S = 10.0
"""How long stopping waits for commands in flight to end (a halt ends within its attempts'
confirmation timeouts, 3 × 2 s by default) before it cuts them off."""

log = structlog.get_logger("pumpd.supervisor")


class Supervisor:
    """Owns one controller task per pump."""

    def __init__(
        self, *, writer: AsyncAuditWriter, engine: Engine, clock: Clock, library: Library
    ) -> None:
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._library = library
        self._controllers: dict[str, Controller] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def controllers(self) -> dict[str, Controller]:
        return dict(self._controllers)

    async def add(self, driver: PumpDriver, config: ControllerConfig) -> Controller:
        """Arm the pump's failsafe, rebuild its session from the log, reconcile, supervise.

        The driver must be connected. Nothing is started or resumed at the pump.
        """
        ctl = Controller(driver=driver, writer=self._writer, clock=self._clock, config=config)
        await ctl.attach()
        checkpoint = await asyncio.to_thread(last_checkpoint, self._engine, config.pump_id)
        session = None
        if checkpoint is not None:
            session = rebuild(checkpoint, self._library, stamp(self._clock))
        await ctl.recover(session, None if checkpoint is None else checkpoint.accounting)
        self._controllers[config.pump_id] = ctl
        self._tasks[config.pump_id] = asyncio.create_task(
            ctl.run(), name=f"controller-{config.pump_id}"
        )
        return ctl

    def health(self) -> dict[str, float]:
        """Clock seconds since each pump's last completed poll (a dead loop grows)."""
        now = self._clock.monotonic()
        out = {}
        for pump_id, ctl in self._controllers.items():
            task = self._tasks[pump_id]
            out[pump_id] = float("inf") if task.done() else now - ctl.last_poll_s
        return out

    async def close(self) -> None:
        """Stop supervising (the pumps' own failsafes take over), between commands.

        Each poll loop is stopped while its controller's lock is held: a command in flight
        (a halt the kernel demanded, a nurse's start) ends first, with its result written,
        rather than being cut off between intent and result, the pump left not knowing it
        was asked to stop. That wait is bounded by ``QUIESCE_BOUND_S`` for all pumps
        together; a loop still in a command then is cancelled where it stands.
        """
        async with contextlib.AsyncExitStack() as held:
            try:
                async with asyncio.timeout(QUIESCE_BOUND_S):
                    for ctl in self._controllers.values():
                        await held.enter_async_context(ctl.lock)
            except TimeoutError:
                log.warning("a command was still in flight when supervision stopped")
            # A cancellation that lands inside a pymodbus request can be absorbed there,
            # so cancel until every task is done (asyncio.wait never swallows our cancel).
            pending = {task for task in self._tasks.values() if not task.done()}
            while pending:
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.5)
        for ctl in self._controllers.values():
            await ctl.journal.drain()
        self._tasks.clear()

"""The daemon: start-up in a fixed order, supervision, reload, and a safe exit.

Start-up: check or upgrade the audit schema; load and hash the configuration and the
protocol library and write both down (``config.loaded``, ``protocol_library.loaded``,
``daemon.started``; every event flagged simulated in simulation mode); connect the pumps
(one shared line per serial device, in the driver) and hand each to the supervisor, which
arms its failsafe and recovers its session from the log; open the control socket; then
READY=1 and the ready line on stdout. A pump that cannot be reached at start-up is retried
in the background: the others are supervised meanwhile.

SIGTERM/SIGINT: close the socket (no new commands), announce (``daemon.announced``), pause
every infusing session as ``pumpd``, stop supervising, write ``daemon.stopped``, drain the
writer, exit 0. SIGHUP (or ``config.reload`` on the socket): re-read roles, staff settings
and the protocol library, audited; pumps and paths need a restart.

The audit database going away (docs/audit-spool.md): the writer has a local durable spool
(``audit_spool``), so the daemon's own records are made durable there (``log``) and no
signal, announcement or reload waits for the database. Only the start-up records wait for
a commit (bounded), so a spool left by a killed daemon is in the database before recovery
reads the sessions from it. STATUS= says when the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TextIO

import structlog

from pumpd.audit import Actor
from pumpd.config import DaemonConfig
from pumpd.controller import Controller
from pumpd.daemon import logs
from pumpd.daemon.notify import Notifier
from pumpd.daemon.startup import DaemonStartup
from pumpd.daemon.wiring import (
    StartupError,
    controller_config,
    library_sha256,
    make_clock,
    make_daemon_engine,
    make_writer,
    same_file_system,
)
from pumpd.drivers import make_driver
from pumpd.session import State
from pumpd.supervisor import QUIESCE_BOUND_S

log = structlog.get_logger("pumpd.daemon")

__all__ = [
    "Daemon",
    "StartupError",
    "controller_config",
    "library_sha256",
    "make_clock",
    "make_daemon_engine",
    "make_driver",
    "make_writer",
    "run",
    "same_file_system",
]

SHUTDOWN_REASON = "daemon.shutdown"
PAUSE_BOUND_S = 30.0
"""How long SIGTERM waits for the pauses (each is bounded by the controller itself)."""
CLOSE_BOUND_S = 5.0
"""How long shutdown waits for the pumps' queued audit events before closing the writer
(during an outage they are in the spool already and drained at the next start)."""


class Daemon(DaemonStartup):
    """One pumpd process's worth of state. ``start`` then ``wait`` then ``shutdown``."""

    # -- running -------------------------------------------------------------------

    def request_stop(self, reason: str = "sigterm") -> None:
        self._stop_reason = reason
        self._stop.set()

    async def wait(self) -> str:
        """Until a stop is requested; the reason."""
        await self._stop.wait()
        return self._stop_reason

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "sigterm")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "sigint")
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _on_sighup(self) -> None:
        async def run() -> None:
            try:
                await self.reload()
            except Exception as exc:
                log.error("reload refused; the running configuration stays", error=str(exc))

        self._tasks.append(asyncio.create_task(run(), name="reload"))

    # -- stopping ------------------------------------------------------------------

    def infusing(self) -> list[Controller]:
        if self.supervisor is None:
            return []
        return [
            ctl
            for ctl in self.supervisor.controllers.values()
            if ctl.session is not None and ctl.session.state is State.INFUSING
        ]

    async def shutdown(self, reason: str = "sigterm") -> None:
        """Pause what infuses, stop supervising, write it down, drain the writer."""
        if self.notifier is not None:
            self._notify(lambda n: n.stopping(f"stopping ({reason}): pausing infusions"))
        if self.control is not None:
            with contextlib.suppress(Exception):
                await self.control.close()
            self.control = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if self.forward is not None:
            self.forward.close()  # never waits for the centre
        if self.head_sink is not None:
            self.head_sink.close()
        running = self.infusing()
        names = ", ".join(ctl.config.pump_id for ctl in running) or "none"
        if self.writer is not None:
            await self._announce(
                SHUTDOWN_REASON,
                f"pumpd is stopping ({reason}); pausing running infusions: {names}",
            )
        if running:
            await self._pause_all(running)
        closing: asyncio.Task[None] | None = None
        if self.supervisor is not None:
            # Its last step waits for the pumps' queued audit events; during an outage
            # they are in the spool already, so do not wait for the database here.
            closing = asyncio.create_task(self.supervisor.close(), name="supervisor-close")
            done, _ = await asyncio.wait({closing}, timeout=QUIESCE_BOUND_S + CLOSE_BOUND_S)
            if not done:
                log.warning(
                    "audit events still wait for the database; they are in the spool and "
                    "written at the next start",
                    spooled=None if self.writer is None else self.writer.spooled,
                )
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        self.drivers.clear()
        if self.writer is not None:
            try:
                await self._audit("daemon.stopped", {"reason_code": reason})
            except Exception as exc:
                log.error("daemon.stopped not written", error=str(exc))
            await self.writer.aclose()
        await self._stop_publishing()
        if closing is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(closing, CLOSE_BOUND_S)
        if self.engine is not None:
            self.engine.dispose()
        log.info("pumpd stopped", reason=reason)
        logs.set_session_lookup(None)
        self._unlock_instance()

    async def _pause_all(self, running: list[Controller]) -> None:
        async def pause(ctl: Controller) -> None:
            pump = ctl.config.pump_id
            try:
                await ctl.pause(by=Actor.daemon(), reason_code=SHUTDOWN_REASON)
            except Exception as exc:
                log.error("pause at shutdown failed", pump=pump, error=str(exc))
            else:
                state = ctl.session.state.value if ctl.session is not None else None
                log.warning("infusion paused for shutdown", pump=pump, session_state=state)

        try:
            async with asyncio.timeout(PAUSE_BOUND_S):
                await asyncio.gather(*(pause(ctl) for ctl in running))
        except TimeoutError:
            log.error("pauses at shutdown did not finish in time; pump failsafes take over")


async def run(config: DaemonConfig, *, notifier: Notifier | None, out: TextIO | None = None) -> int:
    """The foreground daemon: start, wait for a signal, shut down; the exit status."""
    daemon = Daemon(config, notifier=notifier, out=out)
    daemon.install_signal_handlers()
    try:
        try:
            await daemon.start()
        except BaseException:
            await daemon.shutdown("startup_failed")
            raise
        reason = await daemon.wait()
        await daemon.shutdown(reason)
    finally:
        daemon.remove_signal_handlers()
    return 0

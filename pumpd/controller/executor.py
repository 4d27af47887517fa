"""Carrying one session command out at the pump, and saying what came of it.

:class:`CommandPath` is the write-ahead around it: the intent made durable (or, for a
halt, queued first and not waited for), the command run with the pump heartbeated meanwhile, the
events queued in order. The session's step and its events are the controller's; the
path only sees events and commands.

The executor only talks to the driver; it decides nothing about the session. Its answer
is one of four outcomes, because the session needs to know which fact to report:
confirmed, refused by the pump, unknown (sent, no proof either way), or not sent.
START and PRIME are sent once and never repeated; STOP and PAUSE are repeated until
confirmed (repeating them cannot give more drug).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pumpd.audit import NewEvent
from pumpd.clock import Clock
from pumpd.drivers import (
    Command,
    CommandOutcome,
    CommandRejected,
    CommandUncertain,
    DriverError,
    ProgramMismatch,
    PumpDriver,
    PumpProgram,
    PumpState,
    PumpStatus,
    PumpUnreachable,
    command_repeating,
)
from pumpd.session import PumpCommand

from . import logline
from .config import real_seconds
from .journal import Journal


class Result(enum.Enum):
    CONFIRMED = "confirmed"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pump made of one command; ``sent_at_s`` is on the controller's clock."""

    result: Result
    status: PumpStatus | None
    sent_at_s: float
    done_at_s: float
    detail: str
    error_code: str = "none"

    @property
    def latency_ms(self) -> int:
        return max(0, int((self.done_at_s - self.sent_at_s) * 1000))


@dataclass(frozen=True, slots=True)
class Setpoints:
    """The program the pump must hold for the command (None for STOP and PAUSE)."""

    rate_ml_h: Decimal
    vtbi_ul: int
    kvo_rate_ml_h: Decimal
    prime_volume_ul: int
    prime_rate_ml_h: Decimal

    def program(self) -> PumpProgram:
        return PumpProgram(
            rate_ml_h=self.rate_ml_h,
            vtbi_ul=self.vtbi_ul,
            kvo_rate_ml_h=self.kvo_rate_ml_h,
            prime_volume_ul=self.prime_volume_ul,
            prime_rate_ml_h=self.prime_rate_ml_h,
        )


_MOVING_COMMAND = {
    PumpCommand.PRIME: Command.PRIME,
    PumpCommand.START: Command.START,
    PumpCommand.RESUME: Command.START,
}


class Executor:
    """Sends session commands through one driver."""

    def __init__(
        self, driver: PumpDriver, clock: Clock, *, timeout_s: float, stop_attempts: int
    ) -> None:
        self._driver = driver
        self._clock = clock
        self._timeout_s = timeout_s
        self._attempts = stop_attempts

    async def run(self, kind: PumpCommand, setpoints: Setpoints | None) -> Outcome:
        sent = self._clock.monotonic()
        try:
            if kind in (PumpCommand.STOP, PumpCommand.PAUSE):
                return await self._halt(kind, sent)
            if setpoints is None:
                raise AssertionError(f"unreachable: {kind} without setpoints")
            return await self._move(kind, setpoints)
        except PumpUnreachable as exc:
            return self._done(Result.NOT_SENT, None, sent, str(exc), "pump_unreachable")
        except DriverError as exc:
            return self._done(Result.NOT_SENT, None, sent, str(exc), "pump_protocol_error")

    def _done(
        self,
        result: Result,
        status: PumpStatus | None,
        sent: float,
        detail: str,
        error_code: str = "none",
    ) -> Outcome:
        return Outcome(result, status, sent, self._clock.monotonic(), detail, error_code)

    async def _halt(self, kind: PumpCommand, sent: float) -> Outcome:
        command = Command.STOP if kind is PumpCommand.STOP else Command.PAUSE
        try:
            outcome: CommandOutcome = await command_repeating(
                self._driver, command, attempts=self._attempts, timeout_s=self._timeout_s
            )
        except CommandRejected as exc:
            # A repeated PAUSE that finds the pump already paused is the pause we wanted.
            if command is Command.PAUSE and exc.status.state is PumpState.PAUSED:
                return self._done(Result.CONFIRMED, exc.status, sent, str(exc))
            return self._done(Result.REFUSED, exc.status, sent, str(exc), "pump_refused")
        except (CommandUncertain, PumpUnreachable) as exc:
            # Some attempt may have reached the pump: only a status read can settle it.
            return self._done(Result.UNKNOWN, None, sent, str(exc), "no_confirmation")
        return self._done(Result.CONFIRMED, outcome.status, sent, f"attempts={outcome.attempts}")

    async def _move(self, kind: PumpCommand, setpoints: Setpoints) -> Outcome:
        # The program goes first and is read back; a pump holding other setpoints is never
        # started.
        try:
            await self._driver.write_program(setpoints.program())
        except ProgramMismatch as exc:
            sent = self._clock.monotonic()
            return self._done(Result.NOT_SENT, None, sent, str(exc), "program_mismatch")
        sent = self._clock.monotonic()
        if kind is PumpCommand.SET_RATE:
            # A new rate written while infusing acts at once; the read-back was the proof,
            # and the status shows the rate the mechanism now runs at.
            try:
                status = await self._driver.read_status()
            except DriverError as exc:
                return self._done(Result.UNKNOWN, None, sent, str(exc), "no_confirmation")
            return self._done(Result.CONFIRMED, status, sent, "program read back")
        try:
            outcome = await self._driver.command(_MOVING_COMMAND[kind], timeout_s=self._timeout_s)
        except CommandRejected as exc:
            return self._done(Result.REFUSED, exc.status, sent, str(exc), "pump_refused")
        except CommandUncertain as exc:
            return self._done(Result.UNKNOWN, None, sent, str(exc), "no_confirmation")
        return self._done(Result.CONFIRMED, outcome.status, sent, "confirmed")


@dataclass(frozen=True, slots=True)
class HaltIntent:
    """A halt's intent as queued: its writes, when (the loop's clock), and whether the
    store was already known not to answer then."""

    writes: Sequence[asyncio.Future[Any]]
    queued_at_s: float
    known_away: bool


class CommandPath:
    """Write-ahead for one pump: intent → command → confirmation, the events in order.

    Every event is queued to the shared group-committing writer in order and the loop
    does not wait for it, except an intent that moves fluid: it waits until durable (and
    the command is not sent without it). A halt's intent is queued first and the halt
    sent at once; whether it became durable is checked after the send.
    """

    def __init__(
        self,
        executor: Executor,
        journal: Journal,
        driver: PumpDriver,
        clock: Clock,
        *,
        intent_wait_s: float,
        poll_period_s: float,
        on_audit_failed: Callable[[], None],
    ) -> None:
        self._executor = executor
        self._journal = journal
        self._driver = driver
        self._clock = clock
        self._intent_wait_s = intent_wait_s
        self._poll_period_s = poll_period_s
        self._audit_failed = on_audit_failed

    def log(self, events: Sequence[NewEvent], *, together: bool = False) -> None:
        """Queue events in order (``together``: in one transaction, Journal.submit); the
        poll loop never waits for the store (nor for the log lines, written once the
        events are queued)."""
        self._journal.submit(events, together=together)
        logline.events(events)

    async def durable(
        self, events: Sequence[NewEvent], *, spool_will_do: bool = False, together: bool = False
    ) -> bool:
        """Queue events and wait at most ``intent_wait_s`` for them to be committed (with
        ``spool_will_do``: durable, in the spool too; ``together``: see Journal.submit).

        The pump is heartbeated meanwhile: the caller holds the controller's lock, so the
        poll loop, which heartbeats outside commands, waits too, and a commit slower than
        the pump's failsafe must not stop a running pump (H103)."""
        async with self.keepalive():
            durable = await self._journal.durable(
                events, self._intent_wait_s, spool_will_do=spool_will_do, together=together
            )
        logline.events(events)
        return durable

    def halt_intent(self, events: Sequence[NewEvent]) -> HaltIntent:
        """A STOP's or PAUSE's intent, queued first and not waited for: the halt goes to
        the pump at once, never behind a commit (a start waits for the database).

        Queued ahead of the command's result, the intent is still written before it, in
        the same order in the database or, during an outage, in the spool. What a crash
        between the send and the commit leaves is docs/controller.md, "A halt is not
        held for its intent". :meth:`halt_written` says afterwards whether it became
        durable."""
        known_away = self._journal.stalled(self._intent_wait_s) and not self._journal.spooling
        queued = HaltIntent(
            self._journal.submit(events, spool_will_do=True),
            asyncio.get_running_loop().time(),
            known_away,
        )
        logline.events(events)
        return queued

    async def halt_written(self, intent: HaltIntent) -> None:
        """After the halt was sent: the nurses' audit alarm when its intent is not durable
        (in the database, or in a working spool) within ``intent_wait_s`` of being queued,
        or when the store was already known not to answer. Waits at most what is left of
        that bound; the command's round trip has usually used it up."""
        if intent.known_away:
            self._audit_failed()
            return
        left_s = intent.queued_at_s + self._intent_wait_s - asyncio.get_running_loop().time()
        if all(w.done() for w in intent.writes) or left_s <= 0:
            settled = await self._journal.settled(intent.writes, 0.0)
        else:
            async with self.keepalive():  # as in :meth:`durable`: the lock is held
                settled = await self._journal.settled(intent.writes, left_s)
        if not settled:
            self._audit_failed()

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def driver(self) -> PumpDriver:
        """The pump's driver (the poll wait listens for the alarms it pushes)."""
        return self._driver

    async def read_status(self) -> PumpStatus:
        return await self._driver.read_status()

    async def heartbeat(self) -> None:
        await self._driver.heartbeat()

    async def arm_failsafe(self, timeout_s: int) -> None:
        """Write the pump's own heartbeat timeout: it stops itself if pumpd goes quiet."""
        await self._driver.set_heartbeat_timeout(timeout_s)

    async def send(
        self,
        kind: PumpCommand,
        setpoints: Setpoints | None,
        *,
        pump_id: str,
        session_id: str | None,
        correlation_id: str,
    ) -> Outcome:
        """The command at the pump (its intent written before), heartbeats meanwhile."""
        logline.command_sent(pump_id, session_id, kind.value, correlation_id)
        async with self.keepalive():
            return await self._executor.run(kind, setpoints)

    @contextlib.asynccontextmanager
    async def keepalive(self) -> AsyncIterator[None]:
        """Heartbeat the pump while a command (with its confirmations and repeats) runs.

        The poll loop is busy with our own command, not dead: the pump's failsafe must not
        trip for that. Outside commands only the poll loop heartbeats, so a hung loop still
        lets the failsafe stop the pump.
        """
        period = real_seconds(self._clock, self._poll_period_s)
        done = asyncio.Event()

        async def beat() -> None:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), period)
                    return
                with contextlib.suppress(DriverError):
                    await self._driver.heartbeat()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            # Stopped between heartbeats, never in one: a request cancelled in flight keeps
            # the line until its reply comes or it times out, so every pump on the line
            # waits for it (drivers/line.py). The wait is bounded by the driver's own timeout.
            done.set()
            try:
                # asyncio.wait, not ``await task``: a cancellation of the controller itself
                # must go through, and then the keep-alive is cancelled with it.
                await asyncio.wait({task})
            finally:
                task.cancel()

"""Carrying one session command out at the pump, and saying what came of it.

The executor only talks to the driver; it decides nothing about the session. Its answer
is one of four outcomes, because the session needs to know which fact to report:
confirmed, refused by the pump, unknown (sent, no proof either way), or not sent.
START and PRIME are sent once and never repeated; STOP and PAUSE are repeated until
confirmed (repeating them cannot give more drug).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from pumpd.clock import Clock
from pumpd.drivers.base import (
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

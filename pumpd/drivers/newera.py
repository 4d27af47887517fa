"""`PumpDriver` for a New Era NE-1000 family syringe pump (NE-1000, NE-1010, NE-500, NE-4000).

What the protocol gives, the driver passes on; what it does not give is absent, not
invented: no pressure, no battery, no heartbeat echo, no serial number (None in
`PumpStatus`). Where the contract has a field the controller needs and the pump has no
register for it, the driver derives it from what the pump does say, and docs/driver.md
names each such value:

- a command is confirmed by reading the pump's state back (no sequence echo); `cmd_seq`
  and `last_cmd_seq` are the driver's own count, and `last_cmd_seq` reads 0 (unknown);
- the pump keeps no uptime (`uptime_s` is None): a power loss shows to the kernel as the
  ``A?R`` reset alarm the pump sends to the next request, counted in `resets_seen`; a
  restart of pumpd (a new connect) is no restart of the pump;
- an alarm is shown by the pump once (the next reply acknowledges it), so the driver
  latches it until ACK_ALARM, and Safe-mode alarm packets pushed by the pump latch it at
  once and are made a status (`alarm_pushed` wakes whoever waits on it,
  `take_pushed_alarm` hands it over), so a STOP can follow with no read first.

Setpoints that the pump cannot hold exactly (more than 4 digits) are refused before
anything is sent, and everything written is read back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandOutcome,
    CommandRejected,
    CommandResult,
    CommandUncertain,
    InvalidProgram,
    ProgramMismatch,
    ProtocolError,
    PumpProgram,
    PumpState,
    PumpStatus,
    PumpUnreachable,
)
from pumpd.drivers.newera_codec import (
    CodecError,
    ErrorCode,
    NotRepresentable,
    Prompt,
    decode_rate,
    decode_volume,
    encode_rate,
    encode_volume,
)
from pumpd.drivers.newera_config import MAX_SAFE_TIMEOUT_S, NewEraConfig
from pumpd.drivers.newera_connection import NewEraConnection
from pumpd.drivers.newera_line import NotSent
from pumpd.drivers.newera_mapping import RESULT_OF, PumpRefused
from pumpd.drivers.priority import halting_if

__all__ = ["NewEraConfig", "NewEraPumpDriver", "PumpRefused"]

_SAME_RUN = frozenset({Prompt.INFUSING, Prompt.PAUSED, Prompt.PAUSE_PHASE, Prompt.USER_WAIT})
"""Prompts of a pump in the middle of a run: a RUN continues it (its volume counts on)."""

_STP_MOVES_ON = {
    Command.STOP: frozenset({PumpState.INFUSING, PumpState.PRIMING, PumpState.PAUSED}),
    Command.PAUSE: frozenset({PumpState.INFUSING, PumpState.PRIMING}),
}
"""States a read can show while a STOP or PAUSE is being confirmed from which one more
``STP`` takes the pump on towards the state wanted (a running pump pauses, a paused one
stops): an ``STP`` went unheard, or was not the last one needed."""

HEARTBEAT_COVER_S = 0.25
"""A reply younger than this already restarted the pump's watchdog (its minimum is 1 s)."""


class NewEraPumpDriver(NewEraConnection):
    """One pump at one address on a (possibly shared) RS-232 line."""

    # ------------------------------------------------------------- program

    def _run_base_ul(self, prompt: Prompt | None) -> Decimal:
        """What was infused before the run the program's volume is for: a run that goes
        on (running or paused) started from the carried volume; a stopped pump's next run
        starts from everything infused so far (START clears the counter first)."""
        if prompt in _SAME_RUN:
            return self._primes.carried_ul
        return self._primes.infused_ul

    def _encode_program(
        self, program: PumpProgram, base_ul: Decimal = Decimal(0)
    ) -> tuple[tuple[str, str], tuple[str, str]]:
        if program.kvo_rate_ml_h != 0:
            raise InvalidProgram(
                "kvo_rate_ml_h", program.kvo_rate_ml_h, "must be 0: the pump has no KVO rate"
            )
        if program.rate_ml_h <= 0:
            raise InvalidProgram("rate_ml_h", program.rate_ml_h, "must be positive")
        try:
            rate = encode_rate(program.rate_ml_h)
        except NotRepresentable as exc:
            raise InvalidProgram("rate_ml_h", program.rate_ml_h, str(exc)) from None
        run_ul = program.vtbi_ul - base_ul
        if run_ul <= 0:
            raise InvalidProgram(
                "vtbi_ul", program.vtbi_ul, f"is not above the {base_ul} µL already infused"
            )
        try:
            volume = encode_volume(int(run_ul))
        except NotRepresentable as exc:
            raise InvalidProgram("vtbi_ul", program.vtbi_ul, str(exc)) from None
        self._encode_prime(program)
        return (rate[0], rate[1].value), (volume[0], volume[1].value)

    @staticmethod
    def _encode_prime(program: PumpProgram) -> tuple[tuple[str, str], tuple[str, str]] | None:
        """The prime as a run of its own (rate, volume), or None when there is no prime."""
        if program.prime_volume_ul == 0:
            return None
        if program.prime_rate_ml_h <= 0:
            raise InvalidProgram("prime_rate_ml_h", program.prime_rate_ml_h, "must be positive")
        try:
            rate = encode_rate(program.prime_rate_ml_h)
        except NotRepresentable as exc:
            raise InvalidProgram("prime_rate_ml_h", program.prime_rate_ml_h, str(exc)) from None
        try:
            volume = encode_volume(program.prime_volume_ul)
        except NotRepresentable as exc:
            raise InvalidProgram("prime_volume_ul", program.prime_volume_ul, str(exc)) from None
        return (rate[0], rate[1].value), (volume[0], volume[1].value)

    async def _write_run(self, rate: tuple[str, str], volume: tuple[str, str]) -> None:
        """RAT and VOL for the next RUN, as set; read-back is the caller's."""
        try:
            await self._ask("DIR", "INF")
            await self._ask("RAT", f"{rate[0]}{rate[1]}")
            await self._ask("VOL", volume[1])
            await self._ask("VOL", volume[0])
        except PumpRefused as exc:
            if exc.code is ErrorCode.OUT_OF_RANGE:
                raise InvalidProgram("program", rate, f"out of the pump's range ({exc})") from None
            raise

    async def _read_run(self) -> tuple[str, Decimal, Decimal]:
        """The direction, rate (mL/h) and volume (µL) the pump holds."""
        direction = (await self._ask("DIR")).data
        try:
            rate_held = decode_rate((await self._ask("RAT")).data)
            volume_held = decode_volume((await self._ask("VOL")).data)
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: {exc}") from None
        return direction, rate_held, volume_held

    async def write_program(self, program: PumpProgram) -> PumpProgram:
        """``DIR INF``, ``RAT``, ``VOL`` (units, then value), each read back.

        The pump has one rate and one volume: the prime setpoints are checked here (so a
        value the pump cannot hold is refused now) and written by PRIME. While the pump
        runs only the rate can change (``RAT C``, as the manual says), not the VTBI.
        """
        base_ul = self._run_base_ul(self._last_prompt)
        rate, volume = self._encode_program(program, base_ul)
        prompt = (await self._ask("")).prompt
        if (prompt in _SAME_RUN) != (self._last_prompt in _SAME_RUN):
            await self.read_status()  # the pump moved on since the last reading
            base_ul = self._run_base_ul(prompt)
            rate, volume = self._encode_program(program, base_ul)
        run_ul = program.vtbi_ul - base_ul
        running = prompt is Prompt.INFUSING
        if running:
            _, _, volume_held = await self._read_run()
            if volume_held != run_ul:
                raise InvalidProgram(
                    "vtbi_ul", program.vtbi_ul, "cannot change while the pump runs"
                )
            await self._ask("RAT", f"C{rate[0]}{rate[1]}")
        else:
            await self._write_run(rate, volume)
        direction, rate_held, volume_held = await self._read_run()
        if direction != "INF":
            raise ProgramMismatch("direction", "INF", direction)
        if rate_held != program.rate_ml_h:
            raise ProgramMismatch("rate_ml_h", program.rate_ml_h, rate_held)
        if volume_held != run_ul:
            raise ProgramMismatch("vtbi_ul", run_ul, volume_held)
        self._program = program
        return program

    # ------------------------------------------------------------- commands

    async def command(self, command: Command, *, timeout_s: float | None = None) -> CommandOutcome:
        """Send a command and confirm it by reading the state back.

        START (``RUN``) is sent once: a lost reply is followed by reads, never by a second
        RUN. STOP sends ``STP`` at once, with no state read before it, until the pump
        reports stopped (a running pump pauses on the first). A STOP or PAUSE whose read
        shows the pump short of where it leads (an STP unheard, or its reply lost) sends
        its STPs again at once, within the attempt's timeout. PRIME runs the prime's rate
        and volume (never ``PUR``, which has no volume of its own). Every request of a STOP
        or PAUSE goes ahead of the other pumps' queued requests on the line.
        """
        with halting_if(command in (Command.STOP, Command.PAUSE)):
            return await self._command(command, timeout_s)

    async def _command(self, command: Command, timeout_s: float | None) -> CommandOutcome:
        if self._line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        limit_s = self.config.confirm_timeout_s if timeout_s is None else timeout_s
        if limit_s <= 0:
            raise ValueError(f"timeout_s={limit_s} must be positive")
        self._cmd_count += 1
        seq = self._cmd_count
        sent_at = time.monotonic()
        expect: frozenset[PumpState]
        if command is Command.STOP:
            # Whatever the pump is doing, STP is the way to stopped: no read goes first.
            sends, expect = ["STP", "STP"], frozenset({PumpState.IDLE, PumpState.ALARM})
            return await self._send_and_confirm(command, seq, sent_at, limit_s, sends, expect)
        before = await self.read_status()
        if command is Command.PRIME:
            return await self._prime(seq, sent_at, before, limit_s)
        if command is Command.ACK_ALARM:
            self._latched = AlarmFlag.NONE
            self._latched_codes.clear()
            status = await self.read_status()
            return self._outcome(command, seq, sent_at, status)
        if command is Command.START:
            if before.alarms:
                raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, before)
            if before.state not in (PumpState.IDLE, PumpState.PAUSED):
                raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, before)
            if before.state is PumpState.IDLE and self._primes.last_counter_ul > 0:
                # Every run from a stopped pump starts from a cleared counter: the pump's
                # VOL (written for this run) then counts from 0, a prime in the counter is
                # gone (a restarted driver, which knows nothing of it, reads the same), and
                # the ledger carries what the counter held, so the volume never falls.
                await self._ask("CLD", "INF")
                self._primes.counter_cleared()
            # RUN on a prime paused halfway resumes the prime, which reads as PRIMING.
            running = PumpState.PRIMING if self._primes.priming else PumpState.INFUSING
            sends, expect = ["RUN"], frozenset({running})
        elif command is Command.PAUSE:
            if before.state not in (PumpState.INFUSING, PumpState.PRIMING):
                raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, before)
            sends, expect = ["STP"], frozenset({PumpState.PAUSED})
        elif command is Command.CLEAR_VOLUMES:
            if before.state not in (PumpState.IDLE, PumpState.ALARM):
                raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, before)
            sends, expect = ["CLD INF", "CLD WDR"], frozenset(PumpState)
        else:  # pragma: no cover - every Command is handled above
            raise CommandRejected(command, seq, CommandResult.UNKNOWN_COMMAND, before)
        return await self._send_and_confirm(command, seq, sent_at, limit_s, sends, expect)

    async def _send_and_confirm(
        self,
        command: Command,
        seq: int,
        sent_at: float,
        limit_s: float,
        sends: list[str],
        expect: frozenset[PumpState],
    ) -> CommandOutcome:
        reason = await self._send_each(command, seq, sends)
        deadline = sent_at + limit_s
        while True:
            try:
                status = await self.read_status()
            except PumpUnreachable as exc:
                reason = f"{reason}; no status ({exc})"
            except ProtocolError as exc:
                raise CommandUncertain(command, seq, f"status unreadable: {exc}") from exc
            else:
                if command is Command.CLEAR_VOLUMES:
                    if status.volume_infused_ul == 0:
                        self._primes.forget()
                        status = dataclasses.replace(status, volume_primed_ul=0)
                        return self._outcome(command, seq, sent_at, status)
                    reason = f"pump still reports {status.volume_infused_ul} µL infused"
                elif status.state in expect:
                    if command is Command.STOP and self._latched:
                        status = await self._end_latch_on_stop(status)
                    return self._outcome(command, seq, sent_at, status)
                elif status.state is PumpState.ALARM:
                    raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, status)
                elif status.state in _STP_MOVES_ON.get(command, ()):
                    # An STP went unheard, or its reply was lost after the pump acted on it
                    # and the STP after it was never sent: the read shows the pump short of
                    # where the command leads, so its STPs go again now (a STOP's end at
                    # the first that finds it stopped), not after this attempt's whole
                    # timeout of reads while the pump may still run.
                    again = await self._send_each(command, seq, sends)
                    reason = f"pump reported {status.state}; STP sent again: {again}"
                else:
                    reason = f"pump reports {status.state}"
            if time.monotonic() >= deadline:
                raise CommandUncertain(command, seq, f"after {limit_s} s: {reason}")
            await asyncio.sleep(self.config.confirm_poll_s)

    async def _send_each(self, command: Command, seq: int, sends: list[str]) -> str:
        """Send a command's requests in order; returns what its confirmation starts from:
        ``not confirmed``, or the request that went unanswered (none is sent after it).
        An STP answered with an alarm goes again (at most twice); the sends end early at a
        STOP's STP that finds the pump stopped; any other refusal is the command's."""
        reason = "not confirmed"
        queue, alarm_answers = list(sends), 0
        while queue:
            text = queue.pop(0)
            name, _, argument = text.partition(" ")
            try:
                reply = await self._send(name, argument)
            except NotSent:
                raise
            except PumpUnreachable as exc:
                reason = f"{text} unanswered ({exc})"
                break
            if reply.alarm is not None and command is Command.STOP and alarm_answers < 2:
                # The pump answered with its alarm instead (shown once, that answer is its
                # acknowledgement) and did not execute the STP: it goes again at once. This
                # is the first request after a pushed alarm, when the controller halts on
                # the packet itself without reading first (PushesAlarms).
                alarm_answers += 1
                queue.insert(0, text)
                continue
            if reply.alarm is not None:
                status = await self.read_status()
                raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, status)
            if reply.error is ErrorCode.BAD_PACKET:
                raise PumpUnreachable(f"{self._label}: {text}: the pump got a damaged packet")
            if reply.error is not None:
                if command is Command.STOP and reply.prompt is Prompt.STOPPED:
                    # ``?NA`` from a stopped pump, as after its own stall alarm: there is
                    # nothing to stop, and the reads below confirm it.
                    break
                status = await self.read_status()
                if command is Command.STOP and status.rate_actual_ml_h == 0:
                    break  # STP on a stopped pump (alarm latched or not): where STOP leads
                raise CommandRejected(command, seq, RESULT_OF[reply.error], status)
            if command is Command.STOP and reply.prompt is Prompt.STOPPED:
                break
        return reason

    async def _end_latch_on_stop(self, stopped: PumpStatus) -> PumpStatus:
        """A confirmed STOP ends a latched alarm once the pump itself shows it stopped.

        The pump keeps no alarm of its own after it has reported one (its ``A?x`` reply is
        the acknowledgement); the latch exists so that pumpd sees it. The STOP pumpd sends
        in answer to it is that seeing, acted on: the pump, stopped, has nothing left to
        show, and the session keeps the alarm for a person to acknowledge. Without this,
        no step of pumpd's could ever clear the latch (pumpd never sends ACK_ALARM).
        """
        if stopped.rate_actual_ml_h != 0 or (await self._ask("")).prompt is not Prompt.STOPPED:
            return stopped
        self._latched = AlarmFlag.NONE
        self._latched_codes.clear()
        return await self.read_status()

    async def _prime(
        self, seq: int, sent_at: float, before: PumpStatus, limit_s: float
    ) -> CommandOutcome:
        """A prime is a run of its own: RAT and VOL of the prime, read back, then RUN; the
        pump stops itself at the prime's volume. The next START writes the program again
        (the controller writes it before every moving command)."""
        command = Command.PRIME
        program = self._program
        prime = None if program is None else self._encode_prime(program)
        if prime is None or program is None:
            raise CommandRejected(command, seq, CommandResult.REJECTED_PARAMS, before)
        if before.alarms:
            raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, before)
        if before.state is not PumpState.IDLE:
            raise CommandRejected(command, seq, CommandResult.REJECTED_STATE, before)
        await self._write_run(*prime)
        direction, rate_held, volume_held = await self._read_run()
        if (
            direction != "INF"
            or rate_held != program.prime_rate_ml_h
            or volume_held != program.prime_volume_ul
        ):
            raise ProgramMismatch(
                "prime",
                (program.prime_rate_ml_h, program.prime_volume_ul),
                (direction, rate_held, volume_held),
            )
        self._primes.start()
        try:
            reply = await self._send("RUN")
        except NotSent:
            self._primes.abandon()
            raise
        except PumpUnreachable as exc:
            return await self._confirm(command, seq, sent_at, limit_s, f"RUN unanswered ({exc})")
        if reply.alarm is not None or reply.error is not None:
            self._primes.abandon()
            status = await self.read_status()
            result = (
                CommandResult.REJECTED_ALARM
                if reply.alarm is not None
                else RESULT_OF.get(
                    reply.error or ErrorCode.NOT_APPLICABLE, CommandResult.REJECTED_STATE
                )
            )
            raise CommandRejected(command, seq, result, status)
        return await self._confirm(command, seq, sent_at, limit_s, "not confirmed")

    async def _confirm(
        self, command: Command, seq: int, sent_at: float, limit_s: float, reason: str
    ) -> CommandOutcome:
        """Read until the pump shows PRIMING (or has already finished the prime)."""
        deadline = sent_at + limit_s
        while True:
            try:
                status = await self.read_status()
            except PumpUnreachable as exc:
                reason = f"{reason}; no status ({exc})"
            else:
                if status.state is PumpState.PRIMING or (
                    status.state is PumpState.IDLE and status.volume_primed_ul > 0
                ):
                    return self._outcome(command, seq, sent_at, status)
                if status.state is PumpState.ALARM:
                    raise CommandRejected(command, seq, CommandResult.REJECTED_ALARM, status)
                reason = f"pump reports {status.state}"
            if time.monotonic() >= deadline:
                raise CommandUncertain(command, seq, f"after {limit_s} s: {reason}")
            await asyncio.sleep(self.config.confirm_poll_s)

    @staticmethod
    def _outcome(command: Command, seq: int, sent_at: float, status: PumpStatus) -> CommandOutcome:
        return CommandOutcome(
            command=command,
            cmd_seq=seq,
            result=CommandResult.OK,
            sent_at_monotonic=sent_at,
            confirmed_at_monotonic=status.read_at_monotonic,
            status=status,
        )

    async def purge(self) -> PumpStatus:
        """``PUR``: run at the pump's maximum rate until STOP. Not part of the driver
        contract (no volume bound on the pump); for service use with no patient attached."""
        reply = await self._send("PUR")
        if reply.error is not None:
            raise PumpRefused(f"{self._label}: PUR refused: ?{reply.error.value}", reply.error)
        return await self.read_status()

    # ------------------------------------------------------------- heartbeat

    async def heartbeat(self) -> int:
        """A status query: in Safe mode every valid packet restarts the pump's watchdog.

        A reply that came within HEARTBEAT_COVER_S already restarted it (the controller
        heartbeats right after its read), so then nothing is sent: on a shared serial line
        the read is the heartbeat. The pump echoes nothing, so the value is the driver's
        count of heartbeats (sent or covered by a reply).
        """
        if time.monotonic() - self._last_reply_at >= HEARTBEAT_COVER_S:
            await self._send("")
        self._heartbeats += 1
        return self._heartbeats

    async def set_heartbeat_timeout(self, seconds: int) -> None:
        """``SAF n``, n in wall seconds (1–255), read back. 0 would leave Safe mode: refused.

        `seconds` are the caller's clock seconds; at a simulation's time scale they are
        divided back, so the pump's watchdog is the configured wall time, never scaled.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise InvalidProgram("heartbeat_timeout_s", seconds, "must be an integer")
        if seconds < 1:
            raise InvalidProgram(
                "heartbeat_timeout_s", seconds, "must be at least 1 s (0 would leave Safe mode)"
            )
        seconds = max(1, round(seconds / self.config.clock_scale))
        if self.config.mode != "safe":
            raise InvalidProgram(
                "heartbeat_timeout_s", seconds, "basic mode has no communications watchdog"
            )
        if not 1 <= seconds <= MAX_SAFE_TIMEOUT_S:
            raise InvalidProgram(
                "heartbeat_timeout_s", seconds, f"must be within 1..{MAX_SAFE_TIMEOUT_S} s"
            )
        await self._set_safe_timeout(seconds)

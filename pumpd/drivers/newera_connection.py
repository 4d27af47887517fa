"""One New Era pump at its address: connecting, asking it (each reply's alarm latched until
acknowledged, pushed alarm packets latched at once and made a status the controller can
act on without asking again) and reading its status. The driver (`pumpd.drivers.newera`)
adds programming, commands and the heartbeat on top."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Self

from pumpd.drivers.base import (
    AlarmFlag,
    CommandResult,
    ProgramMismatch,
    ProtocolError,
    PumpProgram,
    PumpState,
    PumpStatus,
    PumpUnreachable,
    PushedAlarm,
    WarningFlag,
)
from pumpd.drivers.capabilities import PumpCapabilities
from pumpd.drivers.newera_codec import (
    Alarm,
    CodecError,
    ErrorCode,
    Prompt,
    Reply,
    decode_dispensed,
    decode_rate,
    decode_version,
    format_number,
    parse_number,
    request_text,
)
from pumpd.drivers.newera_config import NewEraConfig
from pumpd.drivers.newera_line import NewEraLine, Withdrawn, acquire_line, release_line
from pumpd.drivers.newera_mapping import ALARM_FLAG_OF, STATE_OF, PumpRefused, capabilities
from pumpd.drivers.newera_prime import PrimeLedger
from pumpd.drivers.slots import PollSlot


class _AnsweredWithAlarm(Exception):
    """A status request was answered with an alarm (not executed): that is the reading."""


class NewEraConnection:
    """The connection, the wire and the status of one pump on a (possibly shared) RS-232 line."""

    def __init__(self, config: NewEraConfig) -> None:
        self.config = config
        self._line: NewEraLine | None = None
        self.poll_slot: PollSlot | None = None
        """This pump's place in its line's poll period (drivers/slots.py); None off it."""
        self._label = f"New Era pump {config.address}"
        self._latched = AlarmFlag.NONE
        self._latched_codes: set[Alarm] = set()
        self._resets_seen = 0
        """Power-on resets (``A?R``) the pump reported to this connection: the pump's only
        evidence of a restart (it keeps no uptime), counted from 0 in each driver's life."""
        self._reset_at = 0.0
        """When the newest reset was reported (monotonic): a reading older than it is of
        the pump before its restart."""
        self._cmd_count = 0
        self._heartbeats = 0
        self._last_reply_at = 0.0
        self._program: PumpProgram | None = None
        self._primes = PrimeLedger()
        self._last_prompt: Prompt | None = None
        self.model_number: int | None = None
        self.firmware: str | None = None
        self.alarm_pushed = asyncio.Event()
        """Set the moment an alarm packet arrives (pushed or as a reply); cleared by
        whoever acts on it."""
        self.alarm_packets: list[tuple[float, Alarm]] = []
        self._pushed: PushedAlarm | None = None
        """The newest alarm packet not yet taken by the controller."""
        self._last_status: PumpStatus | None = None
        self.capabilities: PumpCapabilities = capabilities(safe_mode=config.mode == "safe")
        """What this pump can do; Basic mode (simulation only) has no watchdog."""

    # ------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Open (or join) the line, arm Safe mode, check model, syringe diameter and state."""
        if self._line is None:
            self._line = acquire_line(self.config.line_settings())
            self.poll_slot = self._line.slots.take()
            self._line.subscribe(self.config.address, self._on_alarm_packet)
        self._line.ensure_open(force=not self._line.is_open)
        if self.config.mode == "safe":
            await self._set_safe_timeout(self.config.heartbeat_timeout_s)
        version = await self._ask("VER")
        try:
            self.model_number, self.firmware = decode_version(version.data)
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: {exc}") from None
        await self._ensure_diameter()
        await self.read_status()

    async def close(self) -> None:
        line, self._line = self._line, None
        slot, self.poll_slot = self.poll_slot, None
        if line is not None:
            if slot is not None:
                line.slots.give_back(slot)
            line.unsubscribe(self.config.address)
            release_line(line)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------- the wire

    def _on_alarm_packet(self, alarm: Alarm) -> None:
        received = time.monotonic()
        self.alarm_packets.append((received, alarm))
        self._latch(alarm)
        self._pushed = PushedAlarm(
            alarms=ALARM_FLAG_OF.get(alarm, AlarmFlag.NONE),
            restarted=alarm is Alarm.RESET,
            received_at_monotonic=received,
            status=None
            if alarm is Alarm.RESET
            else self._alarm_status(self._last_status, received),
        )
        self.alarm_pushed.set()

    def _alarm_status(self, last: PumpStatus | None, received: float) -> PumpStatus | None:
        """The status an alarm packet makes of a reading, with no further request.

        Every alarm the pump reports (stall, watchdog, program or phase error) is one it
        stopped on: a read after it finds the stopped prompt, so rate 0 and no
        VTBI_COMPLETE (which the driver reports only for an idle pump), in ALARM with what
        is latched. The volumes are the reading's: the packet carries none.
        """
        if last is None or last.read_at_monotonic < self._reset_at:
            return None  # no reading since the pump restarted: it says nothing now
        return dataclasses.replace(
            last,
            state=PumpState.ALARM,
            alarms=self._latched,
            warnings=WarningFlag.NONE,
            rate_actual_ml_h=Decimal(0),
            read_at_monotonic=received,
        )

    def take_pushed_alarm(self) -> PushedAlarm | None:
        """The newest alarm packet not yet taken (`PushesAlarms`); its status is dropped
        when a reading has been made since it arrived: only a read shows more now."""
        pushed, self._pushed = self._pushed, None
        last = self._last_status
        if (
            pushed is not None
            and last is not None
            and last.read_at_monotonic >= pushed.received_at_monotonic
        ):
            return dataclasses.replace(pushed, status=None)
        return pushed

    def _latch(self, alarm: Alarm) -> None:
        if alarm is Alarm.RESET:
            # Power was lost: the pump's counters restarted at 0, and so does the prime
            # bookkeeping that lived in them.
            self._resets_seen += 1
            self._reset_at = time.monotonic()
            self._primes.forget()
            return
        self._latched |= ALARM_FLAG_OF[alarm]
        self._latched_codes.add(alarm)

    async def _send(
        self, command: str, argument: str = "", *, unless: Callable[[], bool] | None = None
    ) -> Reply:
        line = self._line
        if line is None:
            raise PumpUnreachable(f"{self._label}: driver is not connected")
        text = request_text(self.config.address, command, argument)
        reply = await line.request(self.config.address, text, unless=unless)
        self._last_reply_at = time.monotonic()
        if reply.alarm is not None:
            self._latch(reply.alarm)
        return reply

    async def _ask(self, command: str, argument: str = "", *, status: bool = False) -> Reply:
        """Send a request that does not move fluid; an alarm reply acknowledged the alarm
        (the request itself was not executed), so it is sent again, at most twice more.
        For a `status` request an alarm (not a reset) is the answer: `_AnsweredWithAlarm`,
        also when one latches while the request waits for the line (it is not sent)."""
        latched = self._latched
        for _ in range(3):
            try:
                reply = await self._send(
                    command, argument, unless=(lambda: self._latched != latched) if status else None
                )
            except Withdrawn:
                raise _AnsweredWithAlarm from None
            if status and reply.alarm is not None and reply.alarm is not Alarm.RESET:
                raise _AnsweredWithAlarm
            if reply.alarm is None:
                if reply.error is ErrorCode.BAD_PACKET:
                    raise PumpUnreachable(
                        f"{self._label}: {command}{argument}: the pump got a damaged packet"
                    )
                if reply.error is not None:
                    raise PumpRefused(
                        f"{self._label}: {command}{argument} refused: ?{reply.error.value}",
                        reply.error,
                    )
                return reply
        raise ProtocolError(f"{self._label}: {command}: the pump answers only with alarms")

    async def _set_safe_timeout(self, seconds: int) -> None:
        await self._ask("SAF", str(seconds))
        held = await self._ask("SAF")
        try:
            value = int(parse_number(held.data))
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: SAF: {exc}") from None
        if value != seconds:
            raise ProgramMismatch("heartbeat_timeout_s", seconds, value)

    async def _ensure_diameter(self) -> None:
        wanted = self.config.syringe_diameter_mm
        held = await self._read_number("DIA")
        if held == wanted:
            return
        await self._ask("DIA", format_number(wanted))
        held = await self._read_number("DIA")
        if held != wanted:
            raise ProgramMismatch("syringe_diameter_mm", wanted, held)

    async def _read_number(self, command: str) -> Decimal:
        reply = await self._ask(command)
        try:
            return parse_number(reply.data)
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: {command}: {exc}") from None

    # ------------------------------------------------------------- status

    async def read_status(self) -> PumpStatus:
        """``DIS`` (volumes; its prompt is the state), then ``RAT`` only while the pump
        moves fluid. State and volumes come from one reply, so a prime that ends between
        two requests is never judged on an older volume; an idle pump costs one request.

        An alarm that answers the read (``DIS`` or ``RAT``: the pump shows an alarm once,
        instead of executing the next request), or arrives after the ``DIS`` reply (pushed),
        is the answer: the pump stopped on it. The status is then the reading's (or, when
        the alarm answered ``DIS``, the last one's) in ALARM at rate 0, with no further
        request, so a halt can follow at once and an alarm is never reported beside the
        flow from before it. With no reading to build on it is read once more.
        """
        status = await self._read_or_alarm()
        self._last_status = status
        return status

    async def _read_or_alarm(self) -> PumpStatus:
        reading: PumpStatus | None
        try:
            reading, overtaken = await self._read_status_once(alarm_ends=True)
        except _AnsweredWithAlarm:
            reading, overtaken = self._last_status, True
        if not overtaken and reading is not None:
            return reading
        alarmed = self._alarm_status(reading, time.monotonic())
        if alarmed is not None:
            return alarmed
        status, _ = await self._read_status_once(alarm_ends=False)
        return status

    async def _read_status_once(self, *, alarm_ends: bool) -> tuple[PumpStatus, bool]:
        """The status, and whether an alarm latched after its prompt was read."""
        dispensed = await self._ask("DIS", status=alarm_ends)
        read_at = time.monotonic()  # when the volumes arrived, not after the rate
        latched_at_prompt = self._latched
        # The volumes are of the pump as this reply found it: a reset reported after it
        # (pushed before the ``RAT`` below) is the next reading's, which shows the new
        # counter; told with this one's volumes it would count them twice.
        resets_at_prompt = self._resets_seen
        prompt = dispensed.prompt
        assert prompt is not None  # _ask returns only replies without an alarm
        try:
            infused_ul, _withdrawn_ul = decode_dispensed(dispensed.data)
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: {exc}") from None
        # Split now, before a reset reported during the ``RAT`` clears the prime ledger.
        counter = self._primes.observe(
            infused_ul,
            running=prompt is Prompt.INFUSING,
            paused=prompt is Prompt.PAUSED and not latched_at_prompt,
        )
        moving = prompt in (Prompt.INFUSING, Prompt.PURGING, Prompt.WITHDRAWING)
        if alarm_ends and self._latched != latched_at_prompt:
            moving = False  # an alarm came since the prompt: no rate to ask, it is the answer
        rate = await self._ask("RAT", status=alarm_ends) if moving else None
        try:
            rate_ml_h = Decimal(0) if rate is None else decode_rate(rate.data)
        except CodecError as exc:
            raise ProtocolError(f"{self._label}: {exc}") from None
        self._last_prompt = prompt
        alarms = self._latched
        state = STATE_OF.get(prompt)
        if state is None:
            alarms |= AlarmFlag.UNKNOWN
        if counter.priming:
            state = PumpState.PRIMING
        if alarms:
            state = PumpState.ALARM
        assert state is not None
        warnings = WarningFlag.NONE
        program = self._program
        if (
            state is PumpState.IDLE
            and program is not None
            and 0 < program.vtbi_ul <= counter.infused_ul
        ):
            warnings |= WarningFlag.VTBI_COMPLETE
        status = PumpStatus(
            state=state,
            alarms=alarms,
            warnings=warnings,
            rate_actual_ml_h=(
                rate_ml_h if prompt in (Prompt.INFUSING, Prompt.PURGING) else Decimal(0)
            ),
            volume_infused_ul=counter.infused_ul,
            volume_primed_ul=counter.primed_ul,
            pressure_downstream_mmhg=None,
            battery_percent=None,
            last_cmd_seq=0,
            last_cmd_result=CommandResult.OK,
            heartbeat_echo=None,
            max_rate_ml_h=None,
            uptime_s=None,
            serial_number=None,
            profile_version=None,
            read_at_monotonic=read_at,
            resets_seen=resets_at_prompt,
        )
        return status, self._latched != latched_at_prompt

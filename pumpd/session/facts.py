"""Device facts: what the controller reports after it has read the pump.

A fact is never a wish: it is reported only once the pump's answer is known (confirmed,
refused, or unknown), and it moves the session to match the pump. Where the pump
contradicts the intent, the fact latches an alarm instead of guessing.
"""

from __future__ import annotations

from decimal import Decimal

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from safety.actions import Priority
from safety.plan import Plan
from safety.pump import PumpMode

from .core import (
    ALARM_SOURCES,
    KEEP_PROPOSAL,
    CommandIntent,
    SessionCore,
    Step,
    check_stamp,
    check_type,
)
from .errors import (
    InvalidCommandInput,
    RestoreError,
)
from .records import (
    AlarmRecord,
    AlarmSource,
    At,
    UncertainRecord,
)
from .states import State


class DeviceFacts(SessionCore):
    """Confirmed facts about the pump, reported by the controller."""

    def _confirmed(self, trigger: str, dest: State, *extra: str, **changes: object) -> Step:
        source = self._require(trigger)
        data = self._update(pending_command=None, **changes)
        return self._fire(trigger, source, dest, data, audit=("pump.command.confirmed", *extra))

    def prime_confirmed(self, *, at: Stamp) -> Step:
        since = At.of(check_stamp(at))
        return self._confirmed("prime_confirmed", State.PRIMING, priming_since=since)

    def prime_complete(self, *, volume_primed_ul: int, at: Stamp) -> Step:
        source = self._require("prime_complete")
        stamp = check_stamp(at)
        v = volume_primed_ul
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidCommandInput(f"volume_primed_ul must be an integer ≥ 0, got {v!r}")
        data = self._update(primed_at=At.of(stamp), volume_primed_ul=v)
        return self._fire("prime_complete", source, State.PRIMED, data)

    def start_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("start_confirmed")
        stamp = check_stamp(at)
        if source is State.RESUME_REQUESTED:
            return self._confirmed(
                "start_confirmed",
                State.INFUSING,
                "session.resumed",
                **self._delivering_again(At.of(stamp)),
            )
        return self._confirmed(
            "start_confirmed", State.INFUSING, "session.started", started_at=At.of(stamp)
        )

    def pause_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("pause_confirmed")
        at_rec = At.of(check_stamp(at))
        if source is State.ALARM:
            paused = self._data.paused_at or at_rec
            return self._confirmed("pause_confirmed", source, paused_at=paused)
        return self._confirmed("pause_confirmed", State.PAUSED, "session.paused", paused_at=at_rec)

    def stop_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("stop_confirmed")
        at_rec = At.of(check_stamp(at))
        if source is State.COMPLETE:
            return self._confirmed(
                "stop_confirmed",
                State.OBSERVATION,
                "observation.started",
                observation_started_at=at_rec,
            )
        # The halt is confirmed: an interruption about delivery accuracy ends the session
        # here, and the observation starts (in ALARM under the alarm, still latched).
        ended, ending = self._ended(at_rec)
        settled: dict[str, object] = {**ended}
        dest = State.ALARM if source is State.ALARM else State.STOPPED
        if ending and source is not State.ALARM:
            dest = State.OBSERVATION
        doubt = self._data.last_uncertain
        if doubt is not None and doubt.resolved_to is None:
            # A pump confirmed stopped settles any command that was still in doubt.
            settled["last_uncertain"] = doubt.model_copy(
                update={"resolved_to": dest, "resolved_at": at_rec}
            )
        if source is State.ALARM:
            stopped = self._data.stopped_at or at_rec
            # The first confirmed halt under a latched alarm records the stop when it ends
            # the session (the acknowledgement no longer does).
            said = ("session.stopped",) if ending and not self._data.stopped_at else ()
            return self._confirmed(
                "stop_confirmed", source, *said, *ending, stopped_at=stopped, **settled
            )
        return self._confirmed(
            "stop_confirmed", dest, "session.stopped", *ending, stopped_at=at_rec, **settled
        )

    def adjust_confirmed(self, *, at: Stamp) -> Step:
        source = self._require("adjust_confirmed")
        check_stamp(at)
        changes: dict[str, object] = {"pending_command": None}
        new_plan = self._applied_adjustment(changes)
        return self._fire(
            "adjust_confirmed",
            source,
            State.INFUSING,
            self._update(**changes),
            plan=new_plan,
            proposed_plan=None,
            audit=("pump.command.confirmed", "session.adjusted"),
        )

    def vtbi_reached(self, *, at: Stamp, pump_mode: PumpMode | None = None) -> Step:
        """The planned volume is in.

        When the plan prescribes keep-vein-open and the pump reports KVO, the session goes
        to KVO and nothing is commanded: the pump keeps the vein open at the prescribed rate
        under the kernel's KVO rules until the nurse starts the observation or the KVO
        allowance is used. Otherwise (no KVO prescribed, or the pump still infusing, idle or
        in a mode nobody asked for) the session is COMPLETE and the Step commands STOP.
        """
        source = self._require("vtbi_reached")
        stamp = check_stamp(at)
        if pump_mode is not None:
            check_type("pump_mode", pump_mode, PumpMode)
        if pump_mode is PumpMode.KVO and self._plan.kvo_rate_ml_h > 0:
            kvo = self._update(
                completed_at=At.of(stamp), pending_command=None, pending_adjustment=None
            )
            return self._fire(
                "vtbi_reached",
                source,
                State.KVO,
                kvo,
                audit=("infusion.completed",),
                proposed_plan=None,
            )
        data = self._update(
            completed_at=At.of(stamp),
            pending_command=PumpCommand.STOP,
            requested_in=State.COMPLETE,
            pending_adjustment=None,
        )
        command = CommandIntent(PumpCommand.STOP, reason_code="infusion.complete")
        return self._fire(
            "vtbi_reached",
            source,
            State.COMPLETE,
            data,
            command=command,
            audit=("infusion.completed", "pump.command.requested"),
            proposed_plan=None,
        )

    def alarm(
        self,
        *,
        code: str,
        priority: Priority,
        message: str,
        source: AlarmSource,
        at: Stamp,
    ) -> Step:
        """Latch an alarm (from the pump, the kernel, vitals or the daemon itself)."""
        state = self._require("alarm")
        stamp = check_stamp(at)
        check_type("priority", priority, Priority)
        if source not in ALARM_SOURCES:
            raise InvalidCommandInput(f"source must be one of {ALARM_SOURCES}, got {source!r}")
        for name, value in (("code", code), ("message", message)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidCommandInput(f"an alarm needs a {name}, got {value!r}")
        record = AlarmRecord(
            code=code,
            priority=priority,
            message=message,
            source=source,
            raised_in=state,
            at=At.of(stamp),
        )
        data = self._update(
            alarms=(*self._data.alarms, record),
            pending_command=None,
            **self._interruption(code, record.at),
        )
        return self._fire(
            "alarm", state, State.ALARM, data, audit=("alarm.raised",), proposed_plan=None
        )

    def _check_command(self, command: object) -> PumpCommand:
        if not isinstance(command, PumpCommand):
            raise InvalidCommandInput(f"command must be a PumpCommand, got {command!r}")
        pending = self._data.pending_command
        if self.state is not State.ALARM and pending is not None and command is not pending:
            raise InvalidCommandInput(
                f"the outstanding command is {pending.value}, not {command.value}"
            )
        return command

    def command_uncertain(self, *, command: PumpCommand, detail: str, at: Stamp) -> Step:
        """The command went out and its outcome is unknown: nothing more until reconciled."""
        source = self._require("command_uncertain")
        stamp = check_stamp(at)
        kind = self._check_command(command)
        if not isinstance(detail, str) or not detail.strip():
            raise InvalidCommandInput("an uncertain command needs a detail")
        record = UncertainRecord(
            command=kind,
            detail=detail,
            requested_in=self._data.requested_in if source is not State.ALARM else source,
            at=At.of(stamp),
        )
        dest = State.ALARM if source is State.ALARM else State.UNCERTAIN
        data = self._update(last_uncertain=record, pending_command=kind)
        if source is State.ALARM:
            doubt = self._data.last_uncertain
            if doubt is not None and doubt.resolved_to is None and doubt.command is kind:
                # The same command, repeated while latched, is still in doubt: the record
                # keeps when the doubt began (each attempt is in the audit log), so
                # repeated attempts do not change the session.
                record = doubt
            data = self._update(last_uncertain=record, pending_command=None)
        return self._fire(
            "command_uncertain", source, dest, data, audit=("pump.command.uncertain",)
        )

    def command_failed(
        self, *, command: PumpCommand, detail: str, at: Stamp, sent: bool = True
    ) -> Step:
        """The pump refused the command outright, or (``sent`` False) pumpd could not send
        it: the link failed, or the driver refused a setpoint the pump cannot hold exactly.
        An alarm, latched until acknowledged; its words say which, so a nurse is not told
        the pump refused what it never heard."""
        source = self._require("command_failed")
        stamp = check_stamp(at)
        kind = self._check_command(command)
        if not isinstance(detail, str) or not detail.strip():
            raise InvalidCommandInput("a failed command needs a detail")
        code = f"command.{kind.value}.failed"
        if any(a.code == code for a in self._data.alarms):
            # Already latched (a STOP the pump keeps refusing in ALARM): the alarm stays
            # as first raised, and the latched list does not grow with every attempt.
            data = self._update(pending_command=None)
            return self._fire(
                "command_failed",
                source,
                State.ALARM,
                data,
                audit=("pump.command.failed",),
                proposed_plan=None,
            )
        record = AlarmRecord(
            code=code,
            priority=Priority.HIGH if kind is PumpCommand.STOP else Priority.MEDIUM,
            message=(
                f"The pump refused the {kind.value} command: {detail}"
                if sent
                else f"The {kind.value} command was not sent to the pump: {detail}"
            ),
            source="pump" if sent else "daemon",
            raised_in=source,
            at=At.of(stamp),
        )
        data = self._update(
            alarms=(*self._data.alarms, record),
            pending_command=None,
            **self._interruption(code, record.at),
        )
        return self._fire(
            "command_failed",
            source,
            State.ALARM,
            data,
            audit=("pump.command.failed", "alarm.raised"),
            proposed_plan=None,
        )

    def reconciled(
        self, *, pump_mode: PumpMode, at: Stamp, rate_ml_h: Decimal | None = None
    ) -> Step:
        """A status read settles the uncertain command; a mismatch with the intent is an alarm."""
        source = self._require("reconciled")
        stamp = check_stamp(at)
        check_type("pump_mode", pump_mode, PumpMode)
        if rate_ml_h is not None and (
            not isinstance(rate_ml_h, Decimal) or not rate_ml_h.is_finite()
        ):
            raise InvalidCommandInput(f"rate_ml_h must be a finite Decimal, got {rate_ml_h!r}")
        d = self._data
        uncertain = d.last_uncertain
        if uncertain is None:
            raise RestoreError("UNCERTAIN without a record of the uncertain command")
        kind = uncertain.command
        at_rec = At.of(stamp)
        changes: dict[str, object] = {"pending_command": None}
        audit: list[str] = []
        plan: Plan | None = None
        dest: State | None = None
        mode = pump_mode
        delivering = mode in (PumpMode.INFUSING, PumpMode.KVO)
        if mode is PumpMode.ALARM:
            dest = None
        elif kind is PumpCommand.PRIME and mode is PumpMode.PRIMING:
            dest = State.PRIMING
            changes["priming_since"] = at_rec
        elif kind in (PumpCommand.START, PumpCommand.RESUME) and delivering:
            dest = State.INFUSING
            if kind is PumpCommand.START:
                changes["started_at"] = at_rec
                audit.append("session.started")
            else:
                changes.update(self._delivering_again(at_rec))
                audit.append("session.resumed")
        elif (
            kind is PumpCommand.SET_RATE
            and delivering
            and d.pending_adjustment is not None
            and rate_ml_h == d.pending_adjustment.rate_ml_h
        ):
            dest = State.INFUSING
            plan = self._applied_adjustment(changes)
            audit.append("session.adjusted")
        elif kind is PumpCommand.PAUSE and mode is PumpMode.PAUSED:
            dest = State.PAUSED
            changes["paused_at"] = at_rec
            audit.append("session.paused")
        elif kind is PumpCommand.STOP and mode is PumpMode.IDLE:
            if uncertain.requested_in is State.COMPLETE:
                dest = State.OBSERVATION
                changes["observation_started_at"] = at_rec
                audit.append("observation.started")
            else:
                ended, ending = self._ended(at_rec)
                dest = State.OBSERVATION if ending else State.STOPPED
                changes["stopped_at"] = at_rec
                changes.update(ended)
                audit += ["session.stopped", *ending]
        if dest is None:
            dest = State.ALARM
            pump_alarm = mode is PumpMode.ALARM
            code = "pump.alarm" if pump_alarm else f"command.{kind.value}.not_applied"
            message = (
                f"After the uncertain {kind.value} command the pump is in alarm."
                if pump_alarm
                else f"The {kind.value} command did not take effect: the pump is {mode.value}."
            )
            record = AlarmRecord(
                code=code,
                priority=Priority.HIGH if (pump_alarm or mode.delivers) else Priority.MEDIUM,
                message=message,
                source="daemon",
                raised_in=source,
                at=at_rec,
            )
            changes["alarms"] = (*d.alarms, record)
            changes.update(self._interruption(code, at_rec))
            audit.append("alarm.raised")
        changes["last_uncertain"] = uncertain.model_copy(
            update={"resolved_to": dest, "resolved_at": at_rec}
        )
        return self._fire(
            "reconciled",
            source,
            dest,
            self._update(**changes),
            plan=plan,
            proposed_plan=None if plan is not None or dest is State.ALARM else KEEP_PROPOSAL,
            audit=audit,
        )

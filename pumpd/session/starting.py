"""Priming and starting an infusion: the start checks are the kernel's (``safety.start``)."""

from __future__ import annotations

from collections.abc import Sequence

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from safety import guards
from safety.course import InvalidCourseHistory, PriorSession
from safety.order import Override, approval_missing
from safety.pump import InvalidPumpSnapshot, PumpSnapshot
from safety.start import (
    InvalidStartInput,
    StartAssessment,
    StartInputs,
    check_start,
    start_requirements,
)
from safety.verdicts import Severity
from safety.vitals import InvalidVitals

from . import rules
from .core import CommandIntent, SessionCore, Step, check_stamp, check_type, refuse_if
from .errors import CommandRefused, InvalidCommandInput
from .records import At, OverrideRecord, VerdictRecord
from .states import State


class StartCommands(SessionCore):
    """Priming the line and starting the infusion, the start assessed by the kernel."""

    # -- priming and starting -------------------------------------------------------

    def request_prime(self, *, by: str, line_disconnected: bool, at: Stamp) -> Step:
        """Ask to prime; needs the nurse's word that the line is off the patient."""
        source = self._require("request_prime")
        stamp = check_stamp(at)
        verdicts = rules.person("prime", by, "prime request")
        verdicts += guards.prime_allowed(self._data.start_commanded, line_disconnected)
        refuse_if("request_prime", verdicts)
        req = start_requirements(self._protocol.protocol)
        data = self._update(
            line_disconnected_by=by,
            prime_requested_at=At.of(stamp),
            priming_since=None,
            pending_command=PumpCommand.PRIME,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.PRIME,
            rate_ml_h=self._protocol.protocol.priming.rate_ml_h,
            vtbi_ul=req.prime_volume_ul,
            reason_code="nurse.prime",
        )
        return self._fire(
            "request_prime",
            source,
            State.PRIME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def request_start(
        self,
        *,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        at: Stamp,
        primed_confirmed: bool = False,
        override: Override | None = None,
    ) -> Step:
        """Ask to start; every start check of the kernel must pass (soft ones overridden).

        Soft start verdicts whose override needs a second person hold the start: the
        nurse's override is kept (``pending_start_override``), nothing goes to the pump,
        and :meth:`approve` by someone else starts it.
        """
        source = self._require("request_start")
        stamp = check_stamp(at)
        if override is not None:
            check_type("override", override, Override)
        return self._start(
            "request_start", source, stamp, by, pump, prior_sessions, primed_confirmed, override
        )

    def start_soft_codes(
        self,
        *,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        at: Stamp,
        primed_confirmed: bool = False,
    ) -> tuple[str, ...]:
        """The soft verdicts a start would meet now (read only): what a starting nurse's
        override reason must cover."""
        stamp = check_stamp(at)
        assessment = self._assess(by, pump, prior_sessions, stamp, primed_confirmed)
        return tuple(v.code for v in assessment.verdicts if v.severity is Severity.SOFT)

    def _assess(
        self,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        stamp: Stamp,
        primed_confirmed: bool,
    ) -> StartAssessment:
        if pump is not None:
            check_type("pump", pump, PumpSnapshot)
        if isinstance(prior_sessions, str) or not all(
            isinstance(p, PriorSession) for p in prior_sessions
        ):
            raise InvalidCommandInput("prior_sessions must be a sequence of PriorSession")
        last = self._data.last_vitals
        vitals = None if last is None else last.reading_as_of(stamp)
        try:
            inputs = StartInputs(
                snapshot=pump,
                primed_confirmed=primed_confirmed,
                operator_id=by,
                double_checker_id=self._data.confirmed_by,
                baseline_vitals=vitals,
                prior_sessions=tuple(prior_sessions),
                planned_dose_mg_per_kg=self._plan.dose_mg_per_kg,
                now=stamp.utc,
            )
            return check_start(start_requirements(self._protocol.protocol), inputs)
        except (InvalidStartInput, InvalidVitals, InvalidCourseHistory, InvalidPumpSnapshot) as e:
            raise InvalidCommandInput(f"start input: {e}") from e

    def _start(
        self,
        trigger: str,
        source: State,
        stamp: Stamp,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        primed_confirmed: bool,
        override: Override | None,
        shown: Sequence[str] | None = None,
    ) -> Step:
        verdicts = rules.person("start", by, "start request")
        if verdicts:
            raise CommandRefused(trigger, verdicts)
        assessment = self._assess(by, pump, prior_sessions, stamp, primed_confirmed)
        found, pending = rules.start_override(
            self._protocol.protocol, assessment.verdicts, override
        )
        plan_record = self._data.plan_override
        found += rules.unapproved(
            self._plan, None if plan_record is None else plan_record.override()
        )
        if pending and trigger == "approve":
            found.append(approval_missing(pending))
        elif trigger == "approve" and override is not None:
            found += rules.approved_as_shown(
                [v for v in assessment.verdicts if v.code in override.codes], shown
            )
        refuse_if(trigger, found)
        verdict_records = tuple(VerdictRecord.of(v) for v in assessment.verdicts)
        if pending:
            assert override is not None
            held = self._update(
                pending_start_override=OverrideRecord.of(override), start_verdicts=verdict_records
            )
            return self._fire(trigger, source, source, held)
        data = self._update(
            start_requested_by=by,
            start_requested_at=At.of(stamp),
            start_override=None if override is None else OverrideRecord.of(override),
            pending_start_override=None,
            start_verdicts=verdict_records,
            pending_command=PumpCommand.START,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.START,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.start",
        )
        audit = ["pump.command.requested"]
        if override is not None and any(v.severity is Severity.SOFT for v in assessment.verdicts):
            audit.insert(0, "override.granted")
        return self._fire(
            trigger, source, State.START_REQUESTED, data, command=command, audit=audit
        )

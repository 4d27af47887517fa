"""Commands during delivery: pause, resume or continue, adjust the rate, stop."""

from __future__ import annotations

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from pumpd.protocols import LoadedProtocol
from safety import guards
from safety.continuation import (
    ContinuationInputs,
    InvalidContinuationInput,
    check_continuation,
    check_resume_cause,
)
from safety.order import Override
from safety.plan import Order
from safety.vitals import InvalidVitals

from . import rules
from .core import (
    CommandIntent,
    DeliveryFacts,
    SessionCore,
    Step,
    check_stamp,
    check_text,
    check_type,
    refuse_if,
)
from .errors import CommandRefused, InvalidCommandInput
from .records import AdjustmentRecord, At, ContinuationRecord, OrderRecord, OverrideRecord
from .states import State


class DeliveryCommands(SessionCore):
    """What a nurse (or the kernel) asks of a running or paused infusion."""

    # -- pause, resume, adjust, stop ------------------------------------------------

    def pause(self, *, by: str, at: Stamp, reason_code: str = "nurse.pause") -> Step:
        """Pause the infusion (a nurse, or the controller obeying the kernel)."""
        source = self._require("pause")
        check_stamp(at)
        check_text("reason_code", reason_code)
        refuse_if("pause", rules.person("pause", by, "pause"))
        command = CommandIntent(PumpCommand.PAUSE, reason_code=reason_code)
        if source is State.ALARM:
            data = self._update(pause_reason_code=reason_code)
            return self._fire(
                "pause", source, source, data, command=command, audit=("pump.command.requested",)
            )
        data = self._update(
            pause_reason_code=reason_code,
            pending_command=PumpCommand.PAUSE,
            requested_in=source,
        )
        return self._fire(
            "pause",
            source,
            State.PAUSE_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def resume(
        self,
        *,
        by: str,
        at: Stamp,
        reason: str | None = None,
        delivery: DeliveryFacts | None = None,
    ) -> Step:
        """Resume a paused infusion at the plan in effect; never out of ALARM.

        From STOPPED (a cleared and acknowledged mechanical alarm, or a nurse's own stop)
        this continues the interrupted infusion in the same session, if the kernel's
        continuation rule allows it (``safety.continuation``): the nurse's reason and the
        controller's ``delivery`` facts are needed then.
        """
        source = self._require("resume")
        stamp = check_stamp(at)
        if source is State.STOPPED:
            return self._continue(by, reason, delivery, stamp)
        verdicts = rules.person("resume", by, "resume")
        verdicts += check_resume_cause(self._data.interrupted_by)
        refuse_if("resume", verdicts)
        data = self._update(pending_command=PumpCommand.RESUME, requested_in=source)
        command = CommandIntent(
            PumpCommand.RESUME,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.resume",
        )
        return self._fire(
            "resume",
            source,
            State.RESUME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def _continue(self, by: str, reason: object, delivery: object, stamp: Stamp) -> Step:
        if not isinstance(delivery, DeliveryFacts):
            raise InvalidCommandInput(f"a continuation needs the delivery facts, got {delivery!r}")
        check_text("reason", reason, optional=True)
        verdicts = rules.person("resume", by, "continuation")
        verdicts += rules.reason_text("continue.reason_missing", reason, "continuation")
        d = self._data
        proto = self._protocol.protocol
        since = d.interrupted_at or d.stopped_at
        interrupted_s = 0.0 if since is None else max(0.0, stamp.mono_s - since.mono_s)
        last = d.last_vitals
        try:
            inputs = ContinuationInputs(
                interrupted_by=d.interrupted_by,
                vtbi_ul=self._plan.vtbi_ul,
                delivered_ul=delivery.delivered_ul,
                expected_ul=delivery.expected_ul,
                rate_ml_h=self._plan.rate_ml_h,
                delivery_elapsed_s=delivery.delivery_elapsed_s,
                max_delivery_s=delivery.max_delivery_s,
                interrupted_before_s=d.interrupted_before_s,
                interrupted_s=interrupted_s,
                pause_limit_s=float(proto.pause.stop_after_min * 60),
                vitals=None if last is None else last.reading_as_of(stamp),
                now=stamp.utc,
                pump=delivery.pump,
            )
            assessment = check_continuation(proto.vitals, inputs)
        except (InvalidContinuationInput, InvalidVitals) as exc:
            raise InvalidCommandInput(f"continuation input: {exc}") from exc
        verdicts += assessment.verdicts
        refuse_if("resume", verdicts)
        assert isinstance(reason, str)
        record = ContinuationRecord(
            by=by,
            reason=reason,
            at=At.of(stamp),
            interrupted_by=d.interrupted_by,
            remaining_ul=assessment.remaining_ul,
            delivered_ul=max(delivery.delivered_ul, delivery.expected_ul),
            interrupted_s=interrupted_s,
        )
        data = self._update(
            pending_command=PumpCommand.RESUME,
            requested_in=State.STOPPED,
            last_continuation=record,
            continuations=d.continuations + 1,
        )
        command = CommandIntent(
            PumpCommand.RESUME,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=assessment.remaining_ul,
            reason_code="nurse.continue",
        )
        return self._fire(
            "resume",
            State.STOPPED,
            State.RESUME_REQUESTED,
            data,
            command=command,
            audit=("session.continued", "pump.command.requested"),
        )

    def adjust(
        self,
        *,
        by: str,
        reason: str,
        order: Order,
        delivered_ul: int,
        at: Stamp,
        override: Override | None = None,
        protocol: LoadedProtocol | None = None,
    ) -> Step:
        """Propose a new plan for the infusion (step one of two); nothing changes at the pump.

        ``protocol`` is what the caller believes it is adjusting under; a different one is
        refused (changing drug or protocol mid-infusion means stop and program anew).
        """
        source = self._require("adjust")
        stamp = check_stamp(at)
        check_type("order", order, Order)
        if override is not None:
            check_type("override", override, Override)
        if protocol is not None:
            check_type("protocol", protocol, LoadedProtocol)
        verdicts = rules.person("adjust", by, "adjustment")
        verdicts += rules.reason_text("adjust.reason_missing", reason, "adjustment")
        plan, found = rules.plan_or_refusal(
            self._protocol.protocol, self._data.patient.patient(), order, override
        )
        verdicts += found
        verdicts += guards.adjust_allowed(
            self._protocol.protocol.key,
            self._protocol.sha256,
            None if protocol is None else protocol.protocol.key,
            None if protocol is None else protocol.sha256,
            plan,
            delivered_ul,
        )
        if plan is not None:
            verdicts += guards.pump_fit(plan.rate_ml_h, plan.vtbi_ul, None, self._data.container_ul)
        refuse_if("adjust", verdicts)
        assert plan is not None
        proposal = AdjustmentRecord(
            order=OrderRecord.of(order),
            reason=reason,
            proposed_by=by,
            proposed_at=At.of(stamp),
            override=None if override is None else OverrideRecord.of(override),
            rate_ml_h=plan.rate_ml_h,
            vtbi_ul=plan.vtbi_ul,
        )
        data = self._update(pending_adjustment=proposal)
        return self._fire("adjust", source, source, data, proposed_plan=plan)

    def _nothing_proposed(self, trigger: str) -> None:
        if self._data.pending_adjustment is None or self._proposed_plan is None:
            raise CommandRefused(
                trigger,
                [rules.hard("adjust.nothing_proposed", "There is no proposed adjustment.")],
            )

    def confirm_adjust(self, *, by: str, at: Stamp) -> Step:
        """Step two: the nurse has seen the new plan and confirms it. An override of its
        soft verdicts that awaits a second person refuses it: that person approves
        (:meth:`approve`), and the approval applies the adjustment."""
        source = self._require("confirm_adjust")
        stamp = check_stamp(at)
        refuse_if("confirm_adjust", rules.person("adjust", by, "confirmation"))
        self._nothing_proposed("confirm_adjust")
        pending = self._data.pending_adjustment
        assert pending is not None
        assert self._proposed_plan is not None
        if pending.override is not None:
            refuse_if(
                "confirm_adjust",
                rules.unapproved(self._proposed_plan, pending.override.override()),
            )
        return self._confirm_adjustment("confirm_adjust", source, stamp, by, pending)

    def _confirm_adjustment(
        self, trigger: str, source: State, stamp: Stamp, by: str, pending: AdjustmentRecord
    ) -> Step:
        new_plan = self._proposed_plan
        assert new_plan is not None
        granted = ("override.granted",) if trigger == "approve" else ()
        confirmed = pending.model_copy(update={"confirmed_by": by, "confirmed_at": At.of(stamp)})
        if source is State.PAUSED:
            data = self._update(
                order=confirmed.order,
                pending_adjustment=None,
                last_adjustment=confirmed,
                adjustments_confirmed=self._data.adjustments_confirmed + 1,
            )
            return self._fire(
                trigger,
                source,
                source,
                data,
                plan=new_plan,
                proposed_plan=None,
                audit=(*granted, "session.adjusted"),
            )
        data = self._update(
            pending_adjustment=confirmed,
            pending_command=PumpCommand.SET_RATE,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.SET_RATE,
            rate_ml_h=new_plan.rate_ml_h,
            vtbi_ul=new_plan.vtbi_ul,
            reason_code="nurse.adjust",
        )
        return self._fire(
            trigger,
            source,
            State.ADJUSTING,
            data,
            command=command,
            audit=(*granted, "pump.command.requested"),
        )

    def cancel_adjust(self, *, by: str, at: Stamp) -> Step:
        source = self._require("cancel_adjust")
        check_stamp(at)
        refuse_if("cancel_adjust", rules.person("adjust", by, "cancellation"))
        self._nothing_proposed("cancel_adjust")
        data = self._update(pending_adjustment=None)
        return self._fire("cancel_adjust", source, source, data, proposed_plan=None)

    def stop(self, *, by: str, reason: str, at: Stamp, reason_code: str = "nurse.stop") -> Step:
        """Stop delivery; a reason is required. Allowed while a command is in doubt, too.

        Stopping is the one command that can never give more drug, so it is not held back
        by an uncertain command or a latched alarm (in ALARM it stays latched).
        """
        source = self._require("stop")
        stamp = check_stamp(at)
        check_text("reason_code", reason_code)
        verdicts = rules.person("stop", by, "stop")
        verdicts += rules.reason_text("stop.reason_missing", reason, "stop")
        refuse_if("stop", verdicts)
        changes: dict[str, object] = {
            "stop_requested_by": by,
            "stop_reason_code": reason_code,
            "stop_reason": reason,
            "pending_adjustment": None,
            **self._interruption(reason_code, At.of(stamp)),
        }
        command = CommandIntent(PumpCommand.STOP, reason_code=reason_code)
        dest = source
        if source in (State.ALARM, State.STOP_REQUESTED):
            data = self._update(**changes)
        else:
            dest = State.STOP_REQUESTED
            data = self._update(**changes, pending_command=PumpCommand.STOP, requested_in=source)
        return self._fire(
            "stop",
            source,
            dest,
            data,
            command=command,
            audit=("pump.command.requested",),
            proposed_plan=None,
        )

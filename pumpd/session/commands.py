"""Nurse commands: each is checked against the kernel, then moves the session or is refused."""

from __future__ import annotations

from collections.abc import Sequence

from pumpd.clock import Stamp
from safety.course import PriorSession
from safety.order import check_override
from safety.pump import PumpSnapshot
from safety.verdicts import Verdict
from safety.vitals import ImplausibleVitals, VitalsReading, check_entry

from . import rules
from .alarms import AlarmCommands
from .core import Step, check_stamp, check_type, refuse_if
from .delivery import DeliveryCommands
from .ending import EndingCommands
from .errors import CommandRefused, InvalidCommandInput
from .programming import ProgrammingCommands
from .records import At, NoteRecord, OverrideRecord, VitalsRecord
from .starting import StartCommands
from .states import State

__all__ = ["NurseCommands"]


class NurseCommands(
    ProgrammingCommands, StartCommands, DeliveryCommands, AlarmCommands, EndingCommands
):
    """What a nurse (or the daemon obeying the kernel) asks of a session."""

    # -- approval by a second person ------------------------------------------------

    def awaiting_approval(self) -> tuple[str, OverrideRecord, tuple[Verdict, ...]] | None:
        """What awaits a second person's approval (read only): ``"order"`` (approved at
        the double-check), ``"adjustment"`` or ``"start"`` (approved with :meth:`approve`),
        the override as the first nurse gave it, and the soft verdicts it answers."""
        pending = self._data.pending_adjustment
        if pending is not None and pending.override is not None and self._proposed_plan:
            waiting = rules.pending_approval(self._proposed_plan, pending.override.override())
            if waiting:
                return "adjustment", pending.override, waiting
        held = self._data.pending_start_override
        if held is not None and self.state in (State.VERIFIED, State.PRIMED):
            soft = tuple(v.verdict() for v in self._data.start_verdicts if v.severity == "soft")
            return "start", held, soft
        record = self._data.plan_override
        if record is not None and self.state is State.PROGRAMMED:
            waiting = rules.pending_approval(self._plan, record.override())
            if waiting:
                return "order", record, waiting
        return None

    def approve(
        self,
        *,
        by: str,
        at: Stamp,
        pump: PumpSnapshot | None = None,
        prior_sessions: Sequence[PriorSession] = (),
        shown: Sequence[str] | None = None,
    ) -> Step:
        """A second person approves the override that holds a step back: a proposed
        adjustment (its rate then goes to the pump) or a start (the start checks run again
        on ``pump``, and the start goes ahead). ``shown``: the codes the approver saw."""
        source = self._require("approve")
        stamp = check_stamp(at)
        refuse_if("approve", rules.person("override", by, "approval"))
        pending = self._data.pending_adjustment
        if pending is not None and pending.override is not None and self._proposed_plan:
            waiting = rules.pending_approval(self._proposed_plan, pending.override.override())
            if waiting:
                found = rules.approved_as_shown(waiting, shown)
                found += check_override(
                    self._proposed_plan.override, pending.override.override(second_by=by)
                )
                refuse_if("approve", found)
                approved = pending.model_copy(
                    update={"override": pending.override.model_copy(update={"second_by": by})}
                )
                return self._confirm_adjustment("approve", source, stamp, by, approved)
        held = self._data.pending_start_override
        if held is not None and source in (State.VERIFIED, State.PRIMED):
            return self._start(
                "approve",
                source,
                stamp,
                held.by,
                pump,
                prior_sessions,
                False,
                held.override(second_by=by),
                shown,
            )
        raise CommandRefused(
            "approve",
            [
                rules.hard(
                    "approve.nothing_pending",
                    "Nothing on this pump awaits a second person's approval.",
                )
            ],
        )

    # -- records --------------------------------------------------------------------

    def record_vitals(self, *, by: str, reading: VitalsReading, at: Stamp) -> Step:
        source = self._require("record_vitals")
        stamp = check_stamp(at)
        check_type("reading", reading, VitalsReading)
        try:
            check_entry(reading)
        except ImplausibleVitals as exc:
            raise InvalidCommandInput(f"vitals: {exc}") from exc
        refuse_if("record_vitals", rules.person("vitals", by, "vital signs"))
        record = VitalsRecord.of(reading, by, stamp)
        data = self._update(last_vitals=record, vitals_recorded=self._data.vitals_recorded + 1)
        return self._fire("record_vitals", source, source, data, audit=("vitals.recorded",))

    def note(self, *, by: str, text: str, at: Stamp) -> Step:
        source = self._require("note")
        stamp = check_stamp(at)
        verdicts = rules.person("note", by, "note")
        if not isinstance(text, str) or not text.strip():
            verdicts.append(rules.hard("note.empty", "A note needs some text."))
        refuse_if("note", verdicts)
        data = self._update(
            last_note=NoteRecord(text=text, by=by, at=At.of(stamp)),
            notes_recorded=self._data.notes_recorded + 1,
        )
        return self._fire("note", source, source, data, audit=("note.recorded",))

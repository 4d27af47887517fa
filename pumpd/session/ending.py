"""Ending a session: observation, end, discharge gates and discharge, abort."""

from __future__ import annotations

from collections.abc import Collection

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from safety import guards
from safety.verdicts import Verdict

from . import rules
from .core import CommandIntent, SessionCore, Step, check_stamp, check_text, refuse_if
from .errors import InvalidCommandInput, InvalidInState
from .records import At
from .states import State


class EndingCommands(SessionCore):
    """Watching the patient after delivery and closing the session."""

    # -- ending ---------------------------------------------------------------------

    def observe(self, *, by: str, at: Stamp, reason_code: str = "nurse.observe") -> Step:
        """Start watching the patient: after an early stop, or to end keep-vein-open.

        From KVO the pump is still running at the KVO rate, so the session goes to COMPLETE
        and the Step commands STOP; the observation starts when the pump confirms it (drug
        has stopped flowing). ``reason_code`` says who ended KVO (the kernel's
        ``tick.vtbi.kvo_complete`` when the daemon does it).
        """
        source = self._require("observe")
        stamp = check_stamp(at)
        check_text("reason_code", reason_code)
        verdicts = rules.person("observe", by, "observation")
        if source is State.KVO:
            refuse_if("observe", verdicts)
            command = CommandIntent(PumpCommand.STOP, reason_code=reason_code)
            data = self._update(pending_command=PumpCommand.STOP, requested_in=State.COMPLETE)
            return self._fire(
                "observe",
                source,
                State.COMPLETE,
                data,
                command=command,
                audit=("pump.command.requested",),
            )
        if not self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "observe.nothing_given",
                    "No infusion was started, so there is nothing to observe; abort instead.",
                )
            )
        refuse_if("observe", verdicts)
        data = self._update(observation_started_at=At.of(stamp))
        return self._fire(
            "observe", source, State.OBSERVATION, data, audit=("observation.started",)
        )

    def end(self, *, by: str, reason: str, at: Stamp) -> Step:
        """End an interrupted infusion instead of continuing it: the observation begins."""
        source = self._require("end")
        stamp = check_stamp(at)
        verdicts = rules.person("end", by, "end")
        verdicts += rules.reason_text("end.reason_missing", reason, "end")
        refuse_if("end", verdicts)
        data = self._update(ended_by=by, end_reason=reason, observation_started_at=At.of(stamp))
        return self._fire(
            "end", source, State.OBSERVATION, data, audit=("session.ended", "observation.started")
        )

    def _observed_s(self, stamp: Stamp) -> float:
        started = self._data.observation_started_at
        if started is None:
            raise AssertionError("unreachable: OBSERVATION is always entered with its start")
        return stamp.mono_s - started.mono_s

    def discharge_gates(self, at: Stamp) -> list[Verdict]:
        """The facts a discharge needs before any checklist question is worth asking: the
        protocol's observation time, and vital signs from the observation, recent and in
        the pause band (``safety.guards``). Reading only: nothing changes."""
        stamp = check_stamp(at)
        if self.state is not State.OBSERVATION:
            raise InvalidInState("discharge", self.state.value, self.allowed())
        proto = self._protocol.protocol
        observed_s = self._observed_s(stamp)
        gates = [
            v
            for v in guards.discharge_allowed(observed_s, proto.observation_min, (), ())
            if v.code == "discharge.observation_too_short"
        ]
        last = self._data.last_vitals
        started = self._data.observation_started_at
        assert started is not None
        during = last is not None and last.at.mono_s >= started.mono_s
        gates += guards.discharge_vitals(
            proto.vitals,
            None if last is None else last.reading(),
            None if last is None else max(0.0, stamp.mono_s - last.at.mono_s),
            during,
            proto.discharge_vitals_max_age_min,
        )
        return gates

    def discharge(self, *, by: str, checklist_confirmed: Collection[str], at: Stamp) -> Step:
        """Discharge after the protocol's observation time, with every checklist item ticked."""
        source = self._require("discharge")
        stamp = check_stamp(at)
        if isinstance(checklist_confirmed, str) or not all(
            isinstance(item, str) for item in checklist_confirmed
        ):
            raise InvalidCommandInput("checklist_confirmed must be a collection of item strings")
        proto = self._protocol.protocol
        verdicts = rules.person("discharge", by, "discharge")
        gates = self.discharge_gates(stamp)
        verdicts += gates
        confirmed = set(checklist_confirmed)
        if guards.DISCHARGE_VITALS_ITEM in proto.discharge_checklist:
            # A computed line: the vitals gate decides it, never a tick.
            confirmed.add(guards.DISCHARGE_VITALS_ITEM)
        verdicts += [
            v
            for v in guards.discharge_allowed(
                self._observed_s(stamp), proto.observation_min, proto.discharge_checklist, confirmed
            )
            if v not in gates
        ]
        refuse_if("discharge", verdicts)
        data = self._update(
            discharged_by=by,
            discharged_at=At.of(stamp),
            checklist_confirmed=tuple(i for i in proto.discharge_checklist),
        )
        return self._fire(
            "discharge",
            source,
            State.DISCHARGED,
            data,
            audit=("observation.ended", "patient.discharged"),
        )

    def abort(self, *, by: str, reason: str, at: Stamp) -> Step:
        """Abandon a session before any drug was given; after a start, stop and observe."""
        source = self._require("abort")
        check_stamp(at)
        verdicts = rules.person("abort", by, "abort")
        verdicts += rules.reason_text("abort.reason_missing", reason, "abort")
        if self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "abort.after_start",
                    "Drug may have reached the patient; the session must end in observation.",
                )
            )
        refuse_if("abort", verdicts)
        data = self._update(aborted_by=by, abort_reason=reason)
        return self._fire("abort", source, State.ABORTED, data, audit=("session.stopped",))

"""Acknowledging a latched alarm: where the session goes once a person has seen it."""

from __future__ import annotations

from pumpd.clock import Stamp
from safety.pump import PumpMode

from . import rules
from .core import SessionCore, Step, check_stamp, check_text, check_type, refuse_if
from .errors import InvalidCommandInput
from .records import AcknowledgedAlarm, At
from .states import State

EXCEEDED_CODE = "tick.vtbi.exceeded"
"""The kernel's alarm that the plan's volume was exceeded (``safety.delivery_rules.rule_vtbi``)."""


class AlarmCommands(SessionCore):
    """Acknowledging an alarm the session latched."""

    # -- alarms ---------------------------------------------------------------------

    def acknowledge(
        self,
        *,
        by: str,
        pump_mode: PumpMode,
        at: Stamp,
        note: str | None = None,
        delivered_ul: int | None = None,
    ) -> Step:
        """A nurse acknowledges the latched alarms; the pump's mode decides where to go.

        Never to INFUSING: a paused pump leads to PAUSED (the nurse resumes explicitly), an
        idle one to STOPPED, OBSERVATION or back before the start. A pump still delivering
        or still in alarm is refused: the controller must stop it, or the pump's own alarm
        be cleared, first. ``delivered_ul`` is what the pump, read for this acknowledgement,
        had delivered: an exceedance of the plan's volume is acknowledged at that figure.
        """
        source = self._require("acknowledge")
        stamp = check_stamp(at)
        check_type("pump_mode", pump_mode, PumpMode)
        check_text("note", note, optional=True)
        v = delivered_ul
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InvalidCommandInput(f"delivered_ul must be an integer ≥ 0 or None, got {v!r}")
        verdicts = rules.person("acknowledge", by, "acknowledgement")
        d = self._data
        post_delivery = d.completed_at is not None or d.observation_started_at is not None
        if pump_mode.delivers:
            verdicts.append(
                rules.hard(
                    "ack.pump_delivering",
                    f"The pump is still {pump_mode.value}; stop it before acknowledging.",
                )
            )
        elif pump_mode is PumpMode.ALARM:
            verdicts.append(
                rules.hard(
                    "ack.pump_in_alarm",
                    "The pump is still in alarm; clear the cause at the pump first.",
                )
            )
        elif (
            pump_mode is PumpMode.PAUSED
            and d.start_commanded
            and (post_delivery or d.stopped_at is not None)
        ):
            verdicts.append(
                rules.hard(
                    "ack.pump_not_idle",
                    "The pump still holds a paused program after the infusion ended; stop it "
                    "before acknowledging.",
                )
            )
        refuse_if("acknowledge", verdicts)
        at_rec = At.of(stamp)
        acked = tuple(AcknowledgedAlarm(alarm=a, by=by, note=note, at=at_rec) for a in d.alarms)
        changes: dict[str, object] = {
            "alarms": (),
            "last_acknowledged": acked,
            "vitals_alarm_acknowledged": (
                d.last_vitals.at
                if d.last_vitals is not None
                and any(a.code.startswith("tick.vitals.") for a in d.alarms)
                else d.vitals_alarm_acknowledged
            ),
            "vtbi_exceeded_acknowledged_ul": (
                delivered_ul
                if delivered_ul is not None and any(a.code == EXCEEDED_CODE for a in d.alarms)
                else d.vtbi_exceeded_acknowledged_ul
            ),
            "alarms_acknowledged": d.alarms_acknowledged + len(acked),
            "pending_command": None,
        }
        audit = ["alarm.acknowledged"]
        if not d.start_commanded:
            checked = d.confirmed_by is not None
            needed = self._protocol.protocol.double_check_required
            dest = State.PROGRAMMED if needed and not checked else State.VERIFIED
        elif post_delivery:
            dest = State.OBSERVATION
            if d.observation_started_at is None:
                changes["observation_started_at"] = at_rec
                audit.append("observation.started")
        elif d.stopped_at is not None:
            ended, ending = self._ended(at_rec)
            dest = State.OBSERVATION if ending else State.STOPPED
            changes.update(ended)
            audit += ending
        elif pump_mode is PumpMode.PAUSED:
            dest = State.PAUSED
            if d.paused_at is None:
                changes["paused_at"] = d.alarms[0].at if d.alarms else at_rec
        else:
            # The pump, read just now, is idle: that confirms the halt.
            ended, ending = self._ended(at_rec)
            dest = State.OBSERVATION if ending else State.STOPPED
            changes["stopped_at"] = at_rec
            changes.update(ended)
            if d.stop_reason_code is None:
                first = d.alarms[0] if d.alarms else None
                changes["stop_reason_code"] = first.code if first else "alarm"
                changes["stop_reason"] = first.message if first else "stopped by an alarm"
            audit += ["session.stopped", *ending]
        if d.last_uncertain is not None and d.last_uncertain.resolved_to is None:
            changes["last_uncertain"] = d.last_uncertain.model_copy(
                update={"resolved_to": dest, "resolved_at": at_rec}
            )
        return self._fire(
            "acknowledge", source, dest, self._update(**changes), audit=audit, proposed_plan=None
        )

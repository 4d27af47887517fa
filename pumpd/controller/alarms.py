"""The alarm board of one pump: what is shown to the nurse besides the session's latch.

The session latches the alarms that stop or hold an infusion; the board keeps the rest:
the daemon's own notices (no session, the audit store down, a low battery while the
infusion rightly goes on), the alarms announced but not yet latched (their
``alarm.raised`` goes out the moment the tick decides; docs/controller.md, "Alarm
first"), the reminders in their latest words, the low-priority alarms acknowledged while
their cause lasts, and the correlation id that links each alarm to its acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pumpd.audit import Actor, NewEvent
from pumpd.session import Session
from pumpd.session.records import AlarmSource
from safety.actions import Action, Priority

from .events import EventBuilder
from .journal import new_correlation

Log = Callable[[Sequence[NewEvent]], None]
AUDIT_ALARM = "audit.write_failed"


@dataclass(frozen=True, slots=True)
class Notice:
    """An alarm of the daemon's own that no session latches (no session, audit store down,
    a low battery while the infusion rightly goes on)."""

    code: str
    priority: Priority
    message: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Announced:
    """An alarm whose ``alarm.raised`` is queued, not yet latched in the session: the event
    goes out the moment the tick decides, the session latches it after the STOP's round
    trip (docs/controller.md, "Alarm first"); the latch reuses this text and correlation."""

    priority: Priority
    message: str
    source: AlarmSource
    correlation_id: str


@dataclass(frozen=True, slots=True)
class AlarmView:
    code: str
    priority: str
    message: str
    source: str


def alarm_source(code: str) -> AlarmSource:
    if code.startswith("tick.pump.alarm"):
        return "pump"
    if code.startswith("tick.vitals"):
        return "vitals"
    return "kernel" if code.startswith("tick.") else "daemon"


class AlarmBoard:
    """One pump's notices, announcements, reminders and alarm correlation ids."""

    def __init__(self, events: EventBuilder, log: Log) -> None:
        self._events = events
        self._log = log
        self._notices: dict[str, Notice] = {}
        self._announced: dict[str, Announced] = {}
        self._acked_low: set[str] = set()
        """Low-priority alarm codes acknowledged while their cause lasts (until it ends)."""
        self._reminders: dict[str, str] = {}
        self._alarm_ids: dict[str, str] = {}

    # -- what is shown -----------------------------------------------------------------

    @property
    def notices(self) -> tuple[Notice, ...]:
        return tuple(self._notices.values())

    @property
    def reminders(self) -> tuple[str, ...]:
        return tuple(self._reminders.values())

    def views(self, s: Session | None) -> tuple[AlarmView, ...]:
        """The session's latched alarms, then those announced, then the notices."""
        alarms = [
            AlarmView(a.code, a.priority.value, a.message, a.source)
            for a in (s.data.alarms if s is not None else ())
        ]
        latched = {a.code for a in alarms}
        alarms += [
            AlarmView(code, a.priority.value, a.message, a.source)
            for code, a in self._announced.items()
            if code not in latched
        ]
        alarms += [
            AlarmView(n.code, n.priority.value, n.message, "daemon") for n in self._notices.values()
        ]
        return tuple(alarms)

    def new_session(self) -> None:
        """A new session shows nothing of the last one's reminders and announcements."""
        self._reminders.clear()
        self._announced.clear()

    # -- announced, latched ------------------------------------------------------------

    def announced(self, code: str) -> Announced | None:
        return self._announced.get(code)

    def latched(self, code: str) -> None:
        """The session latched ``code`` (its ``alarm.raised`` was written before)."""
        self._announced.pop(code, None)

    def announce(
        self, s: Session, actions: Sequence[Action], text_of: Callable[[Action], str]
    ) -> None:
        """Queue ``alarm.raised`` for each new alarm now, before any command is sent."""
        for a in actions:
            if a.code in self._announced or any(x.code == a.code for x in s.data.alarms):
                continue
            said = Announced(a.priority, text_of(a), alarm_source(a.code), new_correlation("alarm"))
            self._announced[a.code] = said
            self._log([self._raised_event(s, a.code, said)])

    def _raised_event(self, s: Session | None, code: str, said: Announced) -> NewEvent:
        return self._events.alarm_raised(
            s, code, said.priority.value, said.source, said.message, said.correlation_id
        )

    def raised_id(self, code: str) -> tuple[str, bool]:
        """The correlation of the alarm ``code`` the session latches now, and whether its
        ``alarm.raised`` was written already (announced when the tick decided)."""
        said = self._announced.pop(code, None)
        corr = said.correlation_id if said is not None else new_correlation("alarm")
        self._alarm_ids[code] = corr
        return corr, said is not None

    def acknowledged_id(self, code: str) -> str:
        return self._alarm_ids.pop(code, "") or new_correlation("alarm")

    # -- notices ---------------------------------------------------------------------

    def notice(self, code: str, priority: Priority, message: str, s: Session | None) -> None:
        """Show a daemon notice (once per code) and write its ``alarm.raised``; ``s`` is
        the live session, if any, the event names."""
        if code in self._notices:
            return
        said = self._announced.pop(code, None)
        if said is not None:  # its alarm.raised is already written
            self._notices[code] = Notice(code, priority, said.message, said.correlation_id)
            return
        said = Announced(priority, message, "daemon", new_correlation("alarm"))
        self._notices[code] = Notice(code, priority, message, said.correlation_id)
        self._log([self._raised_event(s, code, said)])

    def acknowledgeable(self, held: bool, s: Session | None) -> list[tuple[str, str]]:
        """(code, message) of what an acknowledgement would clear now: the notices (not
        the audit-log alarm while events are ``held``) and, for a session in ALARM
        (``s``), its latched alarms."""
        out = [
            (n.code, n.message)
            for n in self._notices.values()
            if not (n.code == AUDIT_ALARM and held)
        ]
        if s is not None:
            out += [(a.code, a.message) for a in s.data.alarms]
        return out

    def acknowledge_notices(
        self, by: Actor, note: str | None, held: bool, s: Session | None
    ) -> tuple[int, bool]:
        """Clear the notices (the audit-log alarm stays while events are ``held``); the
        number cleared and whether the audit-log alarm stayed."""
        cleared, kept = 0, False
        for n in list(self._notices.values()):
            if n.code == AUDIT_ALARM and held:
                kept = True
                continue
            del self._notices[n.code]
            cleared += 1
            self._log([self._events.alarm_acknowledged(by, n.code, note, s, n.correlation_id)])
        return cleared, kept

    # -- low-priority alarms a nurse has seen -----------------------------------------

    def seen_low(self, code: str, priority: Priority) -> bool:
        """A low-priority alarm acknowledged while its cause lasts: a notice from then on
        (latched again at every tick, the session could never leave ALARM)."""
        return priority is Priority.LOW and code in self._acked_low

    def acked_low(self, codes: set[str]) -> None:
        self._acked_low |= codes

    def lasting(self, codes: set[str]) -> None:
        """Keep the acknowledged low-priority codes whose cause is still reported."""
        self._acked_low &= codes

    # -- reminders -------------------------------------------------------------------

    def remind(self, actions: Sequence[Action], s: Session | None) -> None:
        """Show every reminder in its latest words; record each reminder code once.

        A reminder's words move on while its code stays (the age of overdue vitals), so the
        display takes them at every tick. ``reminder.issued`` is written when a code is new:
        a reminder that must sound again carries its number in the code (the pause ladder,
        input pending), which is when the kernel re-issues it.
        """
        current = {a.code: a.message for a in actions}
        priority = {a.code: a.priority.value for a in actions}
        fresh = [code for code in current if code not in self._reminders]
        self._reminders = current
        if s is None:
            return
        self._log([self._events.reminder(s, code, current[code], priority[code]) for code in fresh])

"""The pump as pumpd last saw it, and the kernel's inputs made from that.

Every reading, whoever made it (a poll, a command's confirmation, a nurse's
acknowledgement), comes through :meth:`PumpObservation.observe`: the snapshot is made
once, a restart (uptime or command number went back) or a counter that went back is
judged once, the ledger is re-anchored at once, and the kernel is shown the last reading
before the loss at its next tick. :meth:`PumpObservation.tick_inputs` is the one place the
kernel's :class:`~safety.tick.TickInputs` are made.
"""

from __future__ import annotations

import enum
from decimal import Decimal

from pumpd.clock import Clock, Stamp
from pumpd.drivers import PumpStatus
from pumpd.session import Session, Step
from safety.pump import PumpSnapshot, restart_evidence
from safety.tick import TickInputs

from .ledger import Ledger
from .pending import pending_input
from .translate import MODE_OF, to_snapshot


class _Halt(enum.Enum):
    """Where the halts of an outage stand (``first_halt_on_comm``, ``stop_owed``)."""

    NONE = "none"
    SENT_DARK = "sent without a reading"
    OWED = "owed once a reading is back"


class PumpObservation:
    """Readings, reachability, restart detection and the ledger they re-anchor."""

    def __init__(self, clock: Clock, ledger: Ledger) -> None:
        self._clock = clock
        self.ledger = ledger
        self._status: PumpStatus | None = None
        self._status_snapshot: PumpSnapshot | None = None
        """The kernel's view of ``_status``, made once per reading."""
        self._ticked: PumpSnapshot | None = None
        self._lost_from: PumpSnapshot | None = None
        self._rearm_failsafe = False
        self._last_good_s = clock.monotonic()
        self._read_at_s = self._last_good_s
        self._unreachable_since: float | None = None
        self._halt = _Halt.OWED
        """Whether a halt demand is sent whatever the session's state (``stop_owed``)."""
        self._pushed: PumpStatus | None = None
        """The status a pump's alarm packet made (``pushed``), not a reading."""

    # -- what is known ---------------------------------------------------------------

    @property
    def status(self) -> PumpStatus | None:
        """The last reading (kept while the pump does not answer)."""
        return self._status

    @property
    def snapshot(self) -> PumpSnapshot | None:
        """The kernel's view of the last reading; None while the pump does not answer."""
        return None if self._unreachable_since is not None else self._status_snapshot

    @property
    def reachable(self) -> bool:
        return self._unreachable_since is None and self._status is not None

    @property
    def read_at_s(self) -> float:
        """When the pump sampled its counter for the last reading (controller clock)."""
        return self._read_at_s

    @property
    def rearm_failsafe(self) -> bool:
        """The pump restarted and has not had its failsafe timeout written since."""
        return self._rearm_failsafe

    def failsafe_armed(self) -> None:
        self._rearm_failsafe = False

    def delivered_ul(self) -> int:
        """Delivered to this session by the pump's own counter (0 before the start)."""
        return self.ledger.delivered_ul(self._status)

    def snapshot_of(self, status: PumpStatus) -> PumpSnapshot:
        if status is self._status and self._status_snapshot is not None:
            return self._status_snapshot
        return to_snapshot(status)

    # -- readings --------------------------------------------------------------------

    def unreachable(self, since_s: float) -> bool:
        """A read failed; True when that begins an outage (its event is written once)."""
        first = self._unreachable_since is None
        if first:
            self._unreachable_since = since_s
        return first

    def read(self, status: PumpStatus, sent_s: float) -> None:
        """A status read sent at ``sent_s`` answered with ``status``."""
        self.observe(status)
        # The pump sampled its counter somewhere between sending and answering: the middle
        # is the moment the expected volume is compared at (half a round trip at most off).
        self._read_at_s = (sent_s + self._last_good_s) / 2

    def pushed(self, status: PumpStatus) -> None:
        """The status the pump's own alarm packet made (``PushedAlarm``): observed like a
        reading, but its volumes are the last reading's, so they are compared with the
        expected volume at that reading's moment, and it proves no fact to the session."""
        read_at_s = self._read_at_s
        self.observe(status)
        self._read_at_s = read_at_s
        self._pushed = status

    def observe(self, status: PumpStatus) -> None:
        """Any reading (a poll's, a command's confirmation)."""
        previous, previous_snap = self._status, self._status_snapshot
        previous_at_s = self._read_at_s
        self._last_good_s = self._clock.monotonic()
        self._read_at_s = self._last_good_s
        if self._unreachable_since is not None or self._halt is _Halt.SENT_DARK:
            self._halt = _Halt.OWED  # an outage ended: its STOP may never have arrived
        self._unreachable_since = None
        self._status = status
        self._status_snapshot = to_snapshot(status)
        if previous is not None and previous_snap is not None:
            self._counter_check(previous, previous_snap, previous_at_s, status)
        self.ledger.observed(status)

    def _counter_check(
        self,
        previous: PumpStatus,
        previous_snap: PumpSnapshot,
        previous_at_s: float,
        status: PumpStatus,
    ) -> None:
        """A reading whose uptime or counter went down: the pump restarted (or its counter
        went back). Whatever read it (a poll, a command's confirmation, a nurse's
        acknowledgement), the accounting is re-anchored at once and a restarted pump's
        failsafe is armed again; the kernel names the event at its next tick, once.

        A restarted pump has no program: nothing is commanded at it any more, so the
        expected volume stops where the pump was last seen delivering (``previous_at_s``),
        and any volume it shows from now on is more than expected."""
        assert self._status_snapshot is not None  # made from ``status`` by observe
        rebooted = restart_evidence(previous_snap, self._status_snapshot) is not None
        if not rebooted and status.volume_infused_ul >= previous.volume_infused_ul:
            return
        if rebooted:
            self._rearm_failsafe = True
        if self._lost_from is None:
            # What the kernel compares with at its next tick, even when it has not ticked
            # since the last reading before the loss (a command held the loop meanwhile).
            self._lost_from = previous_snap
        known = 0
        acct = self.ledger.account
        if acct is not None:
            known = acct.delivered_ul(previous.volume_infused_ul)
            if rebooted:
                acct.set_rate(Decimal(0), previous_at_s)
        self.ledger.counter_lost(
            known, status, rebooted=rebooted, known_at_ul=previous.volume_infused_ul
        )

    def proves_nothing(self, status: PumpStatus) -> bool:
        """A reading after a restart proves nothing to the session; the kernel judges the
        restart at its next tick. Nor does an alarm packet: it says only the alarm."""
        if self._lost_from is not None or status is self._pushed:
            return True
        return (
            self._ticked is not None
            and restart_evidence(self._ticked, self.snapshot_of(status)) is not None
        )

    def first_halt_on_comm(self) -> bool:
        """One stop per outage: True the first time a halt is demanded without a reading."""
        first = self._halt is not _Halt.SENT_DARK
        self._halt = _Halt.SENT_DARK
        return first

    def stop_owed(self) -> bool:
        """True for the first halt demanded on a reading after an outage, and the daemon's
        own downtime is one: a STOP sent (or in flight) before it may never have arrived,
        and the pump may have raised an alarm meanwhile (a New Era pump's watchdog, which
        its driver latches until a confirmed STOP ends it: H80). A STOP is always safe to
        send, so that halt goes to the pump even when the session is already in ALARM."""
        owed = self._halt is _Halt.OWED
        self._halt = _Halt.NONE
        return owed

    def acknowledge(
        self, s: Session, by: str, note: str | None, status: PumpStatus, at: Stamp
    ) -> Step:
        """A nurse's acknowledgement on ``status``, read for it just now: the pump's mode
        says where the session goes, and what it had delivered is the figure an exceedance
        of the plan's volume is acknowledged at (the kernel's
        ``TickInputs.vtbi_exceeded_acknowledged_ul``)."""
        mode, delivered_ul = MODE_OF[status.state], self.ledger.delivered_ul(status)
        return s.acknowledge(by=by, pump_mode=mode, note=note, at=at, delivered_ul=delivered_ul)

    # -- the kernel's view -----------------------------------------------------------

    def ticked(self, snap: PumpSnapshot | None) -> None:
        """The kernel judged ``snap`` (the reading the tick began with): the next tick
        compares with it, not with the one before a loss, which this tick has judged."""
        if snap is not None:
            self._ticked, self._lost_from = snap, None

    def tick_inputs(
        self, s: Session, now: float, *, volume_stop_primary: bool = False
    ) -> TickInputs:
        """The kernel's inputs for ``s`` at ``now`` (``volume_stop_primary``: the pump has no
        stop at its own volume, pumpd's ends the infusion); raises the kernel's
        :class:`~safety.tick.InvalidTickInput` for bookkeeping it refuses."""
        snap = self.snapshot
        acct = self.ledger.account
        # The counter is compared with the expected volume at the moment it was read, not
        # at this later tick (a heartbeat write lies between the two): like with like.
        read_at = min(self._read_at_s, now) if snap is not None else now
        vitals = s.data.last_vitals
        waits = pending_input(s)
        return TickInputs(
            now_s=now,
            phase=s.phase(),
            commanded_rate_ml_h=acct.rate_ml_h if acct else Decimal(0),
            commanded_vtbi_ul=s.plan.vtbi_ul,
            rate_commanded_at_s=min(acct.rate_since_s, now) if acct else now,
            snapshot=snap,
            previous_snapshot=self._lost_from or self._ticked,
            last_good_comm_s=min(self._last_good_s, now),
            delivery_elapsed_s=acct.delivery_elapsed_s(now) if acct else None,
            expected_volume_ul=acct.expected_ul(read_at) if acct else 0,
            volume_at_start_ul=acct.volume_at_start_ul if acct else self.ledger.baseline_ul,
            delivered_before_ul=acct.delivered_before_ul if acct else 0,
            vitals=None if vitals is None else vitals.reading(),
            vitals_taken_s=None if vitals is None else min(vitals.at.mono_s, now),
            paused_since_s=s.paused_since_s(),
            pending_input=None if waits is None else waits.kind,
            input_pending_since_s=None if waits is None else min(waits.since_s, now),
            latched_alarm_priority=None if waits is None else waits.latched_alarm_priority,
            vitals_acknowledged=vitals is not None
            and s.data.vitals_alarm_acknowledged == vitals.at,
            vtbi_exceeded_acknowledged_ul=s.data.vtbi_exceeded_acknowledged_ul,
            volume_stop_primary=volume_stop_primary,
        )

"""The per-pump supervising controller: one poll loop, one session, one pump.

Every poll reads the pump, heartbeats it, reports what the reading proves to the session
(a prime finished, the planned volume is in, an uncertain command settled), asks the
safety kernel and obeys it at once. Nurse commands and polls take the same lock, so a
command and a tick never interleave: nothing is ticked between sending a command and
reading its result.

Write-ahead: an intent event is durable before the pump is commanded. For anything that
moves fluid (prime, start, resume, a new rate) a failed write means the command is not
sent and the session is put back exactly as it was. A stop or pause goes to the pump even
when the write fails or hangs; the failure is then an alarm of its own and the events are
written as soon as the store answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pumpd.audit.store import Actor, NewEvent
from pumpd.audit.writer import AsyncAuditWriter
from pumpd.clock import Clock, Stamp, stamp
from pumpd.controller.capability import CapabilityGate
from pumpd.drivers.base import DriverError, PumpDriver, PumpStatus
from pumpd.drivers.capabilities import PumpCapabilities
from pumpd.protocols import LoadedProtocol
from pumpd.session import CommandIntent, DeliveryFacts, PumpCommand, Session, State, Step
from pumpd.session.errors import CommandRefused
from pumpd.session.records import AlarmSource, OverrideRecord
from safety.actions import Action, ActionKind, Priority
from safety.course import PriorSession
from safety.guards import pump_fit
from safety.order import Override
from safety.plan import Order, Patient, Plan
from safety.pump import PumpMode, PumpSnapshot, restart_evidence, restart_evidence_of
from safety.start import start_requirements
from safety.tick import (
    InvalidTickInput,
    SupervisionLimits,
    TickDecision,
    TickInputs,
    evaluate,
    kvo_complete,
    supervision_limits,
)
from safety.verdicts import Severity, Verdict
from safety.vitals import VitalsReading

from . import logline
from .accounting import VolumeAccount
from .config import ControllerConfig, real_seconds
from .errors import (
    AlarmNotSeen,
    AuditUnavailable,
    NoSession,
    NothingToAcknowledge,
    PumpNotAnswering,
    SessionActive,
)
from .executor import Executor, Outcome, Result, Setpoints
from .journal import Journal, actor_for, code_of, dose_mg, new_correlation, supervision_record
from .pending import pending_input
from .syringe_check import syringe_unfit
from .translate import MODE_OF, alarm_message, to_snapshot
from .wake import until_poll_or_push

TERMINAL = frozenset({State.DISCHARGED, State.ABORTED})
MOVING = frozenset({PumpCommand.PRIME, PumpCommand.START, PumpCommand.RESUME, PumpCommand.SET_RATE})
DAEMON = "pumpd"
_HALT_KINDS = (ActionKind.STOP, ActionKind.PAUSE)


@dataclass(frozen=True, slots=True)
class Notice:
    """An alarm of the daemon's own that no session latches (no session, audit store down,
    a low battery while the infusion rightly goes on)."""

    code: str
    priority: Priority
    message: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class _Announced:
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


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """What the control socket shows for one pump."""

    pump_id: str
    reachable: bool
    pump_state: str | None
    session_id: str | None
    session_state: str | None
    delivered_ul: int
    expected_ul: int
    vtbi_ul: int | None
    rate_ml_h: str | None
    alarms: tuple[AlarmView, ...]
    reminders: tuple[str, ...]
    audit_backlog: int


@dataclass(slots=True)
class _Ctx:
    """What the events of one step need besides the session."""

    correlation_id: str | None = None
    command: CommandIntent | None = None
    outcome: Outcome | None = None
    extra: list[NewEvent] = field(default_factory=list)


class Controller:
    """Supervises one pump; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        *,
        driver: PumpDriver,
        writer: AsyncAuditWriter,
        clock: Clock,
        config: ControllerConfig,
    ) -> None:
        self.config = config
        self._driver = driver
        self._clock = clock
        self._journal = Journal(writer, config.pump_id)
        self._executor = Executor(
            driver, clock, timeout_s=config.command_timeout_s, stop_attempts=config.stop_attempts
        )
        self._lock = asyncio.Lock()
        self._gate = CapabilityGate(
            driver.capabilities,
            simulation=config.simulation,
            no_watchdog_accepted=config.accept_no_pump_watchdog,
        )
        self._session: Session | None = None
        self._limits: SupervisionLimits | None = None
        self._account: VolumeAccount | None = None
        self._baseline_ul = 0
        self._start_counter_ul = 0
        self._status: PumpStatus | None = None
        self._status_snapshot: PumpSnapshot | None = None
        """The kernel's view of ``_status``, made once per reading."""
        self._snapshot: PumpSnapshot | None = None
        self._ticked: PumpSnapshot | None = None
        self._rearm_failsafe = False
        self._lost_from: PumpSnapshot | None = None
        self._last_good_s = clock.monotonic()
        self._read_at_s = self._last_good_s
        self._unreachable_since: float | None = None
        self._halted_on_comm = False
        self._pending_sent_s: float | None = None
        self._notices: dict[str, Notice] = {}
        self._announced: dict[str, _Announced] = {}
        self._acked_low: set[str] = set()
        """Low-priority alarm codes acknowledged while their cause lasts (until it ends)."""
        self._pause_words: str | None = None
        self._reminders: dict[str, str] = {}
        self._alarm_ids: dict[str, str] = {}
        self.polls = 0
        self.last_poll_s = clock.monotonic()
        self._checkpoint_mark: tuple[int, State, Decimal | None] | None = None
        self._checkpointed: tuple[dict[str, Any], Decimal | None] | None = None
        self._checkpointed_at_s = clock.monotonic()

    # -- reading -------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def last_status(self) -> PumpStatus | None:
        return self._status

    @property
    def capabilities(self) -> PumpCapabilities:
        return self._gate.capabilities

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def notices(self) -> tuple[Notice, ...]:
        return tuple(self._notices.values())

    def delivered_ul(self) -> int:
        """Delivered to this session by the pump's own counter (0 before the start)."""
        if self._account is None or self._status is None:
            return 0
        return max(0, self._account.delivered_ul(self._status.volume_infused_ul))

    def expected_ul(self) -> int:
        if self._account is None:
            return 0
        return self._account.expected_ul(self._clock.monotonic())

    def status(self) -> ControllerStatus:
        s = self._session
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
        return ControllerStatus(
            pump_id=self.config.pump_id,
            reachable=self._unreachable_since is None and self._status is not None,
            pump_state=None if self._status is None else self._status.state.value,
            session_id=None if s is None else s.data.session_id,
            session_state=None if s is None else s.state.value,
            delivered_ul=self.delivered_ul(),
            expected_ul=self.expected_ul(),
            vtbi_ul=None if s is None else s.plan.vtbi_ul,
            rate_ml_h=None if self._account is None else format(self._account.rate_ml_h, "f"),
            alarms=tuple(alarms),
            reminders=tuple(self._reminders.values()),
            audit_backlog=len(self._journal.backlog),
        )

    def pause_auto_stop_mono_s(self) -> float | None:
        """When (monotonic seconds) the kernel's pause rule ends the pause in progress, for
        a countdown on the nurses' screens; None when delivery is not paused."""
        s, limits = self._session, self._limits
        if s is None or limits is None:
            return None
        since = s.paused_since_s()
        return None if since is None else since + limits.pause_stop_after_s

    # -- running -------------------------------------------------------------------

    async def attach(self) -> None:
        """Arm the pump's own failsafe; call once the driver is connected."""
        async with self._lock:
            await self._driver.set_heartbeat_timeout(self.config.heartbeat_timeout_s)
            await self._read()

    async def run(self) -> None:
        """Poll until cancelled. Cancelling is how the daemon dies; the pump then stops
        itself when the heartbeat goes quiet."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.poll()
            step_real = real_seconds(self._clock, self._next_read_in_s())
            next_at += step_real
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0
            if await until_poll_or_push(self._driver, delay):
                next_at -= step_real  # an extra poll now; the regular one keeps its time

    def _next_read_in_s(self) -> float:
        """The poll period; sooner when pumpd's own stop ends the infusion and the plan's
        volume falls due before the next poll (safety/capability.py)."""
        s, acct = self._session, self._account
        if s is None or acct is None or s.state is not State.INFUSING:
            return self.config.poll_period_s
        left_ul = s.plan.vtbi_ul - self.delivered_ul()
        return self._gate.next_read_in_s(self.config.poll_period_s, left_ul, acct.rate_ml_h)

    async def poll(self) -> None:
        async with self._lock:
            await self._poll()

    async def _poll(self) -> None:
        self.polls += 1
        status = await self._read()
        self._journal.flush()
        if self._journal.stalled(self.config.intent_wait_s) or self._journal.degraded:
            self._audit_failed()
        # The reading is judged, and any halt commanded, before the heartbeat: on a line
        # shared by many pumps the heartbeat's write waits its turn, and a reaction must
        # not wait for it (docs/controller.md, "One poll").
        if status is not None:
            await self._status_facts(status)
        await self._supervise()
        if status is not None:
            # A failed heartbeat shows in the next read; a rebooted pump forgot its
            # failsafe timeout, so it is armed again at once (retried while it fails).
            with contextlib.suppress(DriverError):
                await self._driver.heartbeat()
            if self._rearm_failsafe:
                with contextlib.suppress(DriverError):
                    await self._driver.set_heartbeat_timeout(self.config.heartbeat_timeout_s)
                    self._rearm_failsafe = False
        self._checkpoint()
        self.last_poll_s = self._clock.monotonic()

    async def _read(self) -> PumpStatus | None:
        before = self._clock.monotonic()
        try:
            status = await self._driver.read_status()
        except DriverError as exc:
            if self._unreachable_since is None:
                self._unreachable_since = before
                self._log(
                    [
                        self._journal.event(
                            "pump.unreachable",
                            {
                                "error_code": "read_failed",
                                "detail": str(exc)[:500] or "no reply",
                                "unreachable_ms": 0,
                            },
                            Actor.daemon(),
                        )
                    ]
                )
            self._snapshot = None
            return None
        self._observe(status)
        # The pump sampled its counter somewhere between sending and answering: the middle
        # is the moment the expected volume is compared at (half a round trip at most off).
        self._read_at_s = (before + self._last_good_s) / 2
        return status

    def _observe(self, status: PumpStatus) -> None:
        previous, previous_snap = self._status, self._status_snapshot
        previous_at_s = self._read_at_s
        self._last_good_s = self._clock.monotonic()
        self._read_at_s = self._last_good_s
        self._unreachable_since = None
        self._halted_on_comm = False
        self._status = status
        self._status_snapshot = self._snapshot = to_snapshot(status)
        if previous is not None and previous_snap is not None:
            self._counter_check(previous, previous_snap, previous_at_s, status)
        if self._account is None:
            self._baseline_ul = status.volume_infused_ul

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
        assert self._status_snapshot is not None  # made from ``status`` by _observe
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
        if self._account is not None:
            known = self._account.delivered_ul(previous.volume_infused_ul)
            if rebooted:
                self._account.set_rate(Decimal(0), previous_at_s)
        self._counter_lost(known, status, rebooted=rebooted)

    def _counter_lost(self, known_ul: int, status: PumpStatus, *, rebooted: bool) -> None:
        """The pump's counter no longer continues the session's: keep the ``known_ul``
        delivered and count on from the new counter (its rise since the restart, from 0,
        for a pump that restarted; from this reading for a counter that went back). The
        live loop and restart recovery share this; nothing is commanded here."""
        self._baseline_ul = status.volume_infused_ul
        if self._account is None:
            return
        self._account.counter_restarted(known_ul, 0 if rebooted else status.volume_infused_ul)
        # The pump's VTBI register counts on the new counter (only a resume would use it).
        self._start_counter_ul = (
            self._account.volume_at_start_ul - self._account.delivered_before_ul
        )

    def _snapshot_of(self, status: PumpStatus) -> PumpSnapshot:
        if status is self._status and self._status_snapshot is not None:
            return self._status_snapshot
        return to_snapshot(status)

    # -- what a reading proves -------------------------------------------------------

    async def _status_facts(self, status: PumpStatus) -> None:
        s = self._session
        if s is None:
            return
        if self._lost_from is not None or (
            self._ticked is not None
            and restart_evidence(self._ticked, self._snapshot_of(status)) is not None
        ):
            return  # a rebooted pump proves nothing; the kernel judges the reboot
        mode = MODE_OF[status.state]
        now = self._now()
        if s.state is State.UNCERTAIN:
            pending = s.data.last_uncertain
            step = s.reconciled(pump_mode=mode, rate_ml_h=status.rate_actual_ml_h, at=now)
            self._account_after(pending.command if pending else None, step.dest, status)
            self._record(step, DAEMON, _Ctx())
        elif s.state is State.PRIMING and mode is PumpMode.IDLE:
            step = s.prime_complete(volume_primed_ul=status.volume_primed_ul, at=now)
            self._record(step, DAEMON, _Ctx())
        elif (
            s.state is State.INFUSING
            and self._account is not None
            and self._account.delivered_ul(status.volume_infused_ul) >= s.plan.vtbi_ul
        ):
            step = s.vtbi_reached(pump_mode=mode, at=now)
            if step.dest is State.KVO:
                # Prescribed keep-vein-open: the pump goes on at the KVO rate, and so does
                # the independent accounting; the kernel's KVO rules supervise it.
                due_s = self._account.reached_s(s.plan.vtbi_ul, now.mono_s)
                self._account.set_rate(s.plan.kvo_rate_ml_h, due_s)
                self._record(step, DAEMON, _Ctx())
                return
            still_running = mode.delivers
            await self._carry_out(step, DAEMON)
            if still_running and self._gate.past_volume_is_fault():
                over_ul = self.delivered_ul() - s.plan.vtbi_ul
                self._latch(
                    [
                        Action(
                            ActionKind.STOP,
                            Priority.HIGH,
                            "pump.vtbi_ignored",
                            f"The pump went on past its programmed volume; pumpd stopped it "
                            f"{over_ul} µL over the plan.",
                            "controller.vtbi",
                        )
                    ],
                    effect="stopped",
                )
        elif s.state is State.KVO:
            await self._end_kvo_when_used(s, status, now)

    async def _end_kvo_when_used(self, s: Session, status: PumpStatus, now: Stamp) -> None:
        """Keep-vein-open ends when the kernel's test says its allowance is used; the
        observation starts once the pump confirms the stop (docs/controller.md, KVO)."""
        acct, limits = self._account, self._limits
        if acct is None or limits is None or MODE_OF[status.state] is not PumpMode.KVO:
            return
        delivered = acct.delivered_ul(status.volume_infused_ul)
        if kvo_complete(limits, delivered, acct.expected_ul(now.mono_s)):
            step = s.observe(by=DAEMON, at=now, reason_code="tick.vtbi.kvo_complete")
            await self._carry_out(step, DAEMON)

    def _account_after(
        self, command: PumpCommand | None, dest: State, status: PumpStatus | None
    ) -> None:
        at = self._pending_sent_s if self._pending_sent_s is not None else self._clock.monotonic()
        s = self._session
        if s is None:
            return
        if dest is State.INFUSING and command is PumpCommand.START:
            self._account = VolumeAccount(self._start_counter_ul, s.plan.rate_ml_h, at)
        elif dest is State.INFUSING and self._account is not None:
            self._account.set_rate(s.plan.rate_ml_h, at)
        elif self._account is not None and (
            command in (PumpCommand.STOP, PumpCommand.PAUSE)
            or (status is not None and not MODE_OF[status.state].delivers)
        ):
            self._account.set_rate(Decimal(0), at)
        self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)

    # -- the kernel ----------------------------------------------------------------

    async def _supervise(self) -> None:
        s = self._session
        snap = self._snapshot
        if s is None or s.state in TERMINAL or self._limits is None:
            await self._orphan_check(snap)
            if snap is not None:
                # The next session's first tick compares with this pump as it is now, not
                # as the last session left it (a restart in between is nobody's event).
                self._ticked, self._lost_from = snap, None
            return
        now = self._clock.monotonic()
        acct = self._account
        # The counter is compared with the expected volume at the moment it was read, not
        # at this later tick (a heartbeat write lies between the two): like with like.
        read_at = min(self._read_at_s, now) if snap is not None else now
        vitals = s.data.last_vitals
        waits = pending_input(s)
        try:
            inputs = TickInputs(
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
                volume_at_start_ul=acct.volume_at_start_ul if acct else self._baseline_ul,
                delivered_before_ul=acct.delivered_before_ul if acct else 0,
                vitals=None if vitals is None else vitals.reading(),
                vitals_taken_s=None if vitals is None else min(vitals.at.mono_s, now),
                paused_since_s=s.paused_since_s(),
                pending_input=None if waits is None else waits.kind,
                input_pending_since_s=None if waits is None else min(waits.since_s, now),
                latched_alarm_priority=None if waits is None else waits.latched_alarm_priority,
                vitals_acknowledged=vitals is not None
                and s.data.vitals_alarm_acknowledged == vitals.at,
            )
            decision = evaluate(self._limits, inputs)
        except InvalidTickInput as exc:
            # The kernel says: broken bookkeeping is treated as a stop with a high alarm.
            decision = TickDecision(
                (
                    Action(
                        ActionKind.STOP,
                        Priority.HIGH,
                        "controller.bookkeeping",
                        f"pumpd's own figures are inconsistent ({exc}); the infusion is stopped.",
                        "controller.tick",
                    ),
                )
            )
        own = self._own_rules(s, now)
        if own:
            merged = sorted(
                (*own, *decision.actions), key=lambda a: (-a.kind.rank, -a.priority.rank)
            )
            decision = TickDecision(tuple(merged))
        await self._obey(decision, snap)
        if snap is not None:
            self._ticked, self._lost_from = snap, None

    def _own_rules(self, s: Session, now_s: float) -> list[Action]:
        """The controller's own check where the kernel has none: priming must end.

        A pump whose prime counter stops (a stuck sensor) would prime for ever; twice the
        planned priming time plus ten seconds is the bound.
        """
        d = s.data
        if s.state is not State.PRIMING or d.prime_requested_at is None:
            return []
        proto = s.protocol.protocol
        rate_ul_s = proto.priming.rate_ml_h * 1000 / 3600
        planned_s = float(start_requirements(proto).prime_volume_ul / rate_ul_s)
        running_s = now_s - d.prime_requested_at.mono_s
        if running_s <= 2 * planned_s + 10:
            return []
        return [
            Action(
                ActionKind.STOP,
                Priority.MEDIUM,
                "controller.prime.too_long",
                f"Priming has run {running_s:.0f} s, planned {planned_s:.0f} s; the pump's "
                "prime counter may be stuck, so priming is stopped.",
                "controller.prime",
            )
        ]

    async def _obey(self, decision: TickDecision, snap: PumpSnapshot | None) -> None:
        halting = [a for a in decision.actions if a.kind in _HALT_KINDS]
        if halting:
            kind = ActionKind.STOP if halting[0].kind is ActionKind.STOP else ActionKind.PAUSE
            effect = "stopped" if kind is ActionKind.STOP else "paused"
            # Whether to command is decided on the session as this tick found it, before
            # its alarm latches (_must_command says why a pump in ALARM still gets it).
            command = self._must_command(kind, snap)
            if snap is None or not command:
                # No reading: latched at once (a STOP into a dead link can take all its
                # attempts to fail); nothing to send: nothing to wait for.
                self._latch(halting, effect=effect)
            else:
                # Alarm first: its event is queued now, ahead of the STOP's intent; the
                # session latches it once the command's round trip is over.
                self._announce(halting, effect=effect)
            try:
                if command:
                    await self._halt(kind, halting)
            finally:
                self._latch(halting, effect=effect)
        delivering = snap is None or snap.mode.delivers
        for action in decision.actions:
            if action.kind is ActionKind.ALARM:
                # A low-priority alarm (a low battery) the nurse acknowledged while its
                # cause lasts is a notice from then on: latched again at every tick, the
                # session could never leave ALARM to start or resume.
                seen = action.priority is Priority.LOW and action.code in self._acked_low
                if delivering or seen:
                    self._notice(action.code, action.priority, action.message)
                else:
                    self._latch([action], effect="not running")
        self._remind([a for a in decision.actions if a.kind is ActionKind.REMIND])
        self._acked_low &= {a.code for a in decision.actions if a.kind is ActionKind.ALARM}

    def _must_command(self, kind: ActionKind, snap: PumpSnapshot | None) -> bool:
        """Whether the kernel's halt goes to the pump, judged before this tick's latch.

        The first demand is always sent, also to a pump that reports it stopped itself
        (in ALARM, or idle with an alarm condition): GIP-MB1 takes STOP in every state and
        a pump in ALARM stays there (result 0), so it cannot give drug, and it makes
        pumpd's own termination of flow a fact on record rather than the pump's claim.
        Once the session is latched, repeated demands are not repeated commands.
        """
        s = self._session
        if snap is None:
            # One stop per outage: on a dead link it cannot arrive, and the pump's own
            # failsafe is what ends delivery; a reading that comes back is judged afresh.
            first = not self._halted_on_comm
            self._halted_on_comm = True
            return first
        if snap.mode.delivers:
            return True
        if s is None:
            return False
        if s.state is not State.ALARM:
            return True
        # In ALARM a pump that does not deliver is left alone, except that a STOP ends a
        # paused program once (a paused pump could otherwise be resumed at its panel).
        return kind is ActionKind.STOP and snap.mode is PumpMode.PAUSED and not s.data.stopped_at

    async def _halt(self, kind: ActionKind, actions: Sequence[Action]) -> None:
        s = self._session
        assert s is not None
        first = actions[0]
        interlock = self._journal.event(
            "interlock.triggered",
            {
                "action": kind.value,
                "reason_codes": list(dict.fromkeys(a.code for a in actions)),
                "detail": first.message[:500],
            },
            Actor.daemon(),
            session=s,
        )
        now = self._now()
        if kind is ActionKind.PAUSE and s.state is State.INFUSING:
            step = s.pause(by=DAEMON, reason_code=first.code, at=now)
            self._pause_words = _words(first.message)
        else:
            if "stop" not in s.allowed():
                self._latch(actions, effect="stopped")
            step = s.stop(by=DAEMON, reason=first.message, reason_code=first.code, at=now)
        await self._carry_out(step, DAEMON, extra=[interlock])

    def _latch(self, actions: Sequence[Action], *, effect: str) -> None:
        s = self._session
        if s is None or s.state in TERMINAL:
            for a in actions:
                self._notice(a.code, a.priority, a.message)
            return
        for a in actions:
            if any(x.code == a.code for x in s.data.alarms):
                self._announced.pop(a.code, None)
                continue
            said = self._announced.get(a.code)
            source = said.source if said else _alarm_source(a.code)
            message = said.message if said else self._alarm_text(s, a, effect)
            step = s.alarm(
                code=a.code, priority=a.priority, message=message, source=source, at=self._now()
            )
            self._record(step, DAEMON, _Ctx())

    def _alarm_text(self, s: Session, a: Action, effect: str) -> str:
        return alarm_message(
            a.code, self.config.pump_id, effect, self.delivered_ul(), s.plan.vtbi_ul, a.message
        )

    def _announce(self, actions: Sequence[Action], *, effect: str) -> None:
        """Queue ``alarm.raised`` for each new alarm now, before any command is sent."""
        s = self._live_session()
        if s is None:
            return
        for a in actions:
            if a.code in self._announced or any(x.code == a.code for x in s.data.alarms):
                continue
            said = _Announced(
                a.priority,
                self._alarm_text(s, a, effect),
                _alarm_source(a.code),
                new_correlation("alarm"),
            )
            self._announced[a.code] = said
            self._log([self._alarm_raised_event(s, a.code, said)])

    def _alarm_raised_event(self, s: Session | None, code: str, said: _Announced) -> NewEvent:
        return self._journal.event(
            "alarm.raised",
            {
                "alarm_code": code,
                "priority": said.priority.value,
                "source": said.source,
                "message": said.message[:500],
            },
            Actor.daemon(),
            session=s,
            correlation_id=said.correlation_id,
        )

    def _notice(self, code: str, priority: Priority, message: str) -> None:
        if code in self._notices:
            return
        said = self._announced.pop(code, None)
        if said is not None:  # its alarm.raised is already written
            self._notices[code] = Notice(code, priority, said.message, said.correlation_id)
            return
        said = _Announced(priority, message, "daemon", new_correlation("alarm"))
        self._notices[code] = Notice(code, priority, message, said.correlation_id)
        self._log([self._alarm_raised_event(self._live_session(), code, said)])

    def _remind(self, actions: Sequence[Action]) -> None:
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
        s = self._live_session()
        if s is None:
            return
        self._log(
            [
                self._journal.event(
                    "reminder.issued",
                    {
                        "reminder_code": code,
                        "message": current[code][:500],
                        "priority": priority[code],
                    },
                    Actor.daemon(),
                    session=s,
                )
                for code in fresh
            ]
        )

    async def _orphan_check(self, snap: PumpSnapshot | None) -> None:
        """A pump delivering with no session behind it is stopped, and that is an alarm."""
        if snap is None or not snap.mode.delivers:
            return
        corr = new_correlation("cmd")
        intent = self._journal.event(
            "pump.command.requested",
            {"command": "stop", "reason_codes": ["pump.orphan_delivery"]},
            Actor.daemon(),
            correlation_id=corr,
        )
        await self._halt_intent([intent])
        logline.command_sent(self.config.pump_id, None, PumpCommand.STOP.value, corr)
        async with self._keepalive():
            outcome = await self._executor.run(PumpCommand.STOP, None)
        if outcome.status is not None:
            self._observe(outcome.status)
        self._log([self._result_event(PumpCommand.STOP, outcome, corr, None)])
        self._notice(
            "pump.orphan_delivery",
            Priority.HIGH,
            f"Pump delivering without a session on {self.config.pump_id}: pumpd stopped it "
            f"(pump was {snap.mode.value} at {snap.rate_actual_ml_h} mL/h).",
        )

    # -- carrying steps out ----------------------------------------------------------

    def _now(self) -> Stamp:
        return stamp(self._clock)

    def _live_session(self) -> Session | None:
        s = self._session
        return s if s is not None and s.state not in TERMINAL else None

    def _setpoints(self, kind: PumpCommand) -> Setpoints | None:
        s = self._session
        assert s is not None
        if kind in (PumpCommand.STOP, PumpCommand.PAUSE):
            return None
        proto = s.protocol.protocol
        plan = s.plan
        rate, vtbi = plan.rate_ml_h, plan.vtbi_ul
        pending = s.data.pending_adjustment
        if kind is PumpCommand.SET_RATE and pending is not None:
            rate, vtbi = pending.rate_ml_h, pending.vtbi_ul
        base = self._start_counter_ul if self._account is not None else self._baseline_ul
        if kind is PumpCommand.START:
            base = self._baseline_ul
        return Setpoints(
            rate_ml_h=rate,
            vtbi_ul=base + vtbi,
            kvo_rate_ml_h=plan.kvo_rate_ml_h,
            prime_volume_ul=start_requirements(proto).prime_volume_ul,
            prime_rate_ml_h=proto.priming.rate_ml_h,
        )

    def _unfit(self, step: Step) -> list[Verdict]:
        """The kernel's refusal of setpoints this pump cannot run (its reported maximum
        rate) or the prepared container cannot give; checked before the intent is written,
        and already when the order is programmed (against the pump's last reading)."""
        s = self._session
        max_rate = self._gate.max_rate_ml_h(self._status)
        kind = None if step.command is None else step.command.kind
        if s is not None and (step.trigger == "program" or kind in MOVING):
            prime_ul = start_requirements(s.protocol.protocol).prime_volume_ul
            refused = self._gate.refusals(
                kvo_rate_ml_h=s.plan.kvo_rate_ml_h,
                prime_volume_ul=prime_ul if kind is PumpCommand.PRIME else 0,
            )
            if refused:
                return refused
        if s is not None and step.trigger == "program":
            return pump_fit(s.plan.rate_ml_h, s.plan.vtbi_ul, max_rate, None)
        if s is None or kind not in MOVING:
            return []
        if kind is PumpCommand.PRIME:
            proto = s.protocol.protocol
            prime_ul = start_requirements(proto).prime_volume_ul
            return pump_fit(proto.priming.rate_ml_h, prime_ul, max_rate, None)
        rate, vtbi = s.plan.rate_ml_h, s.plan.vtbi_ul
        pending = s.data.pending_adjustment
        if kind is PumpCommand.SET_RATE and pending is not None:
            rate, vtbi = pending.rate_ml_h, pending.vtbi_ul
        return pump_fit(rate, vtbi, max_rate, s.data.container_ul)

    async def _carry_out(
        self,
        step: Step,
        by: str,
        *,
        undo: Callable[[], None] | None = None,
        extra: Sequence[NewEvent] = (),
    ) -> None:
        """Write the step's events, command the pump if it asks for that, report the fact."""
        command = step.command
        syringe = self.config.syringe
        if unfit := self._unfit(step) + syringe_unfit(self._session, step, syringe, MOVING):
            if undo is not None:
                undo()
            raise CommandRefused(step.trigger, unfit)
        ctx = _Ctx(command=command, extra=list(extra))
        if command is not None:
            ctx.correlation_id = new_correlation("cmd")
        events = [*extra, *self._events(step, by, ctx)]
        events += self._gate.risk_events(step, self._journal, self._session)
        if command is None or command.kind in MOVING:
            await self._write_first(events, ctx, undo if command is not None else None)
        else:
            await self._halt_intent(events)
        self._log_step(step, by)
        if command is None:
            self._checkpoint()
            return
        if command.kind is PumpCommand.START:
            self._start_counter_ul = self._baseline_ul
        assert ctx.correlation_id is not None
        logline.command_sent(
            self.config.pump_id, self._session_id(), command.kind.value, ctx.correlation_id
        )
        async with self._keepalive():
            outcome = await self._executor.run(command.kind, self._setpoints(command.kind))
        self._pending_sent_s = outcome.sent_at_s
        if outcome.status is not None:
            self._observe(outcome.status)
        await self._report(command, outcome, ctx)

    @contextlib.asynccontextmanager
    async def _keepalive(self) -> AsyncIterator[None]:
        """Heartbeat the pump while a command (with its confirmations and repeats) runs.

        The poll loop is busy with our own command, not dead: the pump's failsafe must not
        trip for that. Outside commands only the poll loop heartbeats, so a hung loop still
        lets the failsafe stop the pump.
        """
        period = real_seconds(self._clock, self.config.poll_period_s)
        done = asyncio.Event()

        async def beat() -> None:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), period)
                    return
                with contextlib.suppress(DriverError):
                    await self._driver.heartbeat()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            # Stopped between heartbeats, never in one: a request cancelled in flight leaves
            # its reply on the line, and on RTU the line then stays quiet for every pump on
            # it (drivers/line.py). The wait is bounded by the driver's own timeout.
            done.set()
            try:
                # asyncio.wait, not ``await task``: a cancellation of the controller itself
                # must go through, and then the keep-alive is cancelled with it.
                await asyncio.wait({task})
            finally:
                task.cancel()

    async def _write_first(
        self, events: list[NewEvent], ctx: _Ctx, undo: Callable[[], None] | None
    ) -> None:
        if undo is None:
            self._log(events)
            return
        if await self._durable(events):
            return
        # The intent is not a durable record, so the command is not sent: put the session
        # back, close the intent in the record (it may still land), and tell the nurse.
        undo()
        self._audit_failed()
        if ctx.command is not None:
            self._log(
                [
                    self._journal.event(
                        "pump.command.failed",
                        {
                            "command": ctx.command.kind.value,
                            "error_code": "audit_unavailable",
                            "detail": "not sent: the intent was not durable in time",
                        },
                        Actor.daemon(),
                        session=self._session,
                        correlation_id=ctx.correlation_id,
                    )
                ]
            )
        raise AuditUnavailable("the audit log did not record the intent; nothing was sent")

    async def _report(self, command: CommandIntent, outcome: Outcome, ctx: _Ctx) -> None:
        s = self._session
        assert s is not None
        kind = command.kind
        at = self._now()
        ctx.outcome = outcome
        if outcome.result is Result.CONFIRMED:
            step = self._confirmed(kind, at)
            self._account_after(kind, step.dest, outcome.status)
        elif outcome.result is Result.UNKNOWN:
            step = s.command_uncertain(command=kind, detail=outcome.detail[:500], at=at)
        else:
            step = s.command_failed(command=kind, detail=outcome.detail[:400], at=at)
            if kind in (PumpCommand.STOP, PumpCommand.PAUSE):
                self._account_after(kind, step.dest, outcome.status)
        self._record(step, DAEMON, ctx)

    def _confirmed(self, kind: PumpCommand, at: Stamp) -> Step:
        s = self._session
        assert s is not None
        if kind is PumpCommand.PRIME:
            return s.prime_confirmed(at=at)
        if kind in (PumpCommand.START, PumpCommand.RESUME):
            return s.start_confirmed(at=at)
        if kind is PumpCommand.PAUSE:
            return s.pause_confirmed(at=at)
        if kind is PumpCommand.STOP:
            return s.stop_confirmed(at=at)
        return s.adjust_confirmed(at=at)

    def _record(self, step: Step, by: str, ctx: _Ctx) -> None:
        self._log(self._events(step, by, ctx))
        self._log_step(step, by)
        self._checkpoint()

    def _log(self, events: Sequence[NewEvent]) -> None:
        """Queue events in order; the poll loop never waits for the store (nor for the log
        lines, written once the events are queued)."""
        self._journal.submit(events)
        logline.events(events)

    async def _halt_intent(self, events: Sequence[NewEvent]) -> None:
        """A STOP's or PAUSE's intent, durable before the command (write-ahead) but never
        holding a halt back for long: awaited at most ``intent_wait_s``; during an outage
        the spool makes it durable (fsync'd, in order) in milliseconds, and that is enough
        for a halt (a start waits for the database); and when nothing can make it durable
        (a write failed or has waited longer than that, with no working spool) the halt
        does not wait at all."""
        if self._journal.stalled(self.config.intent_wait_s) and not self._journal.spooling:
            self._log(events)
            self._audit_failed()
        elif not await self._durable(events, spool_will_do=True):
            self._audit_failed()

    async def _durable(self, events: Sequence[NewEvent], *, spool_will_do: bool = False) -> bool:
        """Queue events and wait at most ``intent_wait_s`` for them to be durable (in the
        database, or with ``spool_will_do`` in the spool too: Journal.submit)."""
        durable = await self._journal.durable(
            events, self.config.intent_wait_s, spool_will_do=spool_will_do
        )
        logline.events(events)
        return durable

    def _session_id(self) -> str | None:
        return None if self._session is None else self._session.data.session_id

    def _log_step(self, step: Step, by: str) -> None:
        s = self._session
        if s is not None:
            logline.step(self.config.pump_id, s.data.session_id, step, by)

    def _audit_failed(self) -> None:
        # The alarm's own event is queued behind the held ones: it is written, in order,
        # as soon as the store answers again.
        held = "kept in the local spool" if self._journal.spooling else "held in memory"
        self._notice(
            "audit.write_failed",
            Priority.HIGH,
            f"Audit log unavailable on {self.config.pump_id}: events are {held} and will be "
            "written when it answers; no infusion can be started or resumed meanwhile.",
        )

    # -- recovery --------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Record the session's whole state when it changed, and every
        ``checkpoint_every_s`` while drug is delivered, so a restarted daemon can rebuild
        it from the audit log alone (pumpd/recovery.py).

        "Changed" is judged on the content, not on the object: a command repeated in ALARM
        gives the session new data equal to the old, and the last checkpoint is still the
        latest state. A real change is never deferred (docs/controller.md, "Checkpoints").
        """
        s = self._session
        if s is None:
            return
        now = self._clock.monotonic()
        rate = None if self._account is None else self._account.rate_ml_h
        due = now - self._checkpointed_at_s >= self.config.checkpoint_every_s
        periodic = due and self._account is not None and self._account.rate_ml_h > 0
        mark = (id(s.data), s.state, rate)
        if mark == self._checkpoint_mark and not periodic:
            return
        self._checkpoint_mark = mark
        snapshot = s.snapshot()
        if (snapshot, rate) == self._checkpointed and not periodic:
            return
        self._checkpointed, self._checkpointed_at_s = (snapshot, rate), now
        accounting: dict[str, Any] | None = None
        if self._account is not None:
            accounting = self._account.as_dict(now, self._clock.now_utc().isoformat())
        if self._status is not None:
            accounting = {
                **(accounting or {}),
                "pump_counter_ul": self._status.volume_infused_ul,
                "pump_uptime_s": self._status.uptime_s,
                "pump_last_cmd_seq": self._status.last_cmd_seq,
            }
        payload: dict[str, Any] = {"state": s.state.value, "snapshot": snapshot}
        if accounting is not None:
            payload["accounting"] = accounting
        self._log([self._journal.event("session.checkpointed", payload, Actor.daemon(), session=s)])

    async def recover(self, session: Session | None, accounting: dict[str, Any] | None) -> None:
        """Take a pump over after a restart: read it, reconcile it with the rebuilt session.

        Never starts or resumes delivery. A pump delivering with no open session is
        stopped (the next poll's orphan check); a command that was in flight is in doubt
        until a reading settles it; a pump that lost its counters is an alarm that names the
        last delivered volume the log knows.
        """
        async with self._lock:
            status = await self._read()
            open_session = (
                session if session is not None and session.state not in TERMINAL else None
            )
            self._session = open_session
            if open_session is None:
                detail = "no open session"
                if status is not None and MODE_OF[status.state].delivers:
                    detail = f"no open session but the pump is {status.state.value}: stopped"
                self._log([self._recovered_event([], detail)])
                await self._orphan_check(self._snapshot)
                return
            s = open_session
            self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
            acct = accounting or {}
            now = self._clock.monotonic()
            last_counter = int(acct.get("pump_counter_ul", 0))
            last_uptime = int(acct.get("pump_uptime_s", 0))
            started = "volume_at_start_ul" in acct
            if started:
                # delivered = counter − this (a restart seen before is in delivered_before)
                self._start_counter_ul = int(acct["volume_at_start_ul"]) - int(
                    acct.get("delivered_before_ul", 0)
                )
            evidence = (
                None
                if status is None
                else restart_evidence_of(
                    last_uptime,
                    int(acct.get("pump_last_cmd_seq", 0)),
                    status.uptime_s,
                    status.last_cmd_seq,
                )
            )
            rebooted = evidence is not None
            lost = status is not None and (rebooted or status.volume_infused_ul < last_counter)
            bridge_s: float | None = None
            if started:
                delivered = (
                    last_counter if lost or status is None else status.volume_infused_ul
                ) - self._start_counter_ul
                bridge_s = None if lost else self._downtime_bridge_s(acct)
                if bridge_s is None:
                    self._account = VolumeAccount.resumed(acct, max(0, delivered), now)
                else:
                    self._account = VolumeAccount.carried(acct, bridge_s, now)
                if status is None or not MODE_OF[status.state].delivers:
                    self._account.set_rate(Decimal(0), now)
            if (
                s.data.pending_command is not None
                and s.state is not State.UNCERTAIN
                and (s.state is not State.ALARM)
            ):
                step = s.command_uncertain(
                    command=s.data.pending_command,
                    detail="pumpd restarted while the command was outstanding",
                    at=self._now(),
                )
                self._record(step, DAEMON, _Ctx())
            if lost and status is not None:
                known = max(0, last_counter - self._start_counter_ul) if started else 0
                # Re-anchored first, as the live loop does, so the alarm's head and every
                # later figure carry the volume the log knows on from the new counter.
                self._counter_lost(known, status, rebooted=rebooted)
                self._latch(
                    [
                        Action(
                            ActionKind.STOP,
                            Priority.HIGH,
                            "pump.state_lost",
                            f"The pump restarted or lost its volume counter while pumpd was "
                            f"down (uptime {last_uptime} s → {status.uptime_s} s, counter "
                            f"{last_counter} µL → {status.volume_infused_ul} µL); the last "
                            f"delivered volume on record is {known} µL.",
                            "controller.recovery",
                        )
                    ],
                    effect="stopped",
                )
            pump_text = "unreachable" if status is None else status.state.value
            carried = (
                "the expected volume was re-anchored on the pump's counter"
                if bridge_s is None
                else f"the expected volume carried across {bridge_s:.1f} s of downtime"
            )
            self._log(
                [
                    self._recovered_event(
                        [s.data.session_id],
                        f"session {s.data.session_id} rebuilt in {s.state.value}; pump "
                        f"{pump_text}, {self.delivered_ul()} µL delivered, {carried}; "
                        "supervision resumed, nothing commanded",
                    )
                ]
            )
            self._checkpoint()

    def _downtime_bridge_s(self, acct: dict[str, Any]) -> float | None:
        """Clock seconds from the checkpoint to now, through UTC; None when UTC cannot be
        trusted to bridge them.

        Only UTC survives a restart, and it can be stepped. A step back (or a checkpoint
        from the future) is refused: carrying a too-short downtime would call the pump's
        real delivery an over-infusion. So is a downtime longer than a pump can deliver
        without pumpd (the checkpoint interval, plus the pump's own heartbeat failsafe,
        plus the kernel's comm timeout): a pump found still infusing after that means the
        clock stepped forward (or the failsafe failed) and the figure means nothing. Then
        the expected volume is re-anchored on the counter as before, and the recovery
        event says so; a step forward within the bound errs towards under-infusion (a
        pause), never towards missing an over-infusion.
        """
        raw = acct.get("at_utc")
        if not isinstance(raw, str):
            return None
        try:
            then = dt.datetime.fromisoformat(raw)
        except ValueError:
            return None
        if then.tzinfo is None:
            return None
        bridge_s = (self._clock.now_utc() - then).total_seconds()
        limit_s = (
            self.config.checkpoint_every_s
            + self.config.heartbeat_timeout_s
            + self.config.policy.comm_timeout_s
        )
        if not 0 <= bridge_s <= limit_s:
            return None
        return bridge_s

    def _recovered_event(self, open_sessions: list[str], detail: str) -> NewEvent:
        return self._journal.event(
            "daemon.recovered",
            {"open_sessions": open_sessions, "detail": detail[:500]},
            Actor.daemon(),
        )

    # -- events ----------------------------------------------------------------------

    def _result_event(
        self, kind: PumpCommand, outcome: Outcome, corr: str | None, s: Session | None
    ) -> NewEvent:
        if outcome.result is Result.CONFIRMED and outcome.status is not None:
            payload: dict[str, Any] = {
                "command": kind.value,
                "observed_state": outcome.status.state.value.lower(),
                "observed_rate_ml_h": format(outcome.status.rate_actual_ml_h, "f"),
                "latency_ms": outcome.latency_ms,
            }
            return self._journal.event(
                "pump.command.confirmed", payload, Actor.daemon(), session=s, correlation_id=corr
            )
        if outcome.result is Result.UNKNOWN:
            return self._journal.event(
                "pump.command.uncertain",
                {"command": kind.value, "detail": outcome.detail[:500] or "no confirmation"},
                Actor.daemon(),
                session=s,
                correlation_id=corr,
            )
        return self._journal.event(
            "pump.command.failed",
            {
                "command": kind.value,
                "error_code": outcome.error_code,
                "detail": outcome.detail[:500] or "failed",
            },
            Actor.daemon(),
            session=s,
            correlation_id=corr,
        )

    def _events(self, step: Step, by: str, ctx: _Ctx) -> list[NewEvent]:
        s = self._session
        assert s is not None
        actor = actor_for(by)
        daemon = Actor.daemon()
        out: list[NewEvent] = []
        d = s.data
        plan = s.plan
        delivered = self.delivered_ul()

        def ev(
            kind: str, payload: dict[str, Any], who: Actor = actor, corr: str | None = None
        ) -> None:
            out.append(self._journal.event(kind, payload, who, session=s, correlation_id=corr))

        for kind in step.audit_events:
            if kind == "session.programmed":
                ev(kind, _programmed(s, plan))
            elif kind == "override.granted":
                rec, overridden = _overridden(s, step)
                if rec is not None:
                    ev(
                        kind,
                        {
                            "verdict_codes": list(rec.codes) or ["override"],
                            "reason_code": "override",
                            "reason": rec.reason,
                            "approved_by": rec.by,
                            "witness": rec.second_by,
                            "verdicts": [_verdict_figures(v) for v in overridden],
                        },
                    )
            elif kind == "double_check.completed":
                ev(
                    kind,
                    {
                        "first_checker": d.programmed_by,
                        "second_checker": d.confirmed_by or by,
                        "fields_checked": ["patient_ref", "weight_kg", "protocol", "plan"],
                    },
                )
            elif kind == "pump.command.requested" and step.command is not None:
                c = step.command
                requested: dict[str, Any] = {
                    "command": c.kind.value,
                    "rate_ml_h": None if c.rate_ml_h is None else format(c.rate_ml_h, "f"),
                    "volume_ul": c.vtbi_ul,
                    "reason_codes": [c.reason_code] if c.reason_code else [],
                }
                words = {PumpCommand.PAUSE: self._pause_words, PumpCommand.STOP: d.stop_reason}
                if c.reason_code == "nurse.continue" and d.last_continuation is not None:
                    words[PumpCommand.RESUME] = d.last_continuation.reason
                if (spoken := _words(words.get(c.kind))) is not None:
                    requested["reason"] = spoken
                ev(kind, requested, corr=ctx.correlation_id)
            elif kind in (
                "pump.command.confirmed",
                "pump.command.uncertain",
                "pump.command.failed",
            ):
                if ctx.outcome is not None and ctx.command is not None:
                    out.append(
                        self._result_event(ctx.command.kind, ctx.outcome, ctx.correlation_id, s)
                    )
                elif kind == "pump.command.uncertain" and d.last_uncertain is not None:
                    ev(
                        kind,
                        {
                            "command": d.last_uncertain.command.value,
                            "detail": d.last_uncertain.detail[:500],
                        },
                        daemon,
                        new_correlation("cmd"),
                    )
            elif kind == "session.started":
                limits = supervision_limits(s.protocol.protocol, plan, self.config.policy)
                ev(
                    kind,
                    {
                        "rate_ml_h": format(plan.rate_ml_h, "f"),
                        "volume_ul": plan.vtbi_ul,
                        "supervision": supervision_record(limits),
                    },
                )
            elif kind == "session.resumed":
                ev(kind, {"rate_ml_h": format(plan.rate_ml_h, "f")})
            elif kind == "session.continued" and d.last_continuation is not None:
                cont = d.last_continuation
                ev(
                    kind,
                    {
                        "reason": cont.reason[:500],
                        "rule": "continue",
                        "interrupted_by": list(cont.interrupted_by),
                        "remaining_volume_ul": cont.remaining_ul,
                        "delivered_volume_ul": cont.delivered_ul,
                        "interrupted_ms": int(cont.interrupted_s * 1000),
                    },
                )
            elif kind == "session.ended":
                ev(
                    kind,
                    {
                        "reason": (d.end_reason or "ended")[:500],
                        "rule": d.end_rule or "session.end",
                        "interrupted_by": list(d.interrupted_by),
                        "delivered_volume_ul": delivered,
                    },
                    daemon if d.end_rule else actor,
                )
            elif kind == "session.paused":
                paused: dict[str, Any] = {
                    "reason_code": d.pause_reason_code or "pause",
                    "delivered_volume_ul": delivered,
                }
                if self._pause_words is not None:
                    paused["reason"] = self._pause_words
                ev(kind, paused)
            elif kind == "session.stopped":
                ev(
                    kind,
                    {
                        "reason_code": d.stop_reason_code
                        or ("abort" if d.abort_reason else "stop"),
                        "reason": (d.stop_reason or d.abort_reason or "stopped")[:500],
                        "delivered_volume_ul": delivered,
                        "delivered_dose_mg": format(
                            dose_mg(delivered, plan.concentration_mg_per_ml), "f"
                        ),
                    },
                )
            elif kind == "infusion.completed":
                ev(
                    kind,
                    {
                        "delivered_volume_ul": delivered,
                        "delivered_dose_mg": format(
                            dose_mg(delivered, plan.concentration_mg_per_ml), "f"
                        ),
                    },
                )
            elif kind == "observation.started":
                ev(kind, {"minimum_s": int(s.protocol.protocol.observation_min * 60)})
            elif kind == "observation.ended":
                started = d.observation_started_at
                observed = 0 if started is None else int(self._clock.monotonic() - started.mono_s)
                ev(kind, {"observed_s": max(0, observed), "outcome": "discharged"})
            elif kind == "patient.discharged":
                ev(
                    kind,
                    {
                        "discharged_by": d.discharged_by or by,
                        "criteria_met": [code_of(i) for i in d.checklist_confirmed],
                    },
                )
            elif kind == "alarm.raised" and d.alarms:
                alarm = d.alarms[-1]
                said = self._announced.pop(alarm.code, None)
                if said is not None:  # written when the tick decided (_announce)
                    self._alarm_ids[alarm.code] = said.correlation_id
                    continue
                corr = new_correlation("alarm")
                self._alarm_ids[alarm.code] = corr
                ev(
                    kind,
                    {
                        "alarm_code": alarm.code,
                        "priority": alarm.priority.value,
                        "source": alarm.source,
                        "message": alarm.message[:500],
                    },
                    daemon,
                    corr,
                )
            elif kind == "alarm.acknowledged":
                for acked in d.last_acknowledged:
                    corr = self._alarm_ids.pop(acked.alarm.code, "") or new_correlation("alarm")
                    ev(kind, {"alarm_code": acked.alarm.code, "note": acked.note}, corr=corr)
            elif kind == "vitals.recorded" and d.last_vitals is not None:
                v = d.last_vitals
                ev(
                    kind,
                    {
                        "systolic_mmhg": v.systolic_mmhg,
                        "diastolic_mmhg": v.diastolic_mmhg,
                        "heart_rate_bpm": v.heart_rate_bpm,
                        "spo2_percent": v.spo2_percent,
                        "respiratory_rate_per_min": v.resp_rate_per_min,
                        "source": "manual",
                    },
                )
            elif kind == "session.adjusted":
                last = d.last_adjustment
                ev(
                    kind,
                    {
                        "reason": (last.reason if last else "adjusted")[:500],
                        "rate_ml_h": format(plan.rate_ml_h, "f"),
                        "volume_ul": plan.vtbi_ul,
                    },
                )
            elif kind == "note.recorded" and d.last_note is not None:
                ev(kind, {"text": d.last_note.text[:500]})
        return out

    # -- the nurse's commands ----------------------------------------------------------

    def _need(self) -> Session:
        s = self._session
        if s is None or s.state in TERMINAL:
            raise NoSession(f"pump {self.config.pump_id} has no open session")
        return s

    def _undo_to(self, snapshot: dict[str, Any], protocol: LoadedProtocol) -> Callable[[], None]:
        def undo() -> None:
            self._session = Session.restore(snapshot, protocol)
            self._limits = supervision_limits(
                protocol.protocol, self._session.plan, self.config.policy
            )

        return undo

    async def _nurse(self, by: str, act: Callable[[Session, Stamp], Step], *, undo: bool) -> Step:
        async with self._lock:
            s = self._need()
            before = s.snapshot()
            step = act(s, self._now())
            await self._carry_out(
                step, by, undo=self._undo_to(before, s.protocol) if undo else None
            )
            return step

    async def program(
        self,
        *,
        by: str,
        session_id: str,
        patient_ref: str,
        protocol: LoadedProtocol,
        patient: Patient,
        order: Order,
        override: Override | None = None,
        prior_sessions: Sequence[PriorSession] = (),
    ) -> Step:
        """Open a session (or program the open one again before its start); the course
        rules judge it against ``prior_sessions`` (the patient's, from the audit log)."""
        async with self._lock:
            s = self._session
            at = self._now()
            if s is not None and s.state not in TERMINAL:
                if s.state not in (State.PROGRAMMED, State.VERIFIED):
                    raise SessionActive(
                        f"pump {self.config.pump_id} has session {s.data.session_id} "
                        f"in {s.state.value}; end it first"
                    )
                before = s.snapshot()
                step = s.program(
                    by=by,
                    patient=patient,
                    order=order,
                    at=at,
                    override=override,
                    prior_sessions=prior_sessions,
                )
                await self._carry_out(step, by, undo=self._undo_to(before, s.protocol))
            else:
                previous = (self._session, self._limits, self._account)
                new, step = Session.open(
                    session_id=session_id,
                    pump_id=self.config.pump_id,
                    patient_ref=patient_ref,
                    protocol=protocol,
                    by=by,
                    patient=patient,
                    order=order,
                    at=at,
                    override=override,
                    prior_sessions=prior_sessions,
                )

                def undo() -> None:
                    self._session, self._limits, self._account = previous

                self._session, self._account = new, None
                self._reminders.clear()
                self._announced.clear()
                await self._carry_out(step, by, undo=undo)
            s = self._session
            assert s is not None
            self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
            return step

    async def confirm(
        self,
        *,
        by: str,
        weight: str,
        approve_override: bool = False,
        shown: Sequence[str] | None = None,
    ) -> Step:
        return await self._nurse(
            by,
            lambda s, at: s.confirm(
                by=by, weight=weight, approve_override=approve_override, shown=shown, at=at
            ),
            undo=True,
        )

    async def approve(
        self,
        *,
        by: str,
        prior_sessions: Sequence[PriorSession] = (),
        shown: Sequence[str] | None = None,
    ) -> Step:
        """A second person approves the override holding back an adjustment or a start;
        a held start reads the pump again, and the start checks run on that reading."""
        async with self._lock:
            s = self._need()
            snapshot = None
            if s.data.pending_start_override is not None:
                status = await self._read()
                if status is None:
                    raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
                snapshot = to_snapshot(status)
            before = s.snapshot()
            step = s.approve(
                by=by, pump=snapshot, prior_sessions=prior_sessions, shown=shown, at=self._now()
            )
            await self._carry_out(step, by, undo=self._undo_to(before, s.protocol))
            if s.plan is not None:
                self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
            return step

    async def prime(self, *, by: str, line_disconnected: bool) -> Step:
        return await self._nurse(
            by,
            lambda s, at: s.request_prime(by=by, line_disconnected=line_disconnected, at=at),
            undo=True,
        )

    async def start(
        self,
        *,
        by: str,
        prior_sessions: Sequence[PriorSession] = (),
        primed_confirmed: bool = False,
        override: Override | None = None,
        override_reason: str | None = None,
    ) -> Step:
        """``override_reason``: the starting nurse's reason for the start's soft verdicts
        (the override then covers exactly the soft verdicts of this very reading)."""
        async with self._lock:
            s = self._need()
            status = await self._read()
            if status is None:
                raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
            if override is None and override_reason is not None:
                soft = s.start_soft_codes(
                    by=by, pump=to_snapshot(status), prior_sessions=prior_sessions, at=self._now()
                )
                if soft:
                    override = Override(by=by, reason=override_reason, codes=frozenset(soft))
            before = s.snapshot()
            step = s.request_start(
                by=by,
                pump=to_snapshot(status),
                prior_sessions=prior_sessions,
                primed_confirmed=primed_confirmed,
                override=override,
                at=self._now(),
            )
            await self._carry_out(step, by, undo=self._undo_to(before, s.protocol))
            return step

    async def pause(
        self, *, by: str, reason_code: str = "nurse.pause", reason: str | None = None
    ) -> Step:
        """Pause; ``reason`` (the nurse's words) goes into the intent and ``session.paused``,
        so the session's own record says why (the session keeps only the code)."""

        def act(s: Session, at: Stamp) -> Step:
            step = s.pause(by=by, at=at, reason_code=reason_code)
            self._pause_words = _words(reason)
            return step

        return await self._nurse(by, act, undo=False)

    async def resume(self, *, by: str, reason: str | None = None) -> Step:
        """Resume a paused infusion, or continue an interrupted one (from STOPPED: the
        kernel's continuation rule decides, on the pump as read now and both figures of
        what was given; docs/controller.md, "Continuing an interrupted infusion")."""
        async with self._lock:
            s = self._need()
            if s.state is not State.STOPPED:
                before = s.snapshot()
                step = s.resume(by=by, at=self._now())
                undo = self._undo_to(before, s.protocol)
                if self._status is not None and self._account is not None:
                    undo = self._reanchored(self._status, undo)
                await self._carry_out(step, by, undo=undo)
                return step
            return await self._continue(s, by, reason)

    def _reanchored(
        self, status: PumpStatus, undo_session: Callable[[], None]
    ) -> Callable[[], None]:
        """Delivery goes on after an interruption: from here the session's figure of what
        was given is the larger of the pump's and the independent account's, on the
        counter as it is now, so the pump is programmed for the remainder alone and the
        volume rule judges what follows from that common start (a gap left by an
        occlusion or a stuck counter would otherwise pause the infusion again at once).
        Returns the undo for a command that is not sent."""
        acct = self._account
        assert acct is not None
        now_s = self._clock.monotonic()
        acct.set_rate(Decimal(0), now_s)
        saved = dataclasses.replace(acct), self._start_counter_ul
        known = max(0, acct.delivered_ul(status.volume_infused_ul), acct.expected_ul(now_s))
        acct.counter_restarted(known, status.volume_infused_ul)
        acct.closed_ul = Decimal(known)
        self._start_counter_ul = acct.volume_at_start_ul - acct.delivered_before_ul

        def undo() -> None:
            undo_session()
            self._account, self._start_counter_ul = saved

        return undo

    async def _continue(self, s: Session, by: str, reason: str | None) -> Step:
        status = await self._read()
        now_s = self._clock.monotonic()
        if self._account is None:
            # Stopped before the pump confirmed a start: nothing was accounted yet.
            self._account = VolumeAccount(self._baseline_ul, Decimal(0), now_s)
            self._start_counter_ul = self._baseline_ul
        acct = self._account
        acct.set_rate(Decimal(0), now_s)
        delivered = max(0, self.delivered_ul())
        expected = acct.expected_ul(now_s)
        limits = self._limits
        max_s = None if limits is None else limits.max_delivery_s
        if max_s is None:
            max_s = float(s.protocol.protocol.limits.duration_min.hard_max * 60)
        facts = DeliveryFacts(
            pump=None if status is None else to_snapshot(status),
            delivered_ul=delivered,
            expected_ul=expected,
            delivery_elapsed_s=acct.delivery_elapsed_s(now_s),
            max_delivery_s=max_s,
        )
        before = s.snapshot()
        step = s.resume(by=by, reason=reason, delivery=facts, at=self._now())
        assert status is not None  # the kernel refuses a pump that does not answer
        undo = self._reanchored(status, self._undo_to(before, s.protocol))
        await self._carry_out(step, by, undo=undo)
        return step

    async def adjust(
        self,
        *,
        by: str,
        reason: str,
        order: Order,
        override: Override | None = None,
        protocol: LoadedProtocol | None = None,
    ) -> Plan:
        """Step one of two: propose a new plan; returns it for the nurse to see."""
        async with self._lock:
            s = self._need()
            s.adjust(
                by=by,
                reason=reason,
                order=order,
                delivered_ul=self.delivered_ul(),
                override=override,
                protocol=protocol,
                at=self._now(),
            )
            plan = s.proposed_plan
            assert plan is not None
            return plan

    async def confirm_adjust(self, *, by: str) -> Step:
        step = await self._nurse(by, lambda s, at: s.confirm_adjust(by=by, at=at), undo=True)
        s = self._session
        if s is not None:
            self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
        return step

    async def cancel_adjust(self, *, by: str) -> Step:
        return await self._nurse(by, lambda s, at: s.cancel_adjust(by=by, at=at), undo=True)

    async def stop(self, *, by: str, reason: str) -> Step:
        return await self._nurse(by, lambda s, at: s.stop(by=by, reason=reason, at=at), undo=False)

    def _acknowledgeable(self) -> list[tuple[str, str]]:
        """(code, message) of what an acknowledgement would clear now: the daemon's
        notices (not the audit-log alarm while the database is away) and, in ALARM, the
        session's latched alarms."""
        held = self._journal.backlog or self._journal.degraded
        out = [
            (n.code, n.message)
            for n in self._notices.values()
            if not (n.code == "audit.write_failed" and held)
        ]
        s = self._session
        if s is not None and s.state is State.ALARM:
            out += [(a.code, a.message) for a in s.data.alarms]
        return out

    async def acknowledge(
        self, *, by: str, note: str | None = None, seen: Collection[str] | None = None
    ) -> Step | None:
        """Acknowledge the latched alarms (and the daemon's own notices).

        ``seen``: the alarm codes the person was shown; when given, an alarm latched since
        (not among them) refuses the whole acknowledgement with its message."""
        async with self._lock:
            if seen is not None:
                unseen = [(c, m) for c, m in self._acknowledgeable() if c not in seen]
                if unseen:
                    raise AlarmNotSeen(
                        f"a new alarm on {self.config.pump_id} came in after your screen was "
                        f"shown, so nothing was acknowledged: {unseen[0][1]} Look at it, then "
                        "acknowledge again."
                    )
            cleared, held = 0, False
            for n in list(self._notices.values()):
                if n.code == "audit.write_failed" and (
                    self._journal.backlog or self._journal.degraded
                ):
                    held = True
                    continue
                del self._notices[n.code]
                cleared += 1
                self._log(
                    [
                        self._journal.event(
                            "alarm.acknowledged",
                            {"alarm_code": n.code, "note": note},
                            actor_for(by),
                            session=self._live_session(),
                            correlation_id=n.correlation_id,
                        )
                    ]
                )
            s = self._session
            if s is None or s.state is not State.ALARM:
                if cleared:
                    return None
                pump = self.config.pump_id
                if held:
                    raise NothingToAcknowledge(
                        f"the audit-log alarm on {pump} stays until the audit database "
                        "answers again; no other alarm is latched"
                    )
                raise NothingToAcknowledge(f"nothing to acknowledge on {pump}: no alarm is latched")
            status = await self._read()
            if status is None:
                raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
            before = s.snapshot()
            low = {a.code for a in s.data.alarms if a.priority is Priority.LOW}
            step = s.acknowledge(by=by, pump_mode=MODE_OF[status.state], note=note, at=self._now())
            await self._carry_out(step, by, undo=self._undo_to(before, s.protocol))
            self._acked_low |= low
            return step

    async def vitals(self, *, by: str, reading: VitalsReading) -> Step:
        return await self._nurse(
            by, lambda s, at: s.record_vitals(by=by, reading=reading, at=at), undo=True
        )

    async def note(self, *, by: str, text: str) -> Step:
        return await self._nurse(by, lambda s, at: s.note(by=by, text=text, at=at), undo=True)

    async def observe(self, *, by: str) -> Step:
        return await self._nurse(by, lambda s, at: s.observe(by=by, at=at), undo=True)

    async def discharge_gates(self) -> list[Verdict]:
        """The observation-time and vitals gates of a discharge, judged now (nothing
        changes): pumpctl asks them before any checklist question."""
        async with self._lock:
            return self._need().discharge_gates(self._now())

    async def discharge(self, *, by: str, checklist_confirmed: Collection[str]) -> Step:
        return await self._nurse(
            by,
            lambda s, at: s.discharge(by=by, checklist_confirmed=checklist_confirmed, at=at),
            undo=True,
        )

    async def end(self, *, by: str, reason: str) -> Step:
        """End an interrupted infusion instead of continuing it: the observation begins."""
        return await self._nurse(by, lambda s, at: s.end(by=by, reason=reason, at=at), undo=True)

    async def abort(self, *, by: str, reason: str) -> Step:
        return await self._nurse(by, lambda s, at: s.abort(by=by, reason=reason, at=at), undo=True)


def _words(text: str | None) -> str | None:
    """Free text as the audit record takes it: trimmed, at most 500 characters, or None."""
    text = (text or "").strip()[:500]
    return text or None


def _alarm_source(code: str) -> AlarmSource:
    if code.startswith("tick.pump.alarm"):
        return "pump"
    if code.startswith("tick.vitals"):
        return "vitals"
    return "kernel" if code.startswith("tick.") else "daemon"


def _programmed(s: Session, plan: Plan) -> dict[str, Any]:
    proto = s.protocol.protocol
    return {
        # The protocol's own id, as auditors query it; the sha256 pins the exact file.
        "protocol_id": proto.id,
        "protocol_version": str(proto.version),
        "protocol_sha256": s.protocol.sha256,
        "protocol_status": "released" if s.protocol.released else "draft",
        "drug": proto.drug,
        "concentration_mg_ml": format(plan.concentration_mg_per_ml, "f"),
        "weight_kg": format(plan.weight_kg, "f"),
        "weight_basis": plan.weight_basis_applied.value,
        "dosing_weight_kg": format(plan.dosing_weight_kg, "f"),
        "dose_mg_kg": format(plan.dose_mg_per_kg, "f"),
        "prescribed_dose_mg": format(plan.dose_mg, "f"),
        "rate_ml_h": format(plan.rate_ml_h, "f"),
        "volume_ul": plan.vtbi_ul,
        "duration_s": int(plan.duration_min * 60),
        "verdict_codes": [v.code for v in plan.verdicts],
    }


def _overridden(s: Session, step: Step) -> tuple[OverrideRecord | None, list[Verdict]]:
    """The override a step grants and the soft verdicts it answers."""
    d = s.data
    soft = Severity.SOFT
    if step.dest is State.START_REQUESTED:
        return d.start_override, [v.verdict() for v in d.start_verdicts if v.severity == "soft"]
    if step.trigger == "approve":
        adjustment = d.pending_adjustment or d.last_adjustment
        plan = s.proposed_plan or s.plan
        rec = None if adjustment is None else adjustment.override
        return rec, [v for v in plan.verdicts if v.severity is soft]
    return d.plan_override, [v for v in s.plan.verdicts if v.severity is soft]


def _verdict_figures(v: Verdict) -> dict[str, str]:
    out = {"code": v.code, "message": v.message[:500]}
    for key in ("value", "limit", "unit"):
        if (figure := getattr(v, key)) is not None:
            out[key] = figure
    return out

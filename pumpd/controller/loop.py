"""The per-pump supervising controller: one poll loop, one session, one pump.

Every poll reads the pump, reports what the reading proves to the session (a prime
finished, the planned volume is in, an uncertain command settled), asks the safety kernel
and obeys it at once, then heartbeats the pump. Nurse commands and polls take the same
lock, so a command and a tick never interleave: nothing is ticked between sending a
command and reading its result.

The controller orchestrates; its collaborators each own their state and sit below it
(docs/controller.md, "Rooms"): the pump observation (readings, restarts, the ledger, the
kernel's inputs), the alarm board, the event builder, the checkpoint and the command path
(write-ahead: an intent is durable before the pump is commanded; for anything that moves
fluid a failed write means the command is not sent and the session is put back exactly as
it was, while a stop or pause goes to the pump even when the write fails or hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pumpd.audit.store import NewEvent
from pumpd.audit.writer import AsyncAuditWriter
from pumpd.clock import Clock, Stamp, stamp
from pumpd.drivers.base import DriverError, PumpDriver, PumpStatus
from pumpd.protocols import LoadedProtocol
from pumpd.session import CommandIntent, CommandKind, DeliveryFacts, Session, State, Step
from pumpd.session.errors import CommandRefused
from safety.actions import Action, ActionKind, Priority
from safety.course import PriorSession
from safety.order import Override
from safety.plan import Order, Patient, Plan
from safety.pump import PumpMode, PumpSnapshot
from safety.tick import SupervisionLimits, kvo_complete, supervision_limits
from safety.verdicts import Verdict
from safety.vitals import VitalsReading

from . import logline
from .alarms import AlarmBoard, AlarmView, Notice, alarm_source
from .checkpoint import CheckpointAccounting, Checkpointer, bridge_limit_s
from .config import ControllerConfig, real_seconds
from .errors import (
    AlarmNotSeen,
    AuditUnavailable,
    NoSession,
    NothingToAcknowledge,
    PumpNotAnswering,
    SessionActive,
)
from .events import EventBuilder, StepContext, StepFacts, words
from .executor import CommandPath, Executor, Outcome, Result
from .journal import Journal, new_correlation
from .kernel import decide
from .ledger import Ledger
from .observation import PumpObservation
from .setpoints import MOVING, setpoints, unfit
from .translate import MODE_OF, alarm_message, to_snapshot

TERMINAL = frozenset({State.DISCHARGED, State.ABORTED})
DAEMON = "pumpd"
_HALT_KINDS = (ActionKind.STOP, ActionKind.PAUSE)

__all__ = ["DAEMON", "MOVING", "TERMINAL", "AlarmView", "Controller", "ControllerStatus", "Notice"]


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
class _Pulse:
    """How many polls ran and when the last one ended (the daemon's health check)."""

    polls: int
    last_poll_s: float


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
        self._clock = clock
        journal = Journal(writer, config.pump_id)
        self._events = EventBuilder(journal)
        self._commands = CommandPath(
            Executor(
                driver,
                clock,
                timeout_s=config.command_timeout_s,
                stop_attempts=config.stop_attempts,
            ),
            journal,
            driver,
            clock,
            intent_wait_s=config.intent_wait_s,
            poll_period_s=config.poll_period_s,
            on_audit_failed=self._audit_failed,
        )
        self._board = AlarmBoard(self._events, self._commands.log)
        self._pump = PumpObservation(clock, Ledger())
        self._checkpoints = Checkpointer(clock, config.checkpoint_every_s)
        self._lock = asyncio.Lock()
        self._session: Session | None = None
        self._limits: SupervisionLimits | None = None
        self._pause_words: str | None = None
        self._pulse = _Pulse(0, clock.monotonic())

    # -- reading -------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def limits(self) -> SupervisionLimits | None:
        """The kernel's limits for the open session's plan."""
        return self._limits

    @property
    def last_status(self) -> PumpStatus | None:
        return self._pump.status

    @property
    def observation(self) -> PumpObservation:
        return self._pump

    @property
    def commands(self) -> CommandPath:
        return self._commands

    @property
    def journal(self) -> Journal:
        return self._commands.journal

    @property
    def notices(self) -> tuple[Notice, ...]:
        return self._board.notices

    @property
    def polls(self) -> int:
        return self._pulse.polls

    @property
    def last_poll_s(self) -> float:
        return self._pulse.last_poll_s

    def delivered_ul(self) -> int:
        """Delivered to this session by the pump's own counter (0 before the start)."""
        return self._pump.delivered_ul()

    def expected_ul(self) -> int:
        return self._pump.ledger.expected_ul(self._clock.monotonic())

    def status(self) -> ControllerStatus:
        s = self._session
        acct = self._pump.ledger.account
        status = self._pump.status
        return ControllerStatus(
            pump_id=self.config.pump_id,
            reachable=self._pump.reachable,
            pump_state=None if status is None else status.state.value,
            session_id=None if s is None else s.data.session_id,
            session_state=None if s is None else s.state.value,
            delivered_ul=self.delivered_ul(),
            expected_ul=self.expected_ul(),
            vtbi_ul=None if s is None else s.plan.vtbi_ul,
            rate_ml_h=None if acct is None else format(acct.rate_ml_h, "f"),
            alarms=self._board.views(s),
            reminders=self._board.reminders,
            audit_backlog=len(self.journal.backlog),
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
            await self._commands.arm_failsafe(self.config.heartbeat_timeout_s)
            await self._read()

    async def run(self) -> None:
        """Poll until cancelled. Cancelling is how the daemon dies; the pump then stops
        itself when the heartbeat goes quiet."""
        period_real = real_seconds(self._clock, self.config.poll_period_s)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.poll()
            next_at += period_real
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def poll(self) -> None:
        async with self._lock:
            await self._poll()

    async def _poll(self) -> None:
        self._pulse.polls += 1
        status = await self._read()
        journal = self.journal
        journal.flush()
        if journal.stalled(self.config.intent_wait_s) or journal.degraded:
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
                await self._commands.heartbeat()
            if self._pump.rearm_failsafe:
                with contextlib.suppress(DriverError):
                    await self._commands.arm_failsafe(self.config.heartbeat_timeout_s)
                    self._pump.failsafe_armed()
        self._checkpoint()
        self._pulse.last_poll_s = self._clock.monotonic()

    async def _read(self) -> PumpStatus | None:
        before = self._clock.monotonic()
        try:
            status = await self._commands.read_status()
        except DriverError as exc:
            if self._pump.unreachable(before):
                self._log([self._events.unreachable(str(exc))])
            return None
        self._pump.read(status, before)
        return status

    # -- what a reading proves -------------------------------------------------------

    async def _status_facts(self, status: PumpStatus) -> None:
        s = self._session
        if s is None:
            return
        if self._pump.proves_nothing(status):
            return  # a rebooted pump proves nothing; the kernel judges the reboot
        mode = MODE_OF[status.state]
        now = self._now()
        acct = self._pump.ledger.account
        if s.state is State.UNCERTAIN:
            pending = s.data.last_uncertain
            step = s.reconciled(pump_mode=mode, rate_ml_h=status.rate_actual_ml_h, at=now)
            self._account_after(pending.command if pending else None, step.dest, status)
            self._record(step, DAEMON, StepContext())
        elif s.state is State.PRIMING and mode is PumpMode.IDLE:
            step = s.prime_complete(volume_primed_ul=status.volume_primed_ul, at=now)
            self._record(step, DAEMON, StepContext())
        elif (
            s.state is State.INFUSING
            and acct is not None
            and acct.delivered_ul(status.volume_infused_ul) >= s.plan.vtbi_ul
        ):
            step = s.vtbi_reached(pump_mode=mode, at=now)
            if step.dest is State.KVO:
                # Prescribed keep-vein-open: the pump goes on at the KVO rate, and so does
                # the independent accounting; the kernel's KVO rules supervise it.
                due_s = acct.reached_s(s.plan.vtbi_ul, now.mono_s)
                acct.set_rate(s.plan.kvo_rate_ml_h, due_s)
                self._record(step, DAEMON, StepContext())
                return
            still_running = mode.delivers
            await self._carry_out(step, DAEMON)
            if still_running:
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
        acct, limits = self._pump.ledger.account, self._limits
        if acct is None or limits is None or MODE_OF[status.state] is not PumpMode.KVO:
            return
        delivered = acct.delivered_ul(status.volume_infused_ul)
        if kvo_complete(limits, delivered, acct.expected_ul(now.mono_s)):
            step = s.observe(by=DAEMON, at=now, reason_code="tick.vtbi.kvo_complete")
            await self._carry_out(step, DAEMON)

    def _account_after(
        self, command: CommandKind | None, dest: State, status: PumpStatus | None
    ) -> None:
        s = self._session
        if s is None:
            return
        self._pump.ledger.after_command(
            command, dest, status, s.plan.rate_ml_h, self._clock.monotonic()
        )
        self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)

    # -- the kernel ----------------------------------------------------------------

    async def _supervise(self) -> None:
        s = self._session
        snap = self._pump.snapshot
        if s is None or s.state in TERMINAL or self._limits is None:
            await self._orphan_check(snap)
            # The next session's first tick compares with this pump as it is now, not
            # as the last session left it (a restart in between is nobody's event).
            self._pump.ticked(snap)
            return
        decision = decide(self._limits, self._pump, s, self._clock.monotonic())
        await self._obey(decision.actions, snap)
        self._pump.ticked(snap)

    async def _obey(self, actions: Sequence[Action], snap: PumpSnapshot | None) -> None:
        halting = [a for a in actions if a.kind in _HALT_KINDS]
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
        for action in actions:
            if action.kind is ActionKind.ALARM:
                # A low-priority alarm (a low battery) the nurse acknowledged while its
                # cause lasts is a notice from then on: latched again at every tick, the
                # session could never leave ALARM to start or resume.
                if delivering or self._board.seen_low(action.code, action.priority):
                    self._notice(action.code, action.priority, action.message)
                else:
                    self._latch([action], effect="not running")
        self._board.remind(
            [a for a in actions if a.kind is ActionKind.REMIND], self._live_session()
        )
        self._board.lasting({a.code for a in actions if a.kind is ActionKind.ALARM})

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
            return self._pump.first_halt_on_comm()
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
        codes = list(dict.fromkeys(a.code for a in actions))
        interlock = self._events.interlock(kind.value, codes, first.message, s)
        now = self._now()
        if kind is ActionKind.PAUSE and s.state is State.INFUSING:
            step = s.pause(by=DAEMON, reason_code=first.code, at=now)
            self._pause_words = words(first.message)
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
                self._board.latched(a.code)
                continue
            said = self._board.announced(a.code)
            source = said.source if said else alarm_source(a.code)
            message = said.message if said else self._alarm_text(s, a, effect)
            step = s.alarm(
                code=a.code, priority=a.priority, message=message, source=source, at=self._now()
            )
            self._record(step, DAEMON, StepContext())

    def _alarm_text(self, s: Session, a: Action, effect: str) -> str:
        return alarm_message(
            a.code, self.config.pump_id, effect, self.delivered_ul(), s.plan.vtbi_ul, a.message
        )

    def _announce(self, actions: Sequence[Action], *, effect: str) -> None:
        """Queue ``alarm.raised`` for each new alarm now, before any command is sent."""
        s = self._live_session()
        if s is not None:
            self._board.announce(s, actions, lambda a: self._alarm_text(s, a, effect))

    def _notice(self, code: str, priority: Priority, message: str) -> None:
        self._board.notice(code, priority, message, self._live_session())

    async def _orphan_check(self, snap: PumpSnapshot | None) -> None:
        """A pump delivering with no session behind it is stopped, and that is an alarm."""
        if snap is None or not snap.mode.delivers:
            return
        corr = new_correlation("cmd")
        intent = self._events.stop_requested("pump.orphan_delivery", corr)
        await self._commands.halt_intent([intent])
        outcome = await self._commands.send(
            CommandKind.STOP,
            None,
            pump_id=self.config.pump_id,
            session_id=None,
            correlation_id=corr,
        )
        if outcome.status is not None:
            self._pump.observe(outcome.status)
        self._log([self._events.result(CommandKind.STOP, outcome, corr, None)])
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

    def _unfit(self, step: Step) -> list[Verdict]:
        status = self._pump.status
        return unfit(self._session, step, None if status is None else status.max_rate_ml_h)

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
        if unfit_verdicts := self._unfit(step):
            if undo is not None:
                undo()
            raise CommandRefused(step.trigger, unfit_verdicts)
        ctx = StepContext(command=command, extra=list(extra))
        if command is not None:
            ctx.correlation_id = new_correlation("cmd")
        events = [*extra, *self._step_events(step, by, ctx)]
        if command is None or command.kind in MOVING:
            await self._write_first(events, ctx, undo if command is not None else None)
        else:
            await self._commands.halt_intent(events)
        self._log_step(step, by)
        if command is None:
            self._checkpoint()
            return
        ledger = self._pump.ledger
        if command.kind is CommandKind.START:
            ledger.start_sent()
        assert ctx.correlation_id is not None
        s = self._session
        assert s is not None
        outcome = await self._commands.send(
            command.kind,
            setpoints(s, command.kind, ledger.program_base_ul(command.kind)),
            pump_id=self.config.pump_id,
            session_id=self._session_id(),
            correlation_id=ctx.correlation_id,
        )
        ledger.sent_at_s = outcome.sent_at_s
        if outcome.status is not None:
            self._pump.observe(outcome.status)
        await self._report(command, outcome, ctx)

    async def _write_first(
        self, events: list[NewEvent], ctx: StepContext, undo: Callable[[], None] | None
    ) -> None:
        if undo is None:
            self._log(events)
            return
        if await self._commands.durable(events):
            return
        # The intent is not a durable record, so the command is not sent: put the session
        # back, close the intent in the record (it may still land), and tell the nurse.
        undo()
        self._audit_failed()
        if ctx.command is not None:
            self._log(
                [self._events.not_durable(ctx.command.kind, self._session, ctx.correlation_id)]
            )
        raise AuditUnavailable("the audit log did not record the intent; nothing was sent")

    async def _report(self, command: CommandIntent, outcome: Outcome, ctx: StepContext) -> None:
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
            if kind in (CommandKind.STOP, CommandKind.PAUSE):
                self._account_after(kind, step.dest, outcome.status)
        self._record(step, DAEMON, ctx)

    def _confirmed(self, kind: CommandKind, at: Stamp) -> Step:
        s = self._session
        assert s is not None
        if kind is CommandKind.PRIME:
            return s.prime_confirmed(at=at)
        if kind in (CommandKind.START, CommandKind.RESUME):
            return s.start_confirmed(at=at)
        if kind is CommandKind.PAUSE:
            return s.pause_confirmed(at=at)
        if kind is CommandKind.STOP:
            return s.stop_confirmed(at=at)
        return s.adjust_confirmed(at=at)

    def _step_events(self, step: Step, by: str, ctx: StepContext) -> list[NewEvent]:
        s = self._session
        assert s is not None
        facts = StepFacts(
            delivered_ul=self.delivered_ul(),
            now_s=self._clock.monotonic(),
            pause_words=self._pause_words,
            policy=self.config.policy,
        )
        return self._events.step_events(s, step, by, ctx, facts, self._board)

    def _record(self, step: Step, by: str, ctx: StepContext) -> None:
        self._log(self._step_events(step, by, ctx))
        self._log_step(step, by)
        self._checkpoint()

    def _log(self, events: Sequence[NewEvent]) -> None:
        self._commands.log(events)

    def _session_id(self) -> str | None:
        return None if self._session is None else self._session.data.session_id

    def _log_step(self, step: Step, by: str) -> None:
        s = self._session
        if s is not None:
            logline.step(self.config.pump_id, s.data.session_id, step, by)

    def _audit_failed(self) -> None:
        # The alarm's own event is queued behind the held ones: it is written, in order,
        # as soon as the store answers again.
        held = "kept in the local spool" if self.journal.spooling else "held in memory"
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
        it from the audit log alone (pumpd/recovery.py, controller/checkpoint.py)."""
        s = self._session
        if s is None:
            return
        acct = self._pump.ledger.account
        snapshot = self._checkpoints.due(s, acct)
        if snapshot is None:
            return
        payload = self._checkpoints.payload(s, snapshot, acct, self._pump.status)
        self._log([self._events.daemon("session.checkpointed", payload, session=s)])

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
                self._log([self._events.recovered([], detail)])
                await self._orphan_check(self._pump.snapshot)
                return
            s = open_session
            self._limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
            record = CheckpointAccounting.from_dict(accounting)
            ledger = self._pump.ledger
            now = self._clock.monotonic()
            last = record.last_pump
            account = record.account
            if account is not None:
                ledger.start_counter_ul = account.start_counter_ul
            lost, rebooted = record.pump_lost(status)
            bridge_s: float | None = None
            if account is not None:
                delivered = (
                    last.counter_ul if lost or status is None else status.volume_infused_ul
                ) - ledger.start_counter_ul
                limit_s = bridge_limit_s(self.config)
                bridge_s = (
                    None if lost else record.downtime_bridge_s(self._clock.now_utc(), limit_s)
                )
                if bridge_s is None:
                    ledger.account = account.resumed(max(0, delivered), now)
                else:
                    ledger.account = account.carried(bridge_s, now)
                if status is None or not MODE_OF[status.state].delivers:
                    ledger.account.set_rate(Decimal(0), now)
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
                self._record(step, DAEMON, StepContext())
            if lost and status is not None:
                known = max(0, last.counter_ul - ledger.start_counter_ul) if account else 0
                # Re-anchored first, as the live loop does, so the alarm's head and every
                # later figure carry the volume the log knows on from the new counter.
                ledger.counter_lost(known, status, rebooted=rebooted)
                self._latch(
                    [
                        Action(
                            ActionKind.STOP,
                            Priority.HIGH,
                            "pump.state_lost",
                            f"The pump restarted or lost its volume counter while pumpd was "
                            f"down (uptime {last.uptime_s} s → {status.uptime_s} s, counter "
                            f"{last.counter_ul} µL → {status.volume_infused_ul} µL); the last "
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
                    self._events.recovered(
                        [s.data.session_id],
                        f"session {s.data.session_id} rebuilt in {s.state.value}; pump "
                        f"{pump_text}, {self.delivered_ul()} µL delivered, {carried}; "
                        "supervision resumed, nothing commanded",
                    )
                ]
            )
            self._checkpoint()

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
                ledger = self._pump.ledger
                previous = (self._session, self._limits, ledger.account)
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
                    self._session, self._limits, ledger.account = previous

                self._session, ledger.account = new, None
                self._board.new_session()
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
            self._pause_words = words(reason)
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
                status = self._pump.status
                if status is not None and self._pump.ledger.account is not None:
                    undo = self._pump.ledger.reanchored(status, self._clock.monotonic(), undo)
                await self._carry_out(step, by, undo=undo)
                return step
            return await self._continue(s, by, reason)

    async def _continue(self, s: Session, by: str, reason: str | None) -> Step:
        status = await self._read()
        now_s = self._clock.monotonic()
        acct = self._pump.ledger.opened_for_continuation(now_s)
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
        undo = self._pump.ledger.reanchored(status, now_s, self._undo_to(before, s.protocol))
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

    def _held(self) -> bool:
        """Events wait for the audit database (its alarm cannot be acknowledged yet)."""
        return bool(self.journal.backlog) or self.journal.degraded

    def _acknowledgeable(self) -> list[tuple[str, str]]:
        """(code, message) of what an acknowledgement would clear now: the daemon's
        notices (not the audit-log alarm while the database is away) and, in ALARM, the
        session's latched alarms."""
        s = self._session
        in_alarm = s if s is not None and s.state is State.ALARM else None
        return self._board.acknowledgeable(self._held(), in_alarm)

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
            cleared, held = self._board.acknowledge_notices(
                by, note, self._held(), self._live_session()
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
            self._board.acked_low(low)
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

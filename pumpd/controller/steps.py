"""The open session and the carrying out of its steps.

A step of the session machine (a nurse's command, a fact a reading proves, the kernel's
halt) is carried out here: its events built and written (write-ahead for a command), the
pump commanded through the command path, the pump's answer reported back to the session
as the next step, an alarm latched, the checkpoint written when the session changed. The
controller above decides *when* (the lock, the poll cycle, the kernel's decision, the
nurse's API); this room knows *how*, and owns the session, its kernel limits and the
words a person gave for a pause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pumpd.audit import Actor, AsyncAuditWriter, NewEvent
from pumpd.clock import Clock, Stamp, stamp
from pumpd.drivers import DriverError, PumpDriver, PumpStatus, PushedAlarm
from pumpd.protocols import LoadedProtocol
from pumpd.session import CommandIntent, DeliveryFacts, PumpCommand, Session, State, Step
from pumpd.session.errors import CommandRefused
from safety.actions import Action, ActionKind, Priority
from safety.pump import PumpMode, PumpSnapshot
from safety.start import start_requirements
from safety.tick import SupervisionLimits, kvo_complete, supervision_limits
from safety.verdicts import Verdict

from . import logline
from .alarms import AlarmBoard, alarm_source
from .capability import CapabilityGate
from .checkpoint import CheckpointAccounting, Checkpointer, bridge_limit_s
from .config import ControllerConfig
from .errors import AuditUnavailable, NoSession
from .events import EventBuilder, StepContext, StepFacts, words
from .executor import CommandPath, Executor, HaltIntent, Outcome, Result
from .journal import Journal, new_correlation
from .ledger import Ledger
from .observation import PumpObservation
from .setpoints import MOVING, setpoints, unfit
from .steprecord import StepRecord
from .syringe_check import syringe_unfit
from .translate import MODE_OF, alarm_message, to_snapshot

TERMINAL = frozenset({State.DISCHARGED, State.ABORTED})
DAEMON = Actor.daemon()
"""Who acts when the daemon obeys the kernel or reports a pump's fact."""
ORPHAN = "pump.orphan_delivery"
NurseAct = Callable[[Session, str, Stamp], Step]
"""A person's command as the controller hands it to the session: ``act(session, name, at)``.
The session records the person by name; the step's events carry the actor itself."""


class SessionSteps:
    """One pump's session, carried out step by step over the collaborators below it."""

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
            on_audit_failed=self.audit_failed,
        )
        self._board = AlarmBoard(self._events, self._commands.log)
        self.gate = CapabilityGate.of(driver, config, clock)
        self._pump = PumpObservation(clock, Ledger())
        self._record = StepRecord(
            self._events, self._commands, self._pump, Checkpointer(clock, config.checkpoint_every_s)
        )
        self.session: Session | None = None
        self.limits: SupervisionLimits | None = None
        self.pause_words: str | None = None
        """A person's (or the kernel's) words for the pause in progress, for its events."""

    @property
    def board(self) -> AlarmBoard:
        return self._board

    @property
    def pump(self) -> PumpObservation:
        return self._pump

    @property
    def commands(self) -> CommandPath:
        return self._commands

    def now(self) -> Stamp:
        return stamp(self._clock)

    async def read(self, pushed: PushedAlarm | None = None) -> PumpStatus | None:
        """Read the pump; or, woken by its alarm packet, take the packet's status as the
        reading, so the kernel's halt is the first request after the alarm."""
        if pushed is not None and pushed.status is not None:
            self._pump.pushed(pushed.status)
            return pushed.status
        before = self._clock.monotonic()
        try:
            status = await self._commands.read_status()
        except DriverError as exc:
            if self._pump.unreachable(before):
                self.log([self._events.unreachable(str(exc))])
            return None
        self._pump.read(status, before)
        return status

    def live_session(self) -> Session | None:
        s = self.session
        return s if s is not None and s.state not in TERMINAL else None

    def need(self) -> Session:
        s = self.session
        if s is None or s.state in TERMINAL:
            raise NoSession(f"pump {self.config.pump_id} has no open session")
        return s

    def undo_to(self, snapshot: dict[str, Any], protocol: LoadedProtocol) -> Callable[[], None]:
        def undo() -> None:
            self.session = Session.restore(snapshot, protocol)
            self.limits = supervision_limits(
                protocol.protocol, self.session.plan, self.config.policy
            )

        return undo

    def log(self, events: Sequence[NewEvent]) -> None:
        self._commands.log(events)

    async def status_facts(self, status: PumpStatus) -> None:
        s = self.session
        if s is None:
            return
        if self._pump.proves_nothing(status):
            return  # a rebooted pump proves nothing; the kernel judges the reboot
        mode = MODE_OF[status.state]
        now = self.now()
        acct = self._pump.ledger.account
        if s.state is State.UNCERTAIN:
            pending = s.data.last_uncertain
            step = s.reconciled(pump_mode=mode, rate_ml_h=status.rate_actual_ml_h, at=now)
            self.account_after(pending.command if pending else None, step.dest, status)
            self.record(step, DAEMON, StepContext())
        elif s.state is State.PRIMING and mode is PumpMode.IDLE:
            step = s.prime_complete(volume_primed_ul=status.volume_primed_ul, at=now)
            self.record(step, DAEMON, StepContext())
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
                self.record(step, DAEMON, StepContext())
                return
            still_running = mode.delivers
            await self.carry_out(step, DAEMON)
            if still_running and self.gate.past_volume_is_fault():
                over_ul = self._pump.delivered_ul() - s.plan.vtbi_ul
                self.latch(
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
        acct, limits = self._pump.ledger.account, self.limits
        if acct is None or limits is None or MODE_OF[status.state] is not PumpMode.KVO:
            return
        delivered = acct.delivered_ul(status.volume_infused_ul)
        if kvo_complete(limits, delivered, acct.expected_ul(now.mono_s)):
            step = s.observe(by=DAEMON.name, at=now, reason_code="tick.vtbi.kvo_complete")
            await self.carry_out(step, DAEMON)

    def account_after(
        self, command: PumpCommand | None, dest: State, status: PumpStatus | None
    ) -> None:
        s = self.session
        if s is None:
            return
        self._pump.ledger.after_command(
            command, dest, status, s.plan.rate_ml_h, self._clock.monotonic()
        )
        self.limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)

    def must_command(self, kind: ActionKind, snap: PumpSnapshot | None) -> bool:
        """Whether the kernel's halt goes to the pump, judged before this tick's latch.

        The first demand is always sent, also to a pump that reports it stopped itself
        (in ALARM, or idle with an alarm condition): GIP-MB1 takes STOP in every state and
        a pump in ALARM stays there (result 0), so it cannot give drug, and it makes
        pumpd's own termination of flow a fact on record rather than the pump's claim.
        Once the session is latched, repeated demands are not repeated commands, except
        the first on a reading after an outage or a restart of pumpd (``stop_owed``).
        """
        s = self.session
        if snap is None:
            # One stop per outage: on a dead link it cannot arrive, and the pump's own
            # failsafe is what ends delivery; a reading that comes back is judged afresh.
            # (The kernel's tick.comm.volume_due STOP is sent at every tick: halting.py.)
            return self._pump.first_halt_on_comm()
        if self._pump.stop_owed() or snap.mode.delivers:
            return True
        if s is None:
            return False
        if s.state is not State.ALARM:
            return True
        # In ALARM a pump that does not deliver is left alone, except that a STOP ends a
        # paused program once (a paused pump could otherwise be resumed at its panel).
        return kind is ActionKind.STOP and snap.mode is PumpMode.PAUSED and not s.data.stopped_at

    async def halt(self, kind: ActionKind, actions: Sequence[Action]) -> None:
        s = self.session
        assert s is not None
        first = actions[0]
        codes = list(dict.fromkeys(a.code for a in actions))
        interlock = self._events.interlock(kind.value, codes, first.message, s)
        now = self.now()
        if kind is ActionKind.PAUSE and s.state is State.INFUSING:
            step = s.pause(by=DAEMON.name, reason_code=first.code, at=now)
            self.pause_words = words(first.message)
        else:
            if "stop" not in s.allowed():
                self.latch(actions, effect="stopped")
            step = s.stop(by=DAEMON.name, reason=first.message, reason_code=first.code, at=now)
        await self.carry_out(step, DAEMON, extra=[interlock])

    def latch(self, actions: Sequence[Action], *, effect: str) -> None:
        s = self.session
        if s is None or s.state in TERMINAL:
            for a in actions:
                self.notice(a.code, a.priority, a.message)
            return
        for a in actions:
            if any(x.code == a.code for x in s.data.alarms):
                self._board.latched(a.code)
                continue
            said = self._board.announced(a.code)
            source = said.source if said else alarm_source(a.code)
            message = said.message if said else self._alarm_text(s, a, effect)
            step = s.alarm(
                code=a.code, priority=a.priority, message=message, source=source, at=self.now()
            )
            self.record(step, DAEMON, StepContext())

    def _alarm_text(self, s: Session, a: Action, effect: str) -> str:
        return alarm_message(
            a.code,
            self.config.pump_id,
            effect,
            self._pump.delivered_ul(),
            s.plan.vtbi_ul,
            a.message,
        )

    def announce(self, actions: Sequence[Action], *, effect: str) -> None:
        """Queue ``alarm.raised`` for each new alarm now, before any command is sent."""
        s = self.live_session()
        if s is not None:
            self._board.announce(s, actions, lambda a: self._alarm_text(s, a, effect))

    def notice(self, code: str, priority: Priority, message: str) -> None:
        self._board.notice(code, priority, message, self.live_session())

    async def orphan_check(self, snap: PumpSnapshot | None) -> None:
        """A pump delivering with no session behind it is stopped, and that is an alarm."""
        if snap is None or not snap.mode.delivers:
            return
        corr = new_correlation("cmd")
        intent = self._commands.halt_intent([self._events.stop_requested(ORPHAN, corr)])
        pump_id = self.config.pump_id
        outcome = await self._commands.send(
            PumpCommand.STOP, None, pump_id=pump_id, session_id=None, correlation_id=corr
        )
        await self._commands.halt_written(intent)
        if outcome.status is not None:
            self._pump.observe(outcome.status)
        self.log([self._events.result(PumpCommand.STOP, outcome, corr, None)])
        self.notice(
            ORPHAN,
            Priority.HIGH,
            f"Pump delivering without a session on {self.config.pump_id}: pumpd stopped it "
            f"(pump was {snap.mode.value} at {snap.rate_actual_ml_h} mL/h).",
        )

    def next_read_in_s(self) -> float:
        """The poll period; sooner when pumpd's own stop ends the infusion and the plan's
        volume falls due before the next poll (safety/capability.py)."""
        s, acct = self.session, self._pump.ledger.account
        if s is None or acct is None or s.state is not State.INFUSING:
            return self.config.poll_period_s
        left_ul = s.plan.vtbi_ul - self._pump.delivered_ul()
        return self.gate.next_read_in_s(self.config.poll_period_s, left_ul, acct.rate_ml_h)

    def _unfit(self, step: Step) -> list[Verdict]:
        """The kernel's refusals of this step on this pump: what the pump cannot do (its
        capability record), what it cannot run (its maximum rate, the container) and what
        the syringe cannot hold; checked before the intent is written."""
        s = self.session
        kind = None if step.command is None else step.command.kind
        if s is not None and (step.trigger == "program" or kind in MOVING):
            prime_ul = start_requirements(s.protocol.protocol).prime_volume_ul
            refused = self.gate.refusals(
                s.plan, prime_volume_ul=prime_ul if kind is PumpCommand.PRIME else 0
            )
            if refused:
                return refused
        max_rate = self.gate.max_rate_ml_h(self._pump.status)
        return unfit(s, step, max_rate) + syringe_unfit(s, step, self.config.syringe, MOVING)

    async def carry_out(
        self,
        step: Step,
        by: Actor,
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
        events += self.gate.risk_events(step, self._commands.journal, self.session)
        if command is None:
            # The step and the checkpoint of the state it leaves, as one (steprecord.py);
            # a nurse's step is answered once durable (bounded, as an intent).
            if undo is None:
                self._record.write(events, self.session)
            else:
                await self._record.write_durable(events, self.session)
            self._log_step(step, by)
            return
        halt: HaltIntent | None = None
        if command.kind in MOVING:
            await self._write_first(events, ctx, undo)
        else:
            # Queued ahead of the halt, not waited for: the halt goes out now.
            halt = self._commands.halt_intent(events)
        self._log_step(step, by)
        ledger = self._pump.ledger
        if command.kind is PumpCommand.START:
            ledger.start_sent()
        assert ctx.correlation_id is not None
        s = self.session
        assert s is not None
        outcome = await self._commands.send(
            command.kind,
            setpoints(s, command.kind, ledger.program_base_ul(command.kind)),
            pump_id=self.config.pump_id,
            session_id=self._session_id(),
            correlation_id=ctx.correlation_id,
        )
        if halt is not None:
            await self._commands.halt_written(halt)
        ledger.sent_at_s = outcome.sent_at_s
        if outcome.status is not None:
            self._pump.observe(outcome.status)
        await self._report(command, outcome, ctx)

    async def _write_first(
        self, events: list[NewEvent], ctx: StepContext, undo: Callable[[], None] | None
    ) -> None:
        if undo is None:
            self.log(events)
            return
        if await self._commands.durable(events):
            return
        # The intent is not a durable record, so the command is not sent: put the session
        # back, close the intent in the record (it may still land), and tell the nurse.
        undo()
        self.audit_failed()
        if ctx.command is not None:
            self.log([self._events.not_durable(ctx.command.kind, self.session, ctx.correlation_id)])
        raise AuditUnavailable("the audit log did not record the intent; nothing was sent")

    async def _report(self, command: CommandIntent, outcome: Outcome, ctx: StepContext) -> None:
        s = self.session
        assert s is not None
        kind = command.kind
        at = self.now()
        ctx.outcome = outcome
        if outcome.result is Result.CONFIRMED:
            step = self._confirmed(kind, at)
            self.account_after(kind, step.dest, outcome.status)
        elif outcome.result is Result.UNKNOWN:
            step = s.command_uncertain(command=kind, detail=outcome.detail[:500], at=at)
        else:
            step = s.command_failed(
                command=kind,
                detail=outcome.detail[:400],
                at=at,
                sent=outcome.result is not Result.NOT_SENT,
            )
            if kind in (PumpCommand.STOP, PumpCommand.PAUSE):
                self.account_after(kind, step.dest, outcome.status)
        self.record(step, DAEMON, ctx)

    def _confirmed(self, kind: PumpCommand, at: Stamp) -> Step:
        s = self.session
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

    def _step_events(self, step: Step, by: Actor, ctx: StepContext) -> list[NewEvent]:
        s = self.session
        assert s is not None
        facts = StepFacts(
            delivered_ul=self._pump.delivered_ul(),
            now_s=self._clock.monotonic(),
            pause_words=self.pause_words,
            policy=self.config.policy,
        )
        return self._events.step_events(s, step, by, ctx, facts, self._board)

    def record(self, step: Step, by: Actor, ctx: StepContext) -> None:
        self._record.write(self._step_events(step, by, ctx), self.session)
        self._log_step(step, by)

    def _session_id(self) -> str | None:
        return None if self.session is None else self.session.data.session_id

    def _log_step(self, step: Step, by: Actor) -> None:
        s = self.session
        if s is not None:
            logline.step(self.config.pump_id, s.data.session_id, step, by)

    def audit_failed(self) -> None:
        # The alarm's own event is queued behind the held ones: it is written, in order,
        # as soon as the store answers again.
        held = "kept in the local spool" if self._commands.journal.spooling else "held in memory"
        self.notice(
            "audit.write_failed",
            Priority.HIGH,
            f"Audit log unavailable on {self.config.pump_id}: events are {held} and will be "
            "written when it answers; no infusion can be started or resumed meanwhile.",
        )

    def checkpoint(self) -> None:
        """Record the session's whole state when it changed, and every
        ``checkpoint_every_s`` while drug is delivered, so a restarted daemon can rebuild
        it from the audit log alone (pumpd/recovery.py, controller/checkpoint.py)."""
        self._record.write([], self.session)

    def delivery_facts(self, s: Session, status: PumpStatus | None, now_s: float) -> DeliveryFacts:
        """What only the controller knows about an interrupted infusion, for the kernel's
        continuation rule: the pump as read now, the volume by its counter and by the
        independent account (opened at rate zero now), the delivery time and its bound."""
        acct = self._pump.ledger.opened_for_continuation(now_s)
        delivered = max(0, self._pump.delivered_ul())
        expected = acct.expected_ul(now_s)
        limits = self.limits
        max_s = None if limits is None else limits.max_delivery_s
        if max_s is None:
            max_s = float(s.protocol.protocol.limits.duration_min.hard_max * 60)
        return DeliveryFacts(
            pump=None if status is None else to_snapshot(status),
            delivered_ul=delivered,
            expected_ul=expected,
            delivery_elapsed_s=acct.delivery_elapsed_s(now_s),
            max_delivery_s=max_s,
        )

    async def take_over(
        self, session: Session | None, accounting: CheckpointAccounting | None
    ) -> None:
        """Take a pump over after a restart: read it, reconcile it with the rebuilt session.

        Never starts or resumes delivery. A pump delivering with no open session is
        stopped (the next poll's orphan check); a command that was in flight is in doubt
        until a reading settles it; a pump that lost its counters is an alarm that names the
        last delivered volume the log knows.
        """
        status = await self.read()
        open_session = session if session is not None and session.state not in TERMINAL else None
        self.session = open_session
        if open_session is None:
            detail = "no open session"
            if status is not None and MODE_OF[status.state].delivers:
                detail = f"no open session but the pump is {status.state.value}: stopped"
            self.log([self._events.recovered([], detail)])
            await self.orphan_check(self._pump.snapshot)
            return
        s = open_session
        self.limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
        record = CheckpointAccounting(None, None) if accounting is None else accounting
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
            bridge_s = None if lost else record.downtime_bridge_s(self._clock.now_utc(), limit_s)
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
                at=self.now(),
            )
            self.record(step, DAEMON, StepContext())
        if lost and status is not None:
            known = max(0, last.counter_ul - ledger.start_counter_ul) if account else 0
            # Re-anchored first, as the live loop does, so the alarm's head and every
            # later figure carry the volume the log knows on from the new counter.
            ledger.counter_lost(known, status, rebooted=rebooted, known_at_ul=last.counter_ul)
            self.latch(
                [
                    Action(
                        ActionKind.STOP,
                        Priority.HIGH,
                        "pump.state_lost",
                        f"The pump restarted or lost its volume counter while pumpd was "
                        f"down ({record.restart_evidence(status) or 'no restart'}, counter "
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
        self.log(
            [
                self._events.recovered(
                    [s.data.session_id],
                    f"session {s.data.session_id} rebuilt in {s.state.value}; pump "
                    f"{pump_text}, {self._pump.delivered_ul()} µL delivered, {carried}; "
                    "supervision resumed, nothing commanded",
                )
            ]
        )
        self.checkpoint()

"""The per-pump supervising controller: one poll loop, one session, one pump.

Every poll reads the pump, reports what the reading proves to the session (a prime
finished, the planned volume is in, an uncertain command settled), asks the safety kernel
and obeys it at once, then heartbeats the pump. Nurse commands and polls take the same
lock, so a command and a tick never interleave: nothing is ticked between sending a
command and reading its result.

The controller decides when; ``SessionSteps`` (steps.py) carries a step out over the
rooms below it (docs/controller.md, "Rooms and arrows"), the command path among them:
an intent is durable before a command that moves fluid is sent (else the session is put
back as it was), while a stop or pause goes to the pump even when the write fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import Clock, Stamp
from pumpd.drivers import DriverError, PumpCapabilities, PumpDriver, PumpStatus, PushedAlarm
from pumpd.protocols import LoadedProtocol
from pumpd.session import Session, State, Step
from safety.actions import Action, ActionKind, Priority
from safety.course import PriorSession
from safety.order import Override
from safety.plan import Order, Patient, Plan
from safety.pump import PumpSnapshot
from safety.tick import SupervisionLimits, supervision_limits
from safety.verdicts import Verdict
from safety.vitals import VitalsReading

from .alarms import AlarmView, Notice
from .checkpoint import CheckpointAccounting
from .config import ControllerConfig, real_seconds
from .errors import AlarmNotSeen, NothingToAcknowledge, PumpNotAnswering, SessionActive
from .events import words
from .executor import CommandPath
from .halting import obey_halt
from .journal import Actor, Journal
from .kernel import decide
from .observation import PumpObservation
from .schedule import PollSchedule
from .status import ControllerStatus
from .steps import DAEMON, TERMINAL, NurseAct, SessionSteps
from .translate import to_snapshot
from .wake import until_poll_or_push

_HALT_KINDS = (ActionKind.STOP, ActionKind.PAUSE)

__all__ = ["DAEMON", "TERMINAL", "AlarmView", "Controller", "ControllerStatus", "Notice"]


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
        self._steps = SessionSteps(driver=driver, writer=writer, clock=clock, config=config)
        self._board = self._steps.board
        self._pump = self._steps.pump
        self._commands = self._steps.commands
        self.lock = asyncio.Lock()  # its holder knows no command is in flight
        self._pulse = _Pulse(0, clock.monotonic())

    # -- reading -------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        return self._steps.session

    @property
    def limits(self) -> SupervisionLimits | None:
        """The kernel's limits for the open session's plan."""
        return self._steps.limits

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
    def capabilities(self) -> PumpCapabilities:
        return self._steps.gate.capabilities

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
        s = self._steps.session
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
        s, limits = self._steps.session, self._steps.limits
        if s is None or limits is None:
            return None
        since = s.paused_since_s()
        return None if since is None else since + limits.pause_stop_after_s

    # -- running -------------------------------------------------------------------

    async def attach(self) -> None:
        """Arm the pump's own failsafe; call once the driver is connected."""
        async with self.lock:
            await self._commands.arm_failsafe(self.config.heartbeat_timeout_s)
            await self._steps.read()

    async def run(self) -> None:
        """Poll until cancelled (how the daemon dies: the pump then stops itself when the
        heartbeat goes quiet); an alarm the pump pushes is a tick at once, on its packet."""
        driver = self._commands.driver
        schedule = PollSchedule.for_driver(driver)
        pushed = None  # the alarm packet that woke the tick
        while True:
            await self.poll(pushed)
            step_s = real_seconds(self._clock, self._steps.next_read_in_s())
            delay = schedule.delay_s(step_s, real_seconds(self._clock, self.config.poll_period_s))
            if (pushed := await until_poll_or_push(driver, delay)) is not None:
                schedule.extra_poll(step_s)

    async def poll(self, pushed: PushedAlarm | None = None) -> None:
        async with self.lock:
            await self._poll(pushed)

    async def _poll(self, pushed: PushedAlarm | None) -> None:
        self._pulse.polls += 1
        status = await self._steps.read(pushed)
        journal = self.journal
        journal.flush()
        if journal.stalled(self.config.intent_wait_s) or journal.degraded:
            self._steps.audit_failed()
        # The reading is judged, and any halt commanded, before the heartbeat: on a line
        # shared by many pumps the heartbeat's write waits its turn, and a reaction must
        # not wait for it (docs/controller.md, "One poll").
        if status is not None:
            await self._steps.status_facts(status)
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
        self._steps.checkpoint()
        self._pulse.last_poll_s = self._clock.monotonic()

    # -- the kernel ----------------------------------------------------------------

    async def _supervise(self) -> None:
        s = self._steps.session
        snap = self._pump.snapshot
        if s is None or s.state in TERMINAL or self._steps.limits is None:
            await self._steps.orphan_check(snap)
            # The next session's first tick compares with this pump as it is now, not
            # as the last session left it (a restart in between is nobody's event).
            self._pump.ticked(snap)
            return
        now, limits = self._clock.monotonic(), self._steps.limits
        decision = decide(limits, self._pump, s, now, self._steps.gate.volume_stop)
        await self._obey(decision.actions, snap)
        self._pump.ticked(snap)

    async def _obey(self, actions: Sequence[Action], snap: PumpSnapshot | None) -> None:
        halting = [a for a in actions if a.kind in _HALT_KINDS]
        if halting:
            await obey_halt(self._steps, halting, snap)
        delivering = snap is None or snap.mode.delivers
        for action in actions:
            if action.kind is ActionKind.ALARM:
                # A low-priority alarm (a low battery) the nurse acknowledged while its
                # cause lasts is a notice from then on: latched again at every tick, the
                # session could never leave ALARM to start or resume.
                if delivering or self._board.seen_low(action.code, action.priority):
                    self._steps.notice(action.code, action.priority, action.message)
                else:
                    self._steps.latch([action], effect="not running")
        self._board.remind(
            [a for a in actions if a.kind is ActionKind.REMIND], self._steps.live_session()
        )
        self._board.lasting({a.code for a in actions if a.kind is ActionKind.ALARM})

    # -- recovery --------------------------------------------------------------------

    async def recover(self, session: Session | None, record: CheckpointAccounting | None) -> None:
        """Take a pump over after a restart: read it, reconcile it with the rebuilt session
        (``SessionSteps.take_over``). Never starts or resumes delivery."""
        async with self.lock:
            await self._steps.take_over(session, record)

    # -- the nurse's commands ----------------------------------------------------------

    async def _nurse(self, by: Actor, act: NurseAct, *, undo: bool) -> Step:
        async with self.lock:
            s = self._steps.need()
            before = s.snapshot()
            step = act(s, by.name, self._steps.now())
            await self._steps.carry_out(
                step, by, undo=self._steps.undo_to(before, s.protocol) if undo else None
            )
            return step

    async def program(
        self,
        *,
        by: Actor,
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
        async with self.lock:
            s = self._steps.session
            at = self._steps.now()
            if s is not None and s.state not in TERMINAL:
                if s.state not in (State.PROGRAMMED, State.VERIFIED):
                    raise SessionActive(
                        f"pump {self.config.pump_id} has session {s.data.session_id} "
                        f"in {s.state.value}; end it first"
                    )
                before = s.snapshot()
                step = s.program(
                    by=by.name,
                    patient=patient,
                    order=order,
                    at=at,
                    override=override,
                    prior_sessions=prior_sessions,
                )
                await self._steps.carry_out(step, by, undo=self._steps.undo_to(before, s.protocol))
            else:
                ledger = self._pump.ledger
                previous = (self._steps.session, self._steps.limits, ledger.account)
                new, step = Session.open(
                    session_id=session_id,
                    pump_id=self.config.pump_id,
                    patient_ref=patient_ref,
                    protocol=protocol,
                    by=by.name,
                    patient=patient,
                    order=order,
                    at=at,
                    override=override,
                    prior_sessions=prior_sessions,
                )

                def undo() -> None:
                    self._steps.session, self._steps.limits, ledger.account = previous

                self._steps.session, ledger.account = new, None
                self._board.new_session()
                await self._steps.carry_out(step, by, undo=undo)
            s = self._steps.session
            assert s is not None
            self._steps.limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
            return step

    async def confirm(
        self,
        *,
        by: Actor,
        weight: str,
        approve_override: bool = False,
        shown: Sequence[str] | None = None,
    ) -> Step:
        return await self._nurse(
            by,
            lambda s, n, t: s.confirm(
                by=n, weight=weight, approve_override=approve_override, shown=shown, at=t
            ),
            undo=True,
        )

    async def approve(
        self,
        *,
        by: Actor,
        prior_sessions: Sequence[PriorSession] = (),
        shown: Sequence[str] | None = None,
    ) -> Step:
        """A second person approves the override holding back an adjustment or a start;
        a held start reads the pump again, and the start checks run on that reading."""
        async with self.lock:
            s = self._steps.need()
            snapshot = None
            if s.data.pending_start_override is not None:
                status = await self._steps.read()
                if status is None:
                    raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
                snapshot = to_snapshot(status)
            before = s.snapshot()
            step = s.approve(
                by=by.name,
                pump=snapshot,
                prior_sessions=prior_sessions,
                shown=shown,
                at=self._steps.now(),
            )
            await self._steps.carry_out(step, by, undo=self._steps.undo_to(before, s.protocol))
            if s.plan is not None:
                self._steps.limits = supervision_limits(
                    s.protocol.protocol, s.plan, self.config.policy
                )
            return step

    async def prime(self, *, by: Actor, line_disconnected: bool) -> Step:
        return await self._nurse(
            by,
            lambda s, n, t: s.request_prime(by=n, line_disconnected=line_disconnected, at=t),
            undo=True,
        )

    async def start(
        self,
        *,
        by: Actor,
        prior_sessions: Sequence[PriorSession] = (),
        primed_confirmed: bool = False,
        override: Override | None = None,
        override_reason: str | None = None,
    ) -> Step:
        """``override_reason``: the starting nurse's reason for the start's soft verdicts
        (the override then covers exactly the soft verdicts of this very reading)."""
        async with self.lock:
            s = self._steps.need()
            status = await self._steps.read()
            if status is None:
                raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
            if override is None and override_reason is not None:
                soft = s.start_soft_codes(
                    by=by.name,
                    pump=to_snapshot(status),
                    prior_sessions=prior_sessions,
                    at=self._steps.now(),
                )
                if soft:
                    override = Override(by=by.name, reason=override_reason, codes=frozenset(soft))
            before = s.snapshot()
            step = s.request_start(
                by=by.name,
                pump=to_snapshot(status),
                prior_sessions=prior_sessions,
                primed_confirmed=primed_confirmed,
                override=override,
                at=self._steps.now(),
            )
            await self._steps.carry_out(step, by, undo=self._steps.undo_to(before, s.protocol))
            return step

    async def pause(
        self, *, by: Actor, reason_code: str = "nurse.pause", reason: str | None = None
    ) -> Step:
        """Pause; ``reason`` (the nurse's words) goes into the intent and ``session.paused``,
        so the session's own record says why (the session keeps only the code)."""

        def act(s: Session, name: str, at: Stamp) -> Step:
            step = s.pause(by=name, at=at, reason_code=reason_code)
            self._steps.pause_words = words(reason)
            return step

        return await self._nurse(by, act, undo=False)

    async def resume(self, *, by: Actor, reason: str | None = None) -> Step:
        """Resume a paused infusion, or continue an interrupted one (from STOPPED: the
        kernel's continuation rule decides, on the pump as read now and both figures of
        what was given; docs/controller.md, "Continuing an interrupted infusion")."""
        async with self.lock:
            s = self._steps.need()
            if s.state is not State.STOPPED:
                before = s.snapshot()
                step = s.resume(by=by.name, at=self._steps.now())
                undo = self._steps.undo_to(before, s.protocol)
                status = self._pump.status
                if status is not None and self._pump.ledger.account is not None:
                    undo = self._pump.ledger.reanchored(status, self._clock.monotonic(), undo)
                await self._steps.carry_out(step, by, undo=undo)
                return step
            return await self._continue(s, by, reason)

    async def _continue(self, s: Session, by: Actor, reason: str | None) -> Step:
        status = await self._steps.read()
        now_s = self._clock.monotonic()
        facts = self._steps.delivery_facts(s, status, now_s)
        before = s.snapshot()
        step = s.resume(by=by.name, reason=reason, delivery=facts, at=self._steps.now())
        assert status is not None  # the kernel refuses a pump that does not answer
        undo = self._pump.ledger.reanchored(status, now_s, self._steps.undo_to(before, s.protocol))
        await self._steps.carry_out(step, by, undo=undo)
        return step

    async def adjust(
        self,
        *,
        by: Actor,
        reason: str,
        order: Order,
        override: Override | None = None,
        protocol: LoadedProtocol | None = None,
    ) -> Plan:
        """Step one of two: propose a new plan; returns it for the nurse to see."""
        async with self.lock:
            s = self._steps.need()
            s.adjust(
                by=by.name,
                reason=reason,
                order=order,
                delivered_ul=self.delivered_ul(),
                override=override,
                protocol=protocol,
                at=self._steps.now(),
            )
            plan = s.proposed_plan
            assert plan is not None
            return plan

    async def confirm_adjust(self, *, by: Actor) -> Step:
        step = await self._nurse(by, lambda s, n, t: s.confirm_adjust(by=n, at=t), undo=True)
        s = self._steps.session
        if s is not None:
            self._steps.limits = supervision_limits(s.protocol.protocol, s.plan, self.config.policy)
        return step

    async def cancel_adjust(self, *, by: Actor) -> Step:
        return await self._nurse(by, lambda s, n, t: s.cancel_adjust(by=n, at=t), undo=True)

    async def stop(self, *, by: Actor, reason: str) -> Step:
        return await self._nurse(by, lambda s, n, t: s.stop(by=n, reason=reason, at=t), undo=False)

    def _held(self) -> bool:
        """Events wait for the audit database (its alarm cannot be acknowledged yet)."""
        return bool(self.journal.backlog) or self.journal.degraded

    def _acknowledgeable(self) -> list[tuple[str, str]]:
        """(code, message) of what an acknowledgement would clear now: the daemon's
        notices (not the audit-log alarm while the database is away) and, in ALARM, the
        session's latched alarms."""
        s = self._steps.session
        in_alarm = s if s is not None and s.state is State.ALARM else None
        return self._board.acknowledgeable(self._held(), in_alarm)

    async def acknowledge(
        self, *, by: Actor, note: str | None = None, seen: Collection[str] | None = None
    ) -> Step | None:
        """Acknowledge the latched alarms (and the daemon's own notices).

        ``seen``: the alarm codes the person was shown; when given, an alarm latched since
        (not among them) refuses the whole acknowledgement with its message."""
        async with self.lock:
            if seen is not None:
                unseen = [(c, m) for c, m in self._acknowledgeable() if c not in seen]
                if unseen:
                    raise AlarmNotSeen(
                        f"a new alarm on {self.config.pump_id} came in after your screen was "
                        f"shown, so nothing was acknowledged: {unseen[0][1]} Look at it, then "
                        "acknowledge again."
                    )
            cleared, held = self._board.acknowledge_notices(
                by, note, self._held(), self._steps.live_session()
            )
            s = self._steps.session
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
            status = await self._steps.read()
            if status is None:
                raise PumpNotAnswering(f"pump {self.config.pump_id} does not answer")
            before = s.snapshot()
            low = {a.code for a in s.data.alarms if a.priority is Priority.LOW}
            step = self._pump.acknowledge(s, by.name, note, status, self._steps.now())
            await self._steps.carry_out(step, by, undo=self._steps.undo_to(before, s.protocol))
            self._board.acked_low(low)
            return step

    async def vitals(self, *, by: Actor, reading: VitalsReading) -> Step:
        return await self._nurse(
            by, lambda s, n, t: s.record_vitals(by=n, reading=reading, at=t), undo=True
        )

    async def note(self, *, by: Actor, text: str) -> Step:
        return await self._nurse(by, lambda s, n, t: s.note(by=n, text=text, at=t), undo=True)

    async def observe(self, *, by: Actor) -> Step:
        return await self._nurse(by, lambda s, n, t: s.observe(by=n, at=t), undo=True)

    async def discharge_gates(self) -> list[Verdict]:
        """The observation-time and vitals gates of a discharge, judged now (nothing
        changes): pumpctl asks them before any checklist question."""
        async with self.lock:
            return self._steps.need().discharge_gates(self._steps.now())

    async def discharge(self, *, by: Actor, checklist_confirmed: Collection[str]) -> Step:
        return await self._nurse(
            by,
            lambda s, n, t: s.discharge(by=n, checklist_confirmed=checklist_confirmed, at=t),
            undo=True,
        )

    async def end(self, *, by: Actor, reason: str) -> Step:
        """End an interrupted infusion instead of continuing it: the observation begins."""
        return await self._nurse(by, lambda s, n, t: s.end(by=n, reason=reason, at=t), undo=True)

    async def abort(self, *, by: Actor, reason: str) -> Step:
        return await self._nurse(by, lambda s, n, t: s.abort(by=n, reason=reason, at=t), undo=True)

"""A simulated session driven tick by tick with random time steps, pump faults, lost
polls and reboots; after every step the tick's safety invariants must hold."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_tick_nominal import limits, reading

from safety.actions import Priority
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.tick import Outcome, SessionPhase, TickDecision, TickInputs, evaluate

LIMITS = limits(vitals=None, max_delivery_s=None)
RATE = Decimal("150.00")


class TickSession(RuleBasedStateMachine):
    """The machine is the controller's bookkeeping plus a crude pump; each rule is one event."""

    @initialize()
    def start(self) -> None:
        self.now_s = 100.0
        self.phase = SessionPhase.INFUSING
        self.last_comm_s = self.now_s
        self.paused_since_s: float | None = None
        self.expected_ul = 0.0
        self.pump_volume_ul = 0.0
        self.pump_mode = PumpMode.INFUSING
        self.pump_rate = RATE
        self.alarms = PumpAlarm.NONE
        self.uptime_s = 5_000.0
        self.reachable = True
        self.previous: PumpSnapshot | None = None
        self.current: PumpSnapshot | None = self._read()
        self.rebooted = False

    def _read(self) -> PumpSnapshot:
        return PumpSnapshot(
            mode=self.pump_mode,
            alarms=self.alarms,
            warnings=PumpWarning.NONE,
            rate_actual_ml_h=self.pump_rate if self.pump_mode.delivers else Decimal(0),
            volume_infused_ul=int(self.pump_volume_ul),
            volume_primed_ul=15_000,
            uptime_s=int(self.uptime_s),
        )

    @rule(
        step_s=st.floats(min_value=0, max_value=20),
        error=st.sampled_from([0.0, 0.0, 0.05, 0.3, -0.3]),
    )
    def time_passes(self, step_s: float, error: float) -> None:
        self.now_s += step_s
        self.uptime_s += step_s
        if self.phase is SessionPhase.INFUSING:
            self.expected_ul += float(RATE) * step_s / 3.6
        if self.pump_mode.delivers:
            self.pump_volume_ul += float(self.pump_rate) * step_s / 3.6 * (1 + error)

    @rule()
    def poll_succeeds(self) -> None:
        if self.reachable:
            self.previous, self.current = self.current, self._read()
            self.last_comm_s = self.now_s
            self.rebooted = False

    @rule()
    def link_drops(self) -> None:
        self.reachable = False
        self.previous, self.current = self.current, None

    @rule()
    def link_returns(self) -> None:
        self.reachable = True

    @rule(flag=st.sampled_from([a for a in PumpAlarm if a]))
    def pump_raises_alarm(self, flag: PumpAlarm) -> None:
        self.alarms |= flag
        self.pump_mode = PumpMode.ALARM

    @rule()
    def pump_reboots(self) -> None:
        self.uptime_s = 1.0
        self.pump_volume_ul = 0.0
        self.pump_mode = PumpMode.IDLE
        self.alarms = PumpAlarm.NONE
        if self.reachable and self.current is not None:
            self.previous, self.current = self.current, self._read()
            self.last_comm_s = self.now_s
            self.rebooted = True

    @rule(rate=st.decimals(min_value=0, max_value=400, places=2))
    def pump_rate_drifts(self, rate: Decimal) -> None:
        self.pump_rate = rate

    @rule()
    def nurse_pauses(self) -> None:
        if self.phase is SessionPhase.INFUSING:
            self.phase = SessionPhase.PAUSED
            self.paused_since_s = self.now_s
            if self.pump_mode is PumpMode.INFUSING:
                self.pump_mode = PumpMode.PAUSED

    @rule()
    def nurse_resumes(self) -> None:
        if self.phase is SessionPhase.PAUSED:
            self.phase = SessionPhase.INFUSING
            self.paused_since_s = None
            if self.pump_mode is PumpMode.PAUSED:
                self.pump_mode = PumpMode.INFUSING

    def decide(self) -> TickDecision:
        return evaluate(
            LIMITS,
            TickInputs(
                now_s=self.now_s,
                phase=self.phase,
                commanded_rate_ml_h=RATE if self.phase is SessionPhase.INFUSING else Decimal(0),
                commanded_vtbi_ul=100_000,
                rate_commanded_at_s=100.0,
                snapshot=self.current,
                previous_snapshot=self.previous,
                last_good_comm_s=self.last_comm_s,
                delivery_elapsed_s=None,
                expected_volume_ul=int(self.expected_ul),
                vitals=reading(),
                vitals_taken_s=self.now_s,
                paused_since_s=self.paused_since_s,
            ),
        )

    @invariant()
    def alarm_flag_never_continues(self) -> None:
        decision = self.decide()
        if self.current is not None and self.current.in_alarm:
            assert decision.outcome is Outcome.STOP
            assert decision.priority is Priority.HIGH

    @invariant()
    def silence_past_the_timeout_stops(self) -> None:
        if self.now_s - self.last_comm_s > LIMITS.comm_timeout_s:
            assert "tick.comm.lost" in self.decide().codes

    @invariant()
    def delivery_beyond_the_vtbi_stops(self) -> None:
        snap = self.current
        if snap is not None and snap.volume_infused_ul > LIMITS.vtbi_ul + LIMITS.vtbi_overrun_ul:
            assert self.decide().outcome is Outcome.STOP

    @invariant()
    def a_reboot_stops(self) -> None:
        prev, cur = self.previous, self.current
        if self.rebooted and prev is not None and cur is not None and cur.uptime_s < prev.uptime_s:
            assert "tick.pump.rebooted" in self.decide().codes

    @invariant()
    def volume_far_from_expected_is_acted_on(self) -> None:
        snap = self.current
        if snap is None or (self.phase is SessionPhase.PAUSED and snap.mode.delivers):
            return
        gap = abs(snap.volume_infused_ul - int(self.expected_ul))
        if self.phase is SessionPhase.PAUSED and snap.volume_infused_ul < int(self.expected_ul):
            return  # a deficit while paused: the pause it calls for is in effect
        if gap > max(LIMITS.volume_tolerance_abs_ul, int(self.expected_ul) // 10 + 1):
            assert self.decide().outcome in (Outcome.PAUSE, Outcome.STOP)

    @invariant()
    def delivering_outside_a_delivery_phase_stops(self) -> None:
        snap = self.current
        if snap is not None and snap.mode.delivers and self.phase is SessionPhase.PAUSED:
            assert self.decide().outcome is Outcome.STOP


TestTickSession = TickSession.TestCase

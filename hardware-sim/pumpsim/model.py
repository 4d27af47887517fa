"""One GIP-MB1 pump: the state machine and its physics, pure and clock-free.

Time is handed in (`advance` / `advance_to`, in scaled seconds), so the same model runs
under a test that steps it by hand and under the Modbus server that steps it to "now"
before every register access. Volumes are integrated as exact fractions of a µL and only
floored when they become a register, so the delivered volume equals rate × time to the
register's resolution at any rate; events inside a step (VTBI reached, prime done,
heartbeat deadline, battery empty) are found exactly and the step is split there, so no
volume is ever delivered past the moment the pump should have stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from pumpsim import registers as reg
from pumpsim.errors import ModelInputError
from pumpsim.registers import AlarmFlag, CmdResult, Command, State, WarningFlag

Seconds = Fraction | Decimal | int | float

DEFAULT_MAX_RATE_CENTI_ML_H = 120_000  # 1200.00 mL/h
LOW_BATTERY_THRESHOLD_PERCENT = 20
LOW_BATTERY_FAULT_PERCENT = 15
# Battery drain in % per scaled second: about 1 %/h pumping, 0.2 %/h standing by.
BATTERY_DRAIN_RUNNING_PCT_S = Fraction(1, 3600)
BATTERY_DRAIN_IDLE_PCT_S = Fraction(1, 18_000)
# Downstream pressure (mmHg): a line at rest, a running line, an occluded one.
PRESSURE_REST_MMHG = 0
PRESSURE_RUNNING_MMHG = 20
PRESSURE_UPSTREAM_OCCLUDED_MMHG = -30
PRESSURE_OCCLUDED_MAX_MMHG = 900
PRESSURE_RISE_MMHG_S = Fraction(15)  # while occluded downstream
PRESSURE_RELAX_MMHG_S = Fraction(30)  # towards the unoccluded target
# 0.01 mL/h = 10 µL/h, so µL per second = centi-mL/h / 360.
_CENTI_ML_H_PER_UL_S = 360

RUNNING_STATES = frozenset({State.PRIMING, State.INFUSING, State.KVO})
ALARMABLE_STATES = frozenset({State.PRIMING, State.INFUSING, State.PAUSED, State.KVO})
# Faults that are alarm conditions (present now), as opposed to COMM_LOSS, which only latches.
CONDITION_FLAGS = (
    AlarmFlag.OCCLUSION_DOWNSTREAM
    | AlarmFlag.OCCLUSION_UPSTREAM
    | AlarmFlag.AIR_IN_LINE
    | AlarmFlag.DOOR_OPEN
    | AlarmFlag.SYSTEM_FAULT
    | AlarmFlag.BATTERY_DEPLETED
)


@dataclass(frozen=True)
class CommandTaken:
    """A command the pump took (executed or rejected), as it will be echoed."""

    cmd_seq: int
    command: int
    result: CmdResult


def _fraction(value: Seconds) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelInputError(f"time must be finite, got {value!r}")
    return Fraction(value)


class PumpModel:
    """A GIP-MB1 pump. Only the register image and the fault setters change it."""

    def __init__(
        self,
        *,
        serial_number: int,
        max_rate_centi_ml_h: int = DEFAULT_MAX_RATE_CENTI_ML_H,
        battery_percent: int = 100,
    ) -> None:
        if not 0 <= serial_number <= reg.U32_MAX:
            raise ModelInputError(f"serial_number {serial_number} does not fit in u32")
        if not 0 < max_rate_centi_ml_h <= reg.U32_MAX:
            raise ModelInputError(f"max_rate_centi_ml_h {max_rate_centi_ml_h} out of range")
        if not 0 <= battery_percent <= 100:
            raise ModelInputError(f"battery_percent {battery_percent} not in 0..100")
        self.serial_number = serial_number
        self.max_rate_centi_ml_h = max_rate_centi_ml_h
        self._now_s = Fraction(0)
        self._battery_pct = Fraction(battery_percent)
        self._pressure_mmhg = Fraction(PRESSURE_REST_MMHG)
        # Faults (physical conditions and misbehaviours) survive a reboot.
        self._condition_faults = AlarmFlag.NONE
        self._low_battery_fault = False
        self._runaway_factor: Fraction | None = None
        self._stuck_volume = False
        self._ignore_commands = False
        self.commands_ignored = 0
        self._power_up()

    def _power_up(self) -> None:
        self._boot_s = self._now_s
        self._state = State.IDLE
        self._latched = AlarmFlag.NONE
        self._vtbi_complete = False
        self._holding = [0] * reg.HOLDING_COUNT
        self._last_cmd_seq = 0
        self._last_cmd_result = CmdResult.OK
        self._infused_ul = Fraction(0)  # the pump's counter
        self._primed_ul = Fraction(0)
        self._true_infused_ul = Fraction(0)  # what really went through the line
        self._true_primed_ul = Fraction(0)
        self._prime_target_ul = Fraction(0)
        self._hb_changed_s = self._now_s
        self._running_since_s = self._now_s

    # ---------------------------------------------------------------- inspection

    @property
    def now_s(self) -> Fraction:
        return self._now_s

    @property
    def state(self) -> State:
        return self._state

    @property
    def conditions(self) -> AlarmFlag:
        """Alarm conditions present now (never COMM_LOSS, which is an event, not a condition)."""
        present = self._condition_faults
        if self._battery_pct <= 0:
            present |= AlarmFlag.BATTERY_DEPLETED
        return present

    @property
    def alarm_flags(self) -> AlarmFlag:
        return self._latched if self._state is State.ALARM else self.conditions

    @property
    def battery_percent(self) -> int:
        if self._condition_faults & AlarmFlag.BATTERY_DEPLETED:
            return 0
        level = math.ceil(self._battery_pct)
        if self._low_battery_fault:
            level = min(level, LOW_BATTERY_FAULT_PERCENT)
        return level

    @property
    def warning_flags(self) -> WarningFlag:
        flags = WarningFlag.NONE
        if self._low_battery_fault or self.battery_percent <= LOW_BATTERY_THRESHOLD_PERCENT:
            flags |= WarningFlag.LOW_BATTERY
        if self._vtbi_complete:
            flags |= WarningFlag.VTBI_COMPLETE
        return flags

    def _u32(self, field: reg.Field) -> int:
        offset = field.address - reg.HOLDING_FIRST
        return (self._holding[offset] << 16) | self._holding[offset + 1]

    def _u16(self, field: reg.Field) -> int:
        return self._holding[field.address - reg.HOLDING_FIRST]

    @property
    def rate_setpoint_centi_ml_h(self) -> int:
        return self._u32(reg.RATE_SETPOINT)

    @property
    def vtbi_ul(self) -> int:
        return self._u32(reg.VTBI)

    @property
    def kvo_rate_centi_ml_h(self) -> int:
        return self._u32(reg.KVO_RATE)

    @property
    def prime_volume_ul(self) -> int:
        return self._u32(reg.PRIME_VOLUME)

    @property
    def prime_rate_centi_ml_h(self) -> int:
        return self._u32(reg.PRIME_RATE)

    @property
    def heartbeat(self) -> int:
        return self._u16(reg.HEARTBEAT)

    @property
    def heartbeat_timeout_s(self) -> int:
        return self._u16(reg.HEARTBEAT_TIMEOUT)

    @property
    def last_cmd_seq(self) -> int:
        return self._last_cmd_seq

    @property
    def last_cmd_result(self) -> CmdResult:
        return self._last_cmd_result

    @property
    def rate_actual_exact_centi_ml_h(self) -> Fraction:
        """What the mechanism does now; a runaway pump reports it truthfully."""
        if self._state is State.PRIMING:
            commanded = self.prime_rate_centi_ml_h
        elif self._state is State.INFUSING:
            commanded = self.rate_setpoint_centi_ml_h
        elif self._state is State.KVO:
            commanded = self.kvo_rate_centi_ml_h
        else:
            return Fraction(0)
        # The mechanism cannot exceed its own limit, unless it has run away.
        rate = Fraction(min(commanded, self.max_rate_centi_ml_h))
        if self._runaway_factor is not None:
            rate = Fraction(commanded) * self._runaway_factor
        return rate

    @property
    def rate_actual_centi_ml_h(self) -> int:
        return math.floor(self.rate_actual_exact_centi_ml_h)

    @property
    def volume_infused_ul(self) -> int:
        return math.floor(self._infused_ul)

    @property
    def volume_primed_ul(self) -> int:
        return math.floor(self._primed_ul)

    @property
    def volume_infused_exact_ul(self) -> Fraction:
        return self._infused_ul

    @property
    def true_infused_ul(self) -> Fraction:
        """Fluid that really went in since CLEAR_VOLUMES, whatever the counter says."""
        return self._true_infused_ul

    @property
    def true_primed_ul(self) -> Fraction:
        return self._true_primed_ul

    @property
    def pressure_downstream_mmhg(self) -> int:
        return round(self._pressure_mmhg)

    @property
    def uptime_s(self) -> int:
        return math.floor(self._now_s - self._boot_s)

    @property
    def faults(self) -> dict[str, object]:
        return {
            "conditions": [f.name for f in AlarmFlag if f and f in self._condition_faults],
            "low_battery": self._low_battery_fault,
            "runaway_factor": (
                None
                if self._runaway_factor is None
                else str(Decimal(self._runaway_factor.numerator) / self._runaway_factor.denominator)
            ),
            "stuck_volume": self._stuck_volume,
            "ignore_commands": self._ignore_commands,
        }

    def input_registers(self) -> list[int]:
        values = {
            reg.PROFILE_VERSION_REG: reg.PROFILE_VERSION,
            reg.SERIAL_NUMBER: self.serial_number,
            reg.STATE: int(self._state),
            reg.ALARM_FLAGS: int(self.alarm_flags),
            reg.WARNING_FLAGS: int(self.warning_flags),
            reg.RATE_ACTUAL: self.rate_actual_centi_ml_h,
            reg.VOLUME_INFUSED: self.volume_infused_ul,
            reg.VOLUME_PRIMED: self.volume_primed_ul,
            reg.PRESSURE_DOWNSTREAM: self.pressure_downstream_mmhg,
            reg.BATTERY_PERCENT: self.battery_percent,
            reg.LAST_CMD_SEQ: self._last_cmd_seq,
            reg.LAST_CMD_RESULT: int(self._last_cmd_result),
            reg.HEARTBEAT_ECHO: self.heartbeat,
            reg.MAX_RATE: self.max_rate_centi_ml_h,
            reg.UPTIME_S: self.uptime_s,
        }
        words = [0] * reg.INPUT_COUNT
        for field, value in values.items():
            start = field.address - reg.INPUT_FIRST
            words[start : start + field.words] = reg.encode(field, value)
        return words

    def holding_registers(self) -> list[int]:
        return list(self._holding)

    def snapshot(self) -> dict[str, object]:
        """Everything a test or an operator may want to see, JSON-ready."""
        return {
            "state": self._state.name,
            "alarm_flags": [f.name for f in AlarmFlag if f and f in self.alarm_flags],
            "conditions": [f.name for f in AlarmFlag if f and f in self.conditions],
            "warning_flags": [f.name for f in WarningFlag if f and f in self.warning_flags],
            "rate_actual_centi_ml_h": self.rate_actual_centi_ml_h,
            "volume_infused_ul": self.volume_infused_ul,
            "volume_primed_ul": self.volume_primed_ul,
            "true_infused_ul": str(math.floor(self._true_infused_ul)),
            "true_primed_ul": str(math.floor(self._true_primed_ul)),
            "pressure_downstream_mmhg": self.pressure_downstream_mmhg,
            "battery_percent": self.battery_percent,
            "last_cmd_seq": self._last_cmd_seq,
            "last_cmd_result": self._last_cmd_result.name,
            "heartbeat": self.heartbeat,
            "heartbeat_timeout_s": self.heartbeat_timeout_s,
            "rate_setpoint_centi_ml_h": self.rate_setpoint_centi_ml_h,
            "vtbi_ul": self.vtbi_ul,
            "kvo_rate_centi_ml_h": self.kvo_rate_centi_ml_h,
            "prime_volume_ul": self.prime_volume_ul,
            "prime_rate_centi_ml_h": self.prime_rate_centi_ml_h,
            "max_rate_centi_ml_h": self.max_rate_centi_ml_h,
            "serial_number": self.serial_number,
            "uptime_s": self.uptime_s,
            "sim_time_s": str(self._now_s),
            "commands_ignored": self.commands_ignored,
            "faults": self.faults,
        }

    # ---------------------------------------------------------------- physics

    def advance_to(self, t_s: Seconds) -> None:
        """Run the pump up to scaled time `t_s`; a time in the past changes nothing."""
        target = _fraction(t_s)
        if target > self._now_s:
            self.advance(target - self._now_s)

    def advance(self, dt_s: Seconds) -> None:
        """Run the pump for `dt_s` scaled seconds, splitting the step at every event."""
        dt = _fraction(dt_s)
        if dt < 0:
            raise ModelInputError(f"cannot advance by a negative time ({dt_s!r} s)")
        end = self._now_s + dt
        while self._now_s < end:
            step = end - self._now_s
            until_event = self._time_to_next_event()
            if until_event is not None and until_event <= step:
                self._integrate(until_event)
                self._fire_due_events()
            else:
                self._integrate(step)

    def _ul_per_s(self) -> Fraction:
        return self.rate_actual_exact_centi_ml_h / _CENTI_ML_H_PER_UL_S

    def _battery_drain_pct_s(self) -> Fraction:
        if self._state in RUNNING_STATES:
            return BATTERY_DRAIN_RUNNING_PCT_S
        return BATTERY_DRAIN_IDLE_PCT_S

    def _heartbeat_deadline_s(self) -> Fraction | None:
        timeout = self.heartbeat_timeout_s
        if timeout == 0 or self._state not in RUNNING_STATES:
            return None
        return max(self._hb_changed_s, self._running_since_s) + timeout

    def _time_to_next_event(self) -> Fraction | None:
        candidates: list[Fraction] = []
        flow = self._ul_per_s()
        if self._state is State.INFUSING and not self._stuck_volume:
            remaining = self.vtbi_ul - self._infused_ul
            if remaining <= 0:
                candidates.append(Fraction(0))
            elif flow > 0:
                candidates.append(remaining / flow)
        if self._state is State.PRIMING and not self._stuck_volume:
            remaining = self._prime_target_ul - self._primed_ul
            if remaining <= 0:
                candidates.append(Fraction(0))
            elif flow > 0:
                candidates.append(remaining / flow)
        deadline = self._heartbeat_deadline_s()
        if deadline is not None:
            candidates.append(max(Fraction(0), deadline - self._now_s))
        if self._battery_pct > 0:
            candidates.append(self._battery_pct / self._battery_drain_pct_s())
        return min(candidates) if candidates else None

    def _integrate(self, dt: Fraction) -> None:
        if dt <= 0:
            return
        delivered = self._ul_per_s() * dt
        if self._state is State.PRIMING:
            self._true_primed_ul += delivered
            if not self._stuck_volume:
                self._primed_ul += delivered
        elif self._state in (State.INFUSING, State.KVO):
            self._true_infused_ul += delivered
            if not self._stuck_volume:
                self._infused_ul += delivered
        self._battery_pct = max(Fraction(0), self._battery_pct - self._battery_drain_pct_s() * dt)
        self._pressure_mmhg = self._pressure_after(dt)
        self._now_s += dt

    def _pressure_after(self, dt: Fraction) -> Fraction:
        if self._condition_faults & AlarmFlag.OCCLUSION_DOWNSTREAM:
            return min(
                Fraction(PRESSURE_OCCLUDED_MAX_MMHG),
                self._pressure_mmhg + PRESSURE_RISE_MMHG_S * dt,
            )
        if self._condition_faults & AlarmFlag.OCCLUSION_UPSTREAM:
            target = Fraction(PRESSURE_UPSTREAM_OCCLUDED_MMHG)
        elif self._ul_per_s() > 0:
            target = Fraction(PRESSURE_RUNNING_MMHG)
        else:
            target = Fraction(PRESSURE_REST_MMHG)
        step = PRESSURE_RELAX_MMHG_S * dt
        if self._pressure_mmhg < target:
            return min(target, self._pressure_mmhg + step)
        return max(target, self._pressure_mmhg - step)

    def _fire_due_events(self) -> None:
        counting = not self._stuck_volume
        if self._state is State.INFUSING and counting and self._infused_ul >= self.vtbi_ul:
            self._end_infusion()
        if self._state is State.PRIMING and counting and self._primed_ul >= self._prime_target_ul:
            self._state = State.IDLE
        deadline = self._heartbeat_deadline_s()
        if deadline is not None and self._now_s >= deadline:
            self._enter_alarm(AlarmFlag.COMM_LOSS)
        self._check_conditions()

    def _end_infusion(self) -> None:
        self._vtbi_complete = True
        self._state = State.KVO if self.kvo_rate_centi_ml_h > 0 else State.IDLE

    def _enter_alarm(self, causes: AlarmFlag) -> None:
        self._state = State.ALARM
        self._latched |= causes

    def _check_conditions(self) -> None:
        present = self.conditions
        if not present:
            return
        if self._state in ALARMABLE_STATES:
            self._enter_alarm(present)
        elif self._state is State.ALARM:
            self._latched |= present

    # ---------------------------------------------------------------- the wire

    def write_holding(self, address: int, values: list[int]) -> CommandTaken | None:
        """Apply a register write as the pump would; the command, if one was taken."""
        first, count = reg.HOLDING_FIRST, reg.HOLDING_COUNT
        if not values or address < first or address + len(values) > first + count:
            raise ModelInputError(
                f"write of {len(values)} register(s) at {address} is outside holding "
                f"registers {first}..{first + count - 1}"
            )
        for value in values:
            if not 0 <= value <= reg.U16_MAX:
                raise ModelInputError(f"register value {value} is not a 16-bit word")
        old_heartbeat = self.heartbeat
        offset = address - first
        self._holding[offset : offset + len(values)] = values
        written = range(address, address + len(values))
        if self.heartbeat != old_heartbeat:
            self._hb_changed_s = self._now_s
        if (
            self._state is State.INFUSING
            and (reg.VTBI.address in written or reg.VTBI.address + 1 in written)
            and self.vtbi_ul <= self._infused_ul
        ):
            self._end_infusion()
        # A command needs cmd_seq and command in one request: a half-written pair is
        # stored but never executed, so a stale command word cannot fire with a new seq.
        if reg.CMD_SEQ.address in written and reg.COMMAND.address in written:
            return self._take_command(self._u16(reg.CMD_SEQ), self._u16(reg.COMMAND))
        return None

    def _take_command(self, cmd_seq: int, command: int) -> CommandTaken | None:
        if command == 0 or cmd_seq == self._last_cmd_seq:
            return None
        if self._ignore_commands:
            self.commands_ignored += 1
            return None
        result = self._execute(command)
        self._last_cmd_seq = cmd_seq
        self._last_cmd_result = result
        return CommandTaken(cmd_seq=cmd_seq, command=command, result=result)

    def _execute(self, command: int) -> CmdResult:
        try:
            cmd = Command(command)
        except ValueError:
            return CmdResult.UNKNOWN_COMMAND
        handler = {
            Command.START: self._cmd_start,
            Command.PAUSE: self._cmd_pause,
            Command.STOP: self._cmd_stop,
            Command.PRIME: self._cmd_prime,
            Command.CLEAR_VOLUMES: self._cmd_clear_volumes,
            Command.ACK_ALARM: self._cmd_ack_alarm,
        }[cmd]
        return handler()

    def _enter_running(self, state: State) -> None:
        if self._state not in RUNNING_STATES:
            self._running_since_s = self._now_s
        self._state = state

    def _cmd_start(self) -> CmdResult:
        if self._state not in (State.IDLE, State.PAUSED):
            return CmdResult.REJECTED_STATE
        if self.conditions:
            return CmdResult.REJECTED_ALARM
        rate = self.rate_setpoint_centi_ml_h
        if not 0 < rate <= self.max_rate_centi_ml_h or not self.vtbi_ul > self._infused_ul:
            return CmdResult.REJECTED_PARAMS
        self._vtbi_complete = False
        self._enter_running(State.INFUSING)
        return CmdResult.OK

    def _cmd_pause(self) -> CmdResult:
        if self._state is not State.INFUSING:
            return CmdResult.REJECTED_STATE
        self._state = State.PAUSED
        return CmdResult.OK

    def _cmd_stop(self) -> CmdResult:
        if self._state is not State.ALARM:
            self._state = State.IDLE
        return CmdResult.OK

    def _cmd_prime(self) -> CmdResult:
        if self._state is not State.IDLE:
            return CmdResult.REJECTED_STATE
        if self.conditions:
            return CmdResult.REJECTED_ALARM
        rate = self.prime_rate_centi_ml_h
        if self.prime_volume_ul <= 0 or not 0 < rate <= self.max_rate_centi_ml_h:
            return CmdResult.REJECTED_PARAMS
        self._prime_target_ul = self._primed_ul + self.prime_volume_ul
        self._enter_running(State.PRIMING)
        return CmdResult.OK

    def _cmd_clear_volumes(self) -> CmdResult:
        if self._state is not State.IDLE:
            return CmdResult.REJECTED_STATE
        self._infused_ul = Fraction(0)
        self._primed_ul = Fraction(0)
        self._true_infused_ul = Fraction(0)
        self._true_primed_ul = Fraction(0)
        self._vtbi_complete = False
        return CmdResult.OK

    def _cmd_ack_alarm(self) -> CmdResult:
        if self._state is not State.ALARM:
            return CmdResult.REJECTED_STATE
        if self.conditions:
            return CmdResult.REJECTED_ALARM
        self._latched = AlarmFlag.NONE
        self._state = State.IDLE
        return CmdResult.OK

    def press_alarm_key(self) -> CmdResult:
        """The pump's own alarm key, pressed at the pump: ACK_ALARM as the panel gives it.

        Nothing goes over the wire, so ``last_cmd_seq`` and ``last_cmd_result`` (which
        belong to the supervising client's commands) are left as they are. Refused like the
        wire command: when the pump is not in alarm, or a condition is still present.
        """
        return self._cmd_ack_alarm()

    # ---------------------------------------------------------------- faults

    def set_condition(self, flag: AlarmFlag, on: bool) -> None:
        """Make a physical alarm condition present or gone (occlusion, door, ...)."""
        if flag not in CONDITION_FLAGS or bin(int(flag)).count("1") != 1:
            raise ModelInputError(f"{flag!r} is not a single alarm condition")
        if on:
            self._condition_faults |= flag
        else:
            self._condition_faults &= ~flag
        self._check_conditions()

    def set_low_battery(self, on: bool) -> None:
        self._low_battery_fault = on

    def set_runaway(self, factor: Fraction | None) -> None:
        """Actual rate = factor × commanded rate (None: the mechanism is healthy)."""
        if factor is not None and not 0 < factor <= 100:
            raise ModelInputError(f"runaway factor must be in (0, 100], got {factor}")
        self._runaway_factor = factor

    def set_stuck_volume(self, on: bool) -> None:
        self._stuck_volume = on

    def set_ignore_commands(self, on: bool) -> None:
        self._ignore_commands = on

    def reboot(self) -> None:
        """Power-cycle: volumes 0, IDLE, uptime 0, last_cmd_seq 0, setpoints 0; faults stay."""
        self._power_up()
        self._check_conditions()

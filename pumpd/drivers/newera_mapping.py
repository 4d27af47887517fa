"""The New Era protocol's words in the driver contract's terms: states, alarms, errors."""

from __future__ import annotations

from decimal import Decimal

from pumpd.drivers.base import AlarmFlag, CommandResult, ProtocolError, PumpState
from pumpd.drivers.capabilities import (
    CommWatchdog,
    Confirmation,
    MaxRateSource,
    PumpCapabilities,
    RestartEvidence,
    WatchdogSetter,
)
from pumpd.drivers.newera_codec import Alarm, ErrorCode, Prompt
from pumpd.drivers.newera_config import MAX_SAFE_TIMEOUT_S

ALARM_FLAG_OF: dict[Alarm, AlarmFlag] = {
    Alarm.STALL: AlarmFlag.OCCLUSION_DOWNSTREAM,
    Alarm.WATCHDOG: AlarmFlag.COMM_LOSS,
    Alarm.PROGRAM_ERROR: AlarmFlag.SYSTEM_FAULT,
    Alarm.PHASE_OUT_OF_RANGE: AlarmFlag.SYSTEM_FAULT,
}
"""A motor stall is the syringe pump's only occlusion alarm. A reset (``A?R``) is not a
latched alarm: it is the pump's evidence of a restart (``PumpStatus.resets_seen``), which
the kernel judges as a reboot."""

STATE_OF: dict[Prompt, PumpState] = {
    Prompt.INFUSING: PumpState.INFUSING,
    Prompt.STOPPED: PumpState.IDLE,
    Prompt.PAUSED: PumpState.PAUSED,
    Prompt.PAUSE_PHASE: PumpState.PAUSED,
    Prompt.USER_WAIT: PumpState.PAUSED,
    Prompt.PURGING: PumpState.PRIMING,
}
"""W (withdrawing) has no entry: pumpd only ever sets DIR INF, so a withdrawing pump is
reported as ALARM with an UNKNOWN alarm, and the kernel stops it."""


class PumpRefused(ProtocolError):
    """The pump answered ``?``, ``?NA``, ``?OOR``, ``?COM`` or ``?IGN``; `code` says which."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message)
        self.code = code


RESULT_OF: dict[ErrorCode, CommandResult] = {
    ErrorCode.NOT_RECOGNIZED: CommandResult.UNKNOWN_COMMAND,
    ErrorCode.NOT_APPLICABLE: CommandResult.REJECTED_STATE,
    ErrorCode.OUT_OF_RANGE: CommandResult.REJECTED_PARAMS,
    ErrorCode.IGNORED: CommandResult.REJECTED_STATE,
}


def capabilities(*, safe_mode: bool) -> PumpCapabilities:
    """What an NE-1000 family pump can do (NE-1000 manual, Pub. #1200-01, §10).

    - confirmation by reading the state back: the protocol has no sequence echo;
    - ``VOL`` is a pump-side volume target: the pump stops by itself when it is dispensed;
    - ``SAF n`` (1–255 s, Safe mode only) is its communication watchdog; Basic mode has none;
    - it detects a motor stall (its only occlusion alarm), a Safe-mode timeout and program
      errors; no air, door, upstream occlusion or battery alarm;
    - ``PUR`` primes; there is no KVO, no pressure sensor and no battery;
    - the maximum rate depends on the syringe and is checked by the pump (``?OOR``) when a
      rate is written, and every setpoint is read back;
    - it keeps no uptime and no switch-on count: a power-on reset is reported as ``A?R``
      to the next request, whoever sends it (so also to a restarted pumpd).
    """
    return PumpCapabilities(
        confirmation=Confirmation.STATE_READBACK,
        pump_vtbi_stop=True,
        watchdog=(
            CommWatchdog(Decimal(1), Decimal(MAX_SAFE_TIMEOUT_S), WatchdogSetter.PUMPD)
            if safe_mode
            else None
        ),
        detected_alarms=(
            AlarmFlag.OCCLUSION_DOWNSTREAM | AlarmFlag.COMM_LOSS | AlarmFlag.SYSTEM_FAULT
        ),
        priming=True,
        kvo=False,
        reports_pressure=False,
        reports_battery=False,
        max_rate_source=MaxRateSource.PUMP_REFUSES,
        restart_evidence=RestartEvidence.RESET_ALARM,
    )

"""The New Era protocol's words in the driver contract's terms: states, alarms, errors."""

from __future__ import annotations

from pumpd.drivers.base import AlarmFlag, CommandResult, ProtocolError, PumpState
from pumpd.drivers.newera_codec import Alarm, ErrorCode, Prompt

ALARM_FLAG_OF: dict[Alarm, AlarmFlag] = {
    Alarm.STALL: AlarmFlag.OCCLUSION_DOWNSTREAM,
    Alarm.WATCHDOG: AlarmFlag.COMM_LOSS,
    Alarm.PROGRAM_ERROR: AlarmFlag.SYSTEM_FAULT,
    Alarm.PHASE_OUT_OF_RANGE: AlarmFlag.SYSTEM_FAULT,
}
"""A motor stall is the syringe pump's only occlusion alarm. A reset (``A?R``) is not a
latched alarm: it restarts the derived uptime, which the kernel judges as a reboot."""

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

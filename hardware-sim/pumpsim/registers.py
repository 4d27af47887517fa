"""The GIP-MB1 register table, written down independently of pumpd's profile file.

The simulator must not import pumpd: this table and the driver's TOML profile are two
readings of the same specification, and every test that runs the driver against the
simulator checks one against the other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PROFILE_VERSION = 1


class State(enum.IntEnum):
    IDLE = 0
    PRIMING = 1
    INFUSING = 2
    PAUSED = 3
    KVO = 4
    ALARM = 5


class AlarmFlag(enum.IntFlag):
    NONE = 0
    OCCLUSION_DOWNSTREAM = 1 << 0
    OCCLUSION_UPSTREAM = 1 << 1
    AIR_IN_LINE = 1 << 2
    DOOR_OPEN = 1 << 3
    SYSTEM_FAULT = 1 << 4
    COMM_LOSS = 1 << 5
    BATTERY_DEPLETED = 1 << 6


class WarningFlag(enum.IntFlag):
    NONE = 0
    LOW_BATTERY = 1 << 0
    VTBI_COMPLETE = 1 << 1


class Command(enum.IntEnum):
    START = 1
    PAUSE = 2
    STOP = 3
    PRIME = 4
    CLEAR_VOLUMES = 5
    ACK_ALARM = 6


class CmdResult(enum.IntEnum):
    OK = 0
    REJECTED_STATE = 1
    REJECTED_PARAMS = 2
    REJECTED_ALARM = 3
    UNKNOWN_COMMAND = 4


@dataclass(frozen=True)
class Field:
    """One named value in the map: where it starts and how many 16-bit words it spans."""

    name: str
    address: int
    words: int
    signed: bool = False


# Input registers, function 0x04. Two-word values are high word first.
PROFILE_VERSION_REG = Field("profile_version", 0, 1)
SERIAL_NUMBER = Field("serial_number", 1, 2)
STATE = Field("state", 3, 1)
ALARM_FLAGS = Field("alarm_flags", 4, 1)
WARNING_FLAGS = Field("warning_flags", 5, 1)
RATE_ACTUAL = Field("rate_actual", 6, 2)
VOLUME_INFUSED = Field("volume_infused", 8, 2)
VOLUME_PRIMED = Field("volume_primed", 10, 2)
PRESSURE_DOWNSTREAM = Field("pressure_downstream", 12, 1, signed=True)
BATTERY_PERCENT = Field("battery_percent", 13, 1)
LAST_CMD_SEQ = Field("last_cmd_seq", 14, 1)
LAST_CMD_RESULT = Field("last_cmd_result", 15, 1)
HEARTBEAT_ECHO = Field("heartbeat_echo", 16, 1)
MAX_RATE = Field("max_rate", 17, 2)
UPTIME_S = Field("uptime_s", 19, 2)

INPUT_FIELDS: tuple[Field, ...] = (
    PROFILE_VERSION_REG,
    SERIAL_NUMBER,
    STATE,
    ALARM_FLAGS,
    WARNING_FLAGS,
    RATE_ACTUAL,
    VOLUME_INFUSED,
    VOLUME_PRIMED,
    PRESSURE_DOWNSTREAM,
    BATTERY_PERCENT,
    LAST_CMD_SEQ,
    LAST_CMD_RESULT,
    HEARTBEAT_ECHO,
    MAX_RATE,
    UPTIME_S,
)
INPUT_FIRST = 0
INPUT_COUNT = 21

# Holding registers, functions 0x03 / 0x06 / 0x10.
RATE_SETPOINT = Field("rate_setpoint", 100, 2)
VTBI = Field("vtbi", 102, 2)
KVO_RATE = Field("kvo_rate", 104, 2)
PRIME_VOLUME = Field("prime_volume", 106, 2)
PRIME_RATE = Field("prime_rate", 108, 2)
HEARTBEAT = Field("heartbeat", 110, 1)
HEARTBEAT_TIMEOUT = Field("heartbeat_timeout", 111, 1)
CMD_SEQ = Field("cmd_seq", 112, 1)
COMMAND = Field("command", 113, 1)

HOLDING_FIELDS: tuple[Field, ...] = (
    RATE_SETPOINT,
    VTBI,
    KVO_RATE,
    PRIME_VOLUME,
    PRIME_RATE,
    HEARTBEAT,
    HEARTBEAT_TIMEOUT,
    CMD_SEQ,
    COMMAND,
)
HOLDING_FIRST = 100
HOLDING_COUNT = 14

# Modbus function codes the map answers to; anything else is refused.
FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
SUPPORTED_FUNCTION_CODES = frozenset(
    {FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE}
)

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF


def encode(field: Field, value: int) -> list[int]:
    """Words for `value`, high word first; out-of-range values are clamped, never wrapped.

    Clamping keeps a runaway value visibly at the top of the scale instead of wrapping to a
    small, plausible-looking number.
    """
    if field.signed:
        clamped = max(-0x8000, min(0x7FFF, value))
        return [clamped & U16_MAX]
    if field.words == 1:
        return [max(0, min(U16_MAX, value))]
    clamped = max(0, min(U32_MAX, value))
    return [(clamped >> 16) & U16_MAX, clamped & U16_MAX]


def decode(field: Field, words: list[int]) -> int:
    """The value of `field` from its words (high word first)."""
    if field.words == 1:
        raw = words[0]
        if field.signed and raw & 0x8000:
            return raw - 0x10000
        return raw
    return (words[0] << 16) | words[1]

"""The DULCO flex Control DFXa Modbus RTU register table, written down from the manual.

Independent of pumpd's profile file on purpose (the simulator never imports pumpd): the
driver tests run one against the other, so a wrong address or type in either shows up.
Register numbers are the manual's; all are read with function 0x03, the writable ones
written with 0x06 or 0x10.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_UNIT = 20
ENDIANNESS_PATTERN = 0xAABBCCDD
ERROR_RESET_MAGIC = 0x5555
MAX_TIMEOUT_MS = 10_000


class StatusBit(enum.IntEnum):
    MOTOR_RUNNING = 0
    READY = 1
    ERROR = 5
    WARNING = 6
    MANUAL_STOP = 7
    STOPPED = 8
    PRIMING = 9
    PAUSE = 11
    FIELDBUS = 12


class ErrorBit(enum.IntEnum):
    CONFIGURATION_DATA = 0
    POWER_TOO_LOW = 1
    POWER_TOO_HIGH = 2
    LEVEL = 3
    HOSE_RUPTURE = 4
    METERING_MONITOR = 5
    DIRECTIONAL_CHANGE = 6
    TEMPERATURE_TOO_HIGH = 7
    INITIALISATION = 8
    INVALID_METERING_PARAMETER = 10
    UNDERVOLTAGE = 13
    HOSE_CHANGE_ABORTED = 15
    MEMORY_OVERFLOW = 16


class StartStopBit(enum.IntEnum):
    RUN = 0
    STOPPED_BY_TIMEOUT = 1


class PowerUp(enum.IntEnum):
    ALWAYS_OFF = 0
    ALWAYS_ON = 1
    LAST_STATE = 2


class Mode(enum.IntEnum):
    EXTERNAL_STOP = 0
    MANUAL = 1


@dataclass(frozen=True)
class Reg:
    address: int
    kind: str  # "u16", "u32", "f32"
    writable: bool = False

    @property
    def words(self) -> int:
        return 1 if self.kind == "u16" else 2


# "Modbus" registers (read-only).
MODULE_ACTIVE = Reg(50, "u16")
BAUD_CODE = Reg(51, "u16")
ADDRESS = Reg(52, "u16")
PARITY_CODE = Reg(53, "u16")
STOP_BITS = Reg(54, "u16")
DATA_BITS = Reg(55, "u16")
TERMINATION = Reg(56, "u16")
MODBUS_TIMEOUT_MS = Reg(61, "u16")
ENDIANNESS = Reg(63, "u32")

# "Current operating parameters" (read-only, except the deletable counter: write clears).
STATUS = Reg(1000, "u32")
ERRORS = Reg(1002, "u32")
ERRORS_2 = Reg(1004, "u32")
WARNINGS = Reg(1006, "u32")
CAPACITY_ACTUAL_L_H = Reg(1018, "f32")
CAPACITY_MAX_L_H = Reg(1020, "f32")
MODE_ACTUAL = Reg(1022, "u16")
SWITCH_ON_COUNT = Reg(1026, "u32")
VOLUME_TOTAL_L = Reg(1034, "f32")
VOLUME_DELETABLE_L = Reg(1036, "f32", writable=True)

# "Target operating parameter" and "Advanced configuration" (read / write).
START_STOP = Reg(1200, "u16", writable=True)
CAPACITY_TARGET_L_H = Reg(1211, "f32", writable=True)
MODE = Reg(1229, "u16", writable=True)
ERROR_RESET = Reg(1236, "u16", writable=True)
POWER_UP = Reg(1400, "u16", writable=True)

# The blocks the simulator serves; anything outside them answers exception 0x02.
BLOCKS: tuple[tuple[int, int], ...] = ((50, 15), (1000, 48), (1200, 37), (1400, 1))
ALL: tuple[Reg, ...] = (
    MODULE_ACTIVE,
    BAUD_CODE,
    ADDRESS,
    PARITY_CODE,
    STOP_BITS,
    DATA_BITS,
    TERMINATION,
    MODBUS_TIMEOUT_MS,
    ENDIANNESS,
    STATUS,
    ERRORS,
    ERRORS_2,
    WARNINGS,
    CAPACITY_ACTUAL_L_H,
    CAPACITY_MAX_L_H,
    MODE_ACTUAL,
    SWITCH_ON_COUNT,
    VOLUME_TOTAL_L,
    VOLUME_DELETABLE_L,
    START_STOP,
    CAPACITY_TARGET_L_H,
    MODE,
    ERROR_RESET,
    POWER_UP,
)
BY_ADDRESS = {r.address: r for r in ALL}

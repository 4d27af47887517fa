"""Pump drivers: one typed contract (``PumpDriver`` and its types), the drivers behind it
(GIP-MB1 and register-map over Modbus TCP/RTU, New Era NE-1000 over RS-232) and the
registry that builds one from a ``[[pump]]`` (docs/driver.md).

Everything above the driver comes through this face: the contract, the capability
record, the driver classes and their settings, profiles, the registry, and the checks
the configuration makes of a transport's own keys (serial line, syringe table, New
Era number format). Every other module here is private: tests/drivers/ may import it,
nothing else (tests/test_package_faces.py holds the rule; docs/architecture.md,
"Package faces").
"""

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandOutcome,
    CommandRejected,
    CommandResult,
    CommandUncertain,
    DriverError,
    ProfileError,
    ProgramMismatch,
    PumpDriver,
    PumpProgram,
    PumpState,
    PumpStatus,
    PumpUnreachable,
    PushedAlarm,
    PushesAlarms,
    WarningFlag,
    command_repeating,
)
from pumpd.drivers.capabilities import NOT_REPORTED, PumpCapabilities
from pumpd.drivers.line_load import PollOnLine, poll_on_line
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.newera_codec import NotRepresentable, format_number
from pumpd.drivers.profile import Profile, load_profile, parse_profile
from pumpd.drivers.registry import (
    DuplicateBackend,
    UnknownTransport,
    make_driver,
    register_backend,
)
from pumpd.drivers.regmap_driver import RegisterMapDriver
from pumpd.drivers.rtu_config import (
    SerialKeys,
    check_profile,
    serial_keys,
    simulated_line_problem,
)
from pumpd.drivers.syringes import (
    SyringeCapacityError,
    configured_capacity_ul,
    loaded_syringe,
    syringe,
)

__all__ = [
    "NOT_REPORTED",
    "AlarmFlag",
    "Command",
    "CommandOutcome",
    "CommandRejected",
    "CommandResult",
    "CommandUncertain",
    "DriverError",
    "DuplicateBackend",
    "ModbusConfig",
    "ModbusPumpDriver",
    "NewEraConfig",
    "NewEraPumpDriver",
    "NotRepresentable",
    "PollOnLine",
    "Profile",
    "ProfileError",
    "ProgramMismatch",
    "PumpCapabilities",
    "PumpDriver",
    "PumpProgram",
    "PumpState",
    "PumpStatus",
    "PumpUnreachable",
    "PushedAlarm",
    "PushesAlarms",
    "RegisterMapDriver",
    "SerialKeys",
    "SyringeCapacityError",
    "UnknownTransport",
    "WarningFlag",
    "check_profile",
    "command_repeating",
    "configured_capacity_ul",
    "format_number",
    "load_profile",
    "loaded_syringe",
    "make_driver",
    "parse_profile",
    "poll_on_line",
    "register_backend",
    "serial_keys",
    "simulated_line_problem",
    "syringe",
]

"""Pump drivers: one typed contract (``PumpDriver`` and its types), the drivers behind it
(GIP-MB1 and register-map over Modbus TCP/RTU, New Era NE-1000 over RS-232) and the
registry that builds one from a ``[[pump]]`` (docs/driver.md).

Everything above the driver comes through this face: the contract, the capability
record, the driver classes and their settings, profiles, and the registry, through which
the configuration hands each transport's ``[[pump]]`` keys to the backend that owns and
checks them (its serial line, syringe table, number format stay behind the face). The
syringe a checked pump holds is read for the kernel's capacity rule (`loaded_syringe`);
``host:port`` parsing and the loopback test serve other configurations too. Every other
module here is private: tests/drivers/ may import it, nothing else
(tests/test_package_faces.py holds the rule; docs/architecture.md, "Package faces").
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
    ReadsPumpTimeout,
    SharesLine,
    WarningFlag,
    command_repeating,
)
from pumpd.drivers.capabilities import NOT_REPORTED, PumpCapabilities, WatchdogSetter
from pumpd.drivers.endpoints import is_loopback, parse_host_port
from pumpd.drivers.line_load import PollOnLine, poll_on_line
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.profile import Profile, load_profile, parse_profile
from pumpd.drivers.registry import (
    DuplicateBackend,
    PumpKeys,
    TransportSettings,
    UnknownTransport,
    make_driver,
    pump_keys,
    register_backend,
)
from pumpd.drivers.regmap import RegisterMap, load_any_profile
from pumpd.drivers.regmap_driver import RegisterMapDriver
from pumpd.drivers.rtu_config import SerialKeys
from pumpd.drivers.slots import PollSlot, PollSlots
from pumpd.drivers.syringes import loaded_syringe

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
    "PollOnLine",
    "PollSlot",
    "PollSlots",
    "Profile",
    "ProfileError",
    "ProgramMismatch",
    "PumpCapabilities",
    "PumpDriver",
    "PumpKeys",
    "PumpProgram",
    "PumpState",
    "PumpStatus",
    "PumpUnreachable",
    "PushedAlarm",
    "PushesAlarms",
    "ReadsPumpTimeout",
    "RegisterMap",
    "RegisterMapDriver",
    "SerialKeys",
    "SharesLine",
    "TransportSettings",
    "UnknownTransport",
    "WarningFlag",
    "WatchdogSetter",
    "command_repeating",
    "is_loopback",
    "load_any_profile",
    "load_profile",
    "loaded_syringe",
    "make_driver",
    "parse_host_port",
    "parse_profile",
    "poll_on_line",
    "pump_keys",
    "register_backend",
]

"""The ``modbus-tcp`` and ``modbus-rtu`` backends: their ``[[pump]]`` keys, checked, and a
pump's driver from its settings.

A GIP-MB1-schema profile gets a `ModbusPumpDriver`; a register-map profile (a real pump's
own Modbus map, such as ``prominent-dulcoflex``) gets a `RegisterMapDriver`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pumpd.drivers.endpoints import (
    device_problem,
    parse_host_port,
    simulated_device_problem,
    simulated_host_problem,
)
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.registry import (
    Problem,
    PumpKeys,
    PumpSettings,
    TransportSettings,
    register_backend,
)
from pumpd.drivers.regmap_driver import RegisterMapDriver, register_map
from pumpd.drivers.rtu_config import check_profile, serial_keys, simulated_line_problem

DEFAULT_TCP_PORT = 502
DEFAULT_RTU_BAUD = 19200
MIN_RTU_BAUD = 1200
MIN_HEARTBEAT_TIMEOUT_S = 2


class _ModbusKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    unit: Annotated[int, Field(ge=1, le=247)] | None = None
    profile: Annotated[
        str, Field(pattern=r"^([a-z0-9][a-z0-9-]{0,39}|/[^\x00]{1,4000}\.toml)$")
    ] = "gip-mb1"
    """A shipped profile's name, or the absolute path of a site's own profile file."""


class ModbusTcpKeys(_ModbusKeys):
    """A ``modbus-tcp`` pump's own keys."""

    address: str | int | None = None
    """``host:port``."""


class ModbusRtuKeys(_ModbusKeys):
    """A ``modbus-rtu`` pump's own keys: its serial line and the line's frame."""

    device: str | None = None
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] | None = None
    parity: str | None = None
    stopbits: int | None = None
    bytesize: int | None = None


def _common(at: str, keys: _ModbusKeys, heartbeat_timeout_s: int, problems: list[Problem]) -> None:
    if keys.unit is None:
        problems.append((f"{at}.unit", "required key is missing"))
    if heartbeat_timeout_s < MIN_HEARTBEAT_TIMEOUT_S:
        problems.append((f"{at}.heartbeat_timeout_s", "Input should be greater than or equal to 2"))


def check_tcp_keys(
    at: str, keys: ModbusTcpKeys, heartbeat_timeout_s: int, problems: list[Problem]
) -> TransportSettings | None:
    start = len(problems)
    check_profile(at, keys.profile, problems)
    _common(at, keys, heartbeat_timeout_s, problems)
    host = port = None
    if isinstance(keys.address, int):
        problems.append((f"{at}.address", f"expected host:port, got {keys.address!r}"))
    elif keys.address is None:
        problems.append((f"{at}.address", "modbus-tcp needs address = host:port"))
    else:
        try:
            host, port = parse_host_port(keys.address)
        except ValueError as exc:
            problems.append((f"{at}.address", str(exc)))
    if len(problems) > start or keys.unit is None:
        return None
    return TransportSettings(unit=keys.unit, profile=keys.profile, host=host, port=port)


def check_rtu_keys(
    at: str, keys: ModbusRtuKeys, heartbeat_timeout_s: int, problems: list[Problem]
) -> TransportSettings | None:
    start = len(problems)
    given = {"parity": keys.parity, "stopbits": keys.stopbits, "bytesize": keys.bytesize}
    serial = serial_keys(at, given, check_profile(at, keys.profile, problems), problems)
    _common(at, keys, heartbeat_timeout_s, problems)
    if keys.baudrate is not None and keys.baudrate < MIN_RTU_BAUD:
        problems.append((f"{at}.baudrate", "Input should be greater than or equal to 1200"))
    if bad := device_problem(at, "modbus-rtu", keys.device, "/dev/ttyUSB0"):
        problems.append(bad)
    if len(problems) > start or keys.unit is None:
        return None
    return TransportSettings(
        unit=keys.unit,
        profile=keys.profile,
        device=keys.device,
        baudrate=DEFAULT_RTU_BAUD if keys.baudrate is None else keys.baudrate,
        serial=serial,
    )


def simulated_tcp(at: str, pump: PumpSettings) -> list[Problem]:
    bad = simulated_host_problem(at, pump.host)
    return [] if bad is None else [bad]


def simulated_rtu(at: str, pump: PumpSettings) -> list[Problem]:
    """A pseudo-terminal, and the frame it can carry."""
    found = [bad] if (bad := simulated_line_problem(at, pump.serial)) else []
    if bad := simulated_device_problem(at, pump.device):
        found.append(bad)
    return found


ONLY_RTU = "only for transport modbus-rtu"
TCP_KEYS = PumpKeys(
    ModbusTcpKeys,
    check_tcp_keys,
    refused={"device": ONLY_RTU, "baudrate": ONLY_RTU},
    simulated=simulated_tcp,
)
RTU_KEYS = PumpKeys(
    ModbusRtuKeys,
    check_rtu_keys,
    refused={"address": "only for modbus-tcp; modbus-rtu uses device"},
    simulated=simulated_rtu,
)


def modbus_config(pump: PumpSettings) -> ModbusConfig:
    """The driver's link settings for a ``modbus-tcp`` or ``modbus-rtu`` pump."""
    if pump.transport == "modbus-tcp":
        return ModbusConfig(
            transport="tcp",
            host=pump.host,
            port=pump.port or DEFAULT_TCP_PORT,
            unit=pump.unit,
            profile=pump.profile,
        )
    return ModbusConfig(
        transport="rtu",
        device=pump.device,
        baudrate=pump.baudrate or DEFAULT_RTU_BAUD,
        unit=pump.unit,
        profile=pump.profile,
        parity=pump.serial.parity,
        stopbits=pump.serial.stopbits,
        bytesize=pump.serial.bytesize,
    )


def make_modbus_driver(
    pump: PumpSettings, time_scale: float
) -> ModbusPumpDriver | RegisterMapDriver:
    """A GIP-MB1 pump's heartbeat timeout is written in the controller's seconds, which the
    simulated pump counts at the same scale, so `time_scale` needs no correction there; a
    register-map pump's own timeout is compared in wall seconds (`clock_scale`)."""
    rmap = register_map(pump.profile)
    if rmap is not None:
        return RegisterMapDriver(
            modbus_config(pump),
            rmap,
            heartbeat_timeout_s=pump.heartbeat_timeout_s,
            clock_scale=time_scale,
        )
    return ModbusPumpDriver(modbus_config(pump))


register_backend("modbus-tcp", make_modbus_driver, TCP_KEYS)
register_backend("modbus-rtu", make_modbus_driver, RTU_KEYS)

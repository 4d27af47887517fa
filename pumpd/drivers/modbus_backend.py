"""The ``modbus-tcp`` and ``modbus-rtu`` backends: a `ModbusPumpDriver` from a pump's settings."""

from __future__ import annotations

from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.registry import PumpSettings, register_backend

DEFAULT_TCP_PORT = 502
DEFAULT_RTU_BAUD = 19200


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
    )


def make_modbus_driver(pump: PumpSettings, time_scale: float) -> ModbusPumpDriver:
    """A Modbus pump's heartbeat timeout is written in the controller's seconds, which the
    simulated pump counts at the same scale, so `time_scale` needs no correction here."""
    return ModbusPumpDriver(modbus_config(pump))


register_backend("modbus-tcp", make_modbus_driver)
register_backend("modbus-rtu", make_modbus_driver)

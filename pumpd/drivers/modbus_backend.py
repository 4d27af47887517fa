"""The ``modbus-tcp`` and ``modbus-rtu`` backends: a pump's driver from its settings.

A GIP-MB1-schema profile gets a `ModbusPumpDriver`; a register-map profile (a real pump's
own Modbus map, such as ``prominent-dulcoflex``) gets a `RegisterMapDriver`.
"""

from __future__ import annotations

from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.registry import PumpSettings, register_backend
from pumpd.drivers.regmap_driver import RegisterMapDriver, register_map

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


register_backend("modbus-tcp", make_modbus_driver)
register_backend("modbus-rtu", make_modbus_driver)

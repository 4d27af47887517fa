"""The backend registry: a pump's transport chooses its driver; new transports register."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from pumpd.daemon import app, reload, startup, state, wiring
from pumpd.drivers import registry
from pumpd.drivers.capabilities import Confirmation
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraPumpDriver
from pumpd.drivers.registry import (
    DuplicateBackend,
    UnknownTransport,
    make_driver,
    register_backend,
    transports,
)
from pumpd.drivers.rtu_config import SerialKeys


@dataclass(frozen=True)
class Settings:
    transport: str
    unit: int = 1
    profile: str = "gip-mb1"
    heartbeat_timeout_s: int = 10
    host: str | None = "127.0.0.1"
    port: int | None = 5020
    device: str | None = None
    baudrate: int | None = None
    syringe_diameter_mm: Decimal | None = None
    serial: SerialKeys = SerialKeys()  # noqa: RUF009 (frozen, immutable)


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    saved = dict(registry._BACKENDS)
    yield
    registry._BACKENDS.clear()
    registry._BACKENDS.update(saved)


def test_the_shipped_transports_are_registered_by_their_modules() -> None:
    assert transports() == ("modbus-rtu", "modbus-tcp", "newera-serial")
    assert registry.backend("modbus-tcp").module == "pumpd.drivers.modbus_backend"
    assert registry.backend("newera-serial").module == "pumpd.drivers.newera_backend"


def test_each_transport_builds_its_driver_with_its_capabilities() -> None:
    tcp = make_driver(Settings("modbus-tcp"))
    assert isinstance(tcp, ModbusPumpDriver)
    assert tcp.config.transport == "tcp"
    assert (tcp.config.host, tcp.config.port, tcp.config.unit) == ("127.0.0.1", 5020, 1)
    assert tcp.capabilities.confirmation is Confirmation.SEQUENCE_ECHO
    rtu = make_driver(Settings("modbus-rtu", host=None, port=None, device="/dev/null"))
    assert isinstance(rtu, ModbusPumpDriver)
    assert (rtu.config.transport, rtu.config.baudrate) == ("rtu", 19200)
    serial = make_driver(
        Settings("newera-serial", device="/dev/null", syringe_diameter_mm=Decimal("26.59"), unit=7),
        60.0,
    )
    assert isinstance(serial, NewEraPumpDriver)
    assert (serial.config.address, serial.config.clock_scale) == (7, 60.0)
    assert serial.capabilities.confirmation is Confirmation.STATE_READBACK


def test_a_register_map_profile_builds_its_own_driver_with_the_contracts_record() -> None:
    from pumpd.drivers.regmap_driver import RegisterMapDriver

    dulco = make_driver(
        Settings(
            "modbus-rtu",
            unit=20,
            profile="prominent-dulcoflex",
            host=None,
            port=None,
            device="/dev/null",
            serial=SerialKeys(parity="E"),
        )
    )
    assert isinstance(dulco, RegisterMapDriver)
    assert dulco.config.parity == "E"
    caps = dulco.capabilities
    assert caps.pump_vtbi_stop is False  # pumpd's stop at the plan's volume is primary
    assert caps.confirmation is Confirmation.STATE_READBACK
    assert caps.watchdog is not None


def test_an_unknown_transport_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownTransport, match="'carrier-pigeon'; known: modbus-rtu, modbus-tcp"):
        make_driver(Settings("carrier-pigeon"))


def test_a_new_transport_registers_itself(scratch_registry: None) -> None:
    def make_gateway(pump: registry.PumpSettings, time_scale: float) -> ModbusPumpDriver:
        assert pump.host is not None
        return ModbusPumpDriver(
            ModbusConfig(transport="tcp", host=pump.host, port=pump.port or 502, unit=pump.unit)
        )

    register_backend("vendor-gateway", make_gateway)
    assert "vendor-gateway" in transports()
    driver = make_driver(Settings("vendor-gateway", host="10.0.0.9", port=1502))
    assert isinstance(driver, ModbusPumpDriver)
    assert (driver.config.host, driver.config.port) == ("10.0.0.9", 1502)
    register_backend("vendor-gateway", make_gateway)  # the same module again: harmless


def test_a_transport_cannot_be_taken_over(scratch_registry: None) -> None:
    def impostor(pump: registry.PumpSettings, time_scale: float) -> ModbusPumpDriver:
        raise AssertionError("never built")

    with pytest.raises(DuplicateBackend, match=r"already served by pumpd\.drivers\.modbus_backend"):
        register_backend("modbus-tcp", impostor)
    assert registry.backend("modbus-tcp").module == "pumpd.drivers.modbus_backend"


def test_the_daemon_names_no_driver_class() -> None:
    source = "".join(inspect.getsource(m) for m in (app, reload, startup, state, wiring))
    for name in ("ModbusPumpDriver", "NewEraPumpDriver", "ModbusConfig", "NewEraConfig"):
        assert name not in source

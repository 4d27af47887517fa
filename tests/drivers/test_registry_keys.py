"""A transport's ``[[pump]]`` keys belong to its backend: a new transport registers its
own, and the configuration checks and builds it without knowing any of them."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field

from pumpd import config_pumps
from pumpd.config import ConfigError, DaemonConfig, PumpConfig, parse_config
from pumpd.drivers import (
    ModbusConfig,
    ModbusPumpDriver,
    PumpKeys,
    TransportSettings,
    make_driver,
    register_backend,
    registry,
)
from pumpd.drivers.registry import Problem, PumpSettings


class GatewayKeys(BaseModel):
    """A vendor's Modbus gateway: its own key names for where the pump is."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    gateway: str | None = None
    channel: Annotated[int, Field(ge=1, le=16)] = 1


def check_gateway(
    at: str, keys: GatewayKeys, heartbeat_timeout_s: int, problems: list[Problem]
) -> TransportSettings | None:
    if keys.gateway is None:
        problems.append((f"{at}.gateway", "vendor-gateway needs gateway = host"))
        return None
    return TransportSettings(unit=keys.channel, profile="gip-mb1", host=keys.gateway, port=1502)


def simulated_gateway(at: str, pump: PumpSettings) -> list[Problem]:
    return [] if pump.host == "127.0.0.1" else [(f"{at}.gateway", "not the simulator's")]


def make_gateway(pump: PumpSettings, time_scale: float) -> ModbusPumpDriver:
    assert isinstance(pump, PumpConfig)
    assert isinstance(pump.keys, GatewayKeys)
    assert pump.host is not None
    return ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=pump.host, port=pump.port or 502, unit=pump.unit)
    )


GATEWAY_KEYS = PumpKeys(GatewayKeys, check_gateway, simulated=simulated_gateway)
PUMP = '[[pump]]\nid = "chair-9"\ntransport = "vendor-gateway"\n'


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    registry.transports()  # the shipped backends first, as the daemon has them
    saved = dict(registry._BACKENDS)
    yield
    registry._BACKENDS.clear()
    registry._BACKENDS.update(saved)


def parse(text: str) -> DaemonConfig:
    return parse_config(text, path=Path("/etc/pumpd/pumpd.toml"))


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return dict(caught.value.problems)


def test_a_new_transport_is_made_from_its_own_keys(scratch_registry: None) -> None:
    register_backend("vendor-gateway", make_gateway, GATEWAY_KEYS)
    (pump,) = parse(PUMP + 'gateway = "10.0.0.9"\nchannel = 3\n').pumps
    assert (pump.transport, pump.host, pump.port, pump.unit) == (
        "vendor-gateway",
        "10.0.0.9",
        1502,
        3,
    )
    assert pump.keys == GatewayKeys(gateway="10.0.0.9", channel=3)
    driver = make_driver(pump)
    assert isinstance(driver, ModbusPumpDriver)
    assert (driver.config.host, driver.config.port, driver.config.unit) == ("10.0.0.9", 1502, 3)
    for name in ("vendor-gateway", "gateway", "channel"):
        assert name not in inspect.getsource(config_pumps)


def test_a_new_transports_keys_are_typed_and_checked_by_its_backend(
    scratch_registry: None,
) -> None:
    register_backend("vendor-gateway", make_gateway, GATEWAY_KEYS)
    assert (
        "less than or equal to 16"
        in problems(PUMP + 'gateway = "h"\nchannel = 17\n')["pump[0].channel"]
    )
    assert "needs gateway" in problems(PUMP)["pump[0].gateway"]
    assert "unknown key" in problems(PUMP + 'gateway = "h"\ngatway = "h"\n')["pump[0].gatway"]
    # Another transport's key on it, and its key on another transport, are named as such.
    found = problems(PUMP + 'gateway = "h"\nsyringe = "bd-plastic-60ml"\n')
    assert found["pump[0].syringe"] == "only for transport newera-serial"
    modbus = '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 1\n'
    assert problems(modbus + "channel = 2\n")["pump[0].channel"] == (
        "only for transport vendor-gateway"
    )


def test_an_unknown_transport_is_refused_naming_every_registered_one(
    scratch_registry: None,
) -> None:
    text = PUMP.replace("vendor-gateway", "carrier-pigeon")
    before = problems(text)["pump[0].transport"]
    assert before == (
        "Input should be 'modbus-tcp', 'modbus-rtu' or 'newera-serial', got 'carrier-pigeon'"
    )
    register_backend("vendor-gateway", make_gateway, GATEWAY_KEYS)
    assert problems(text)["pump[0].transport"] == (
        "Input should be 'modbus-tcp', 'modbus-rtu', 'newera-serial' or 'vendor-gateway', "
        "got 'carrier-pigeon'"
    )


def test_a_transport_without_keys_is_made_from_code_only(scratch_registry: None) -> None:
    register_backend("vendor-gateway", make_gateway)
    found = problems(PUMP + 'gateway = "h"\n')
    assert "got 'vendor-gateway'" in found["pump[0].transport"]
    assert "'vendor-gateway' or" not in found["pump[0].transport"]


def test_simulation_asks_the_backend_and_refuses_one_that_cannot_tell(
    scratch_registry: None,
) -> None:
    register_backend("vendor-gateway", make_gateway, GATEWAY_KEYS)
    sim = "[daemon]\nsimulation = true\n" + PUMP
    assert parse(sim + 'gateway = "127.0.0.1"\n').pumps[0].host == "127.0.0.1"
    assert problems(sim + 'gateway = "10.0.0.9"\n')["pump[0].gateway"] == "not the simulator's"
    registry._BACKENDS.pop("vendor-gateway")
    register_backend("vendor-gateway", make_gateway, PumpKeys(GatewayKeys, check_gateway))
    found = problems(sim + 'gateway = "127.0.0.1"\n')
    assert "can tell the simulator's line from real hardware" in found["pump[0].transport"]


def test_the_settings_tell_the_configuration_how_the_pump_counts_its_watchdog() -> None:
    """255 s is 2 550 000 pump seconds at time scale 10 000: too many for a pump whose
    watchdog counts the scaled seconds, and nothing to a New Era pump's wall-second SAF."""
    master, slave = os.openpty()
    try:
        line = os.ttyname(slave)
        sim = "[daemon]\nsimulation = true\ntime_scale = 10000\n"
        newera = (
            f'[[pump]]\nid = "chair-3"\ntransport = "newera-serial"\ndevice = "{line}"\n'
            'address = 1\nsyringe = "bd-plastic-60ml"\nheartbeat_timeout_s = 255\n'
        )
        (pump,) = parse(sim + newera).pumps
        assert (pump.scaled_watchdog, pump.unit_key) == (False, "address")
        rtu = (
            f'[[pump]]\nid = "chair-1"\ntransport = "modbus-rtu"\ndevice = "{line}"\n'
            "unit = 1\nheartbeat_timeout_s = 255\n"
        )
        assert "more than the pump's 65535" in problems(sim + rtu)["pump[0].heartbeat_timeout_s"]
    finally:
        os.close(master)
        os.close(slave)

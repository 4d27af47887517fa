"""Register-map profiles: the shipped prominent-dulcoflex map against the simulator's own
table, the codec, and malformed maps refused by the key at fault."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pumpsim import dulco_map as sim

from pumpd.drivers.base import ProfileError
from pumpd.drivers.profile import Profile, load_profile
from pumpd.drivers.regmap import (
    Register,
    RegisterMap,
    decode,
    encode,
    load_any_profile,
    nearest_float32,
    parse_register_map,
)

NAME = "prominent-dulcoflex"


def shipped() -> dict[str, Any]:
    text = (resources.files("pumpd.drivers.profiles") / f"{NAME}.toml").read_text()
    return tomllib.loads(text, parse_float=Decimal)


def rmap() -> RegisterMap:
    loaded = load_any_profile(NAME)
    assert isinstance(loaded, RegisterMap)
    return loaded


SIM_KIND = {"u16": "uint16", "u32": "uint32", "f32": "float32"}


def test_shipped_map_matches_the_simulators_independent_table() -> None:
    m = rmap()
    by_address = {reg.address: reg for reg in sim.ALL}
    for name, reg in m.registers.items():
        theirs = by_address.get(reg.address)
        assert theirs is not None, f"{name} at {reg.address} is not in the simulator's table"
        assert SIM_KIND[theirs.kind] == reg.type, name
        assert theirs.writable == reg.writable, name
    assert {b.name.lower(): int(b) for b in sim.StatusBit}.items() <= m.bits["status"].items()
    assert {b.name.lower(): int(b) for b in sim.ErrorBit} == m.bits["errors"]
    assert m.bits["start_stop"] == {"run": 0, "stopped_by_timeout": 1}
    assert m.word_order.pattern == sim.ENDIANNESS_PATTERN
    (reset,) = [w for w in m.commands["ACK_ALARM"].write if w.reg == "error_reset"]
    assert reset.value == sim.ERROR_RESET_MAGIC
    assert m.failsafe.max_ms == sim.MAX_TIMEOUT_MS
    assert m.power_up.force == sim.PowerUp.ALWAYS_OFF
    assert m.line == {"baudrate": 19200, "parity": "E", "stopbits": 1, "bytesize": 8, "unit": 20}


def test_the_gip_mb1_profile_is_unchanged_and_refuses_a_register_map() -> None:
    assert isinstance(load_any_profile("gip-mb1"), Profile)
    with pytest.raises(ProfileError) as caught:
        load_profile(NAME)
    assert caught.value.key == "schema"


def _set(data: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()

# (change, value, key the error must name)
BROKEN = [
    ("schema", "gip", "schema"),
    ("registers.status.type", "uint24", "registers.status.type"),
    ("registers.status.adress", 1000, "registers.status.adress"),
    ("registers.capacity_actual.unit", "gallons/h", "registers.capacity_actual.unit"),
    ("registers.capacity_actual.scale", "10", "registers.capacity_actual.scale"),
    ("registers.errors.address", 1001, "registers.errors.address"),
    ("registers.Status", {"address": 9, "type": "uint16"}, "registers.Status"),
    ("bits.status.error", 32, "bits.status.error"),
    ("bits.status.warning", 5, "bits.status.warning"),
    ("bits.capacity_actual", {"x": 0}, "bits.capacity_actual"),
    ("bits.modbus_timeout", {"high": 16}, "bits.modbus_timeout.high"),
    ("word_order.pattern", _DELETE, "word_order.pattern"),
    ("word_order.pattern", 0xAAAAAAAA, "word_order.pattern"),
    ("word_order.fixed", "high_first", "word_order"),
    ("word_order.pattern_register", "capacity_max", "word_order.pattern_register"),
    ("status.running", "status.spinning", "status.running"),
    ("status.running", "motor", "status.running"),
    ("status.rate_actual", "switch_on_count", "status.rate_actual"),
    ("status.volume_infused", "capacity_actual", "status.volume_infused"),
    ("status.blocks.0.count", 20, "status.volume_infused"),
    ("status.blocks.0.count", 126, "status.blocks.0.count"),
    ("alarms.OCCLUSION", ["errors.level"], "alarms.OCCLUSION"),
    ("alarms.SYSTEM_FAULT", [], "alarms.SYSTEM_FAULT"),
    ("alarms.COMM_LOSS", ["start_stop.timeout"], "alarms.COMM_LOSS"),
    ("alarms.sources", ["capacity_actual"], "alarms.sources[0]"),
    ("commands.START.write.0.register", "capacity_actual", "commands.START.write[0].register"),
    ("commands.START.write.0.value", 70000, "commands.START.write[0].value"),
    ("commands.START.confirm.equals", 2, "commands.START.confirm.equals"),
    ("commands.STOP", _DELETE, "commands.STOP"),
    ("commands.PRIME", {"write": [{"register": "start_stop", "value": 1}],
                        "confirm": {"bit": "status.priming", "equals": 1}}, "commands.PRIME"),
    ("commands.FLUSH", {"write": [{"register": "start_stop", "value": 1}],
                        "confirm": {"bit": "status.priming", "equals": 1}}, "commands.FLUSH"),
    ("commands.CLEAR_VOLUMES.write.0.value", "0.1", "commands.CLEAR_VOLUMES.write[0].value"),
    ("program.rate", "capacity_actual", "program.rate"),
    ("failsafe.timeout_register", "endianness", "failsafe.timeout_register"),
    ("failsafe.stop.register", "status", "failsafe.stop.register"),
    ("failsafe.max_ms", 0, "failsafe.max_ms"),
    ("power_up.force", 70000, "power_up.force"),
    ("power_up.register", "error_reset", "power_up.register"),
    ("capabilities.confirmation", "sequence-echo", "capabilities.confirmation"),
    ("capabilities.detected_alarms", ["FIRE"], "capabilities.detected_alarms"),
    ("capabilities.reports_pressure", _DELETE, "capabilities.reports_pressure"),
    ("capabilities.reports_battery", "no", "capabilities.reports_battery"),
    ("capabilities.watchdog", False, "capabilities.watchdog"),
    ("capabilities.watchdog.max_s", 5, "capabilities.watchdog.max_s"),
    ("capabilities.priming", True, "capabilities.priming"),
    ("capabilities.restart_evidence", "uptime-register", "capabilities.restart_evidence"),
    ("capabilities.restart_evidence", "reset-alarm", "capabilities.restart_evidence"),
    ("status.restart_counter", _DELETE, "status.restart_counter"),
    ("colour", "blue", "colour"),
]  # fmt: skip


@pytest.mark.parametrize(("dotted", "value", "key"), BROKEN, ids=[b[0] for b in BROKEN])
def test_malformed_map_names_the_key(dotted: str, value: object, key: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_register_map(_set(shipped(), dotted, value))
    assert caught.value.key == key, caught.value
    assert key in str(caught.value)


def test_the_shipped_map_parses_as_is() -> None:
    assert parse_register_map(shipped()).name == NAME


FLOAT = Register(address=0, type="float32", unit="l/h")


@given(
    kind=st.sampled_from(["uint16", "int16", "uint32", "int32"]),
    order=st.sampled_from(["high_first", "low_first"]),
    data=st.data(),
)
def test_integer_round_trip(kind: str, order: str, data: st.DataObject) -> None:
    reg = Register.model_validate({"address": 0, "type": kind})
    bits = 16 * reg.words
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if kind[0] == "i" else (0, (1 << bits) - 1)
    )
    raw = data.draw(st.integers(low, high))
    words = encode(reg, raw, order)  # type: ignore[arg-type]
    assert decode(reg, words, order) == raw  # type: ignore[arg-type]


@given(value=st.floats(min_value=0, max_value=1e6, allow_nan=False, width=32))
def test_float32_round_trip_is_exact(value: float) -> None:
    exact = Decimal(value)
    for order in ("high_first", "low_first"):
        assert decode(FLOAT, encode(FLOAT, exact, order), order) == exact  # type: ignore[arg-type]
    assert nearest_float32(exact) == exact


def test_word_order_of_the_pattern() -> None:
    reg = Register(address=63, type="uint32")
    assert encode(reg, 0xAABBCCDD, "high_first") == [0xAABB, 0xCCDD]
    assert encode(reg, 0xAABBCCDD, "low_first") == [0xCCDD, 0xAABB]
    with pytest.raises(ValueError, match="does not fit"):
        encode(reg, -1, "high_first")

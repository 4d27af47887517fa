"""The profile loader: the shipped GIP-MB1 map, and malformed profiles refused by key."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pumpsim import registers as sim_map

from pumpd.drivers.base import ProfileError
from pumpd.drivers.profile import Profile, RegisterField, load_profile, parse_profile


def shipped() -> dict[str, Any]:
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    return tomllib.loads(text, parse_float=Decimal)


def test_shipped_profile_matches_the_simulators_independent_table() -> None:
    profile = load_profile("gip-mb1")
    assert profile.profile_version == sim_map.PROFILE_VERSION
    for fld in sim_map.INPUT_FIELDS:
        mine: RegisterField = getattr(profile.input.fields, fld.name)
        assert (mine.address, mine.words, mine.signed) == (fld.address, fld.words, fld.signed)
    for fld in sim_map.HOLDING_FIELDS:
        mine = getattr(profile.holding.fields, fld.name)
        assert (mine.address, mine.words, mine.signed) == (fld.address, fld.words, fld.signed)
    assert profile.states.model_dump() == {s.name: s.value for s in sim_map.State}
    assert profile.commands.model_dump() == {c.name: c.value for c in sim_map.Command}
    assert profile.results.model_dump() == {r.name: r.value for r in sim_map.CmdResult}
    for name, bit in profile.alarm_bits.model_dump().items():
        assert sim_map.AlarmFlag[name] == 1 << bit
    for name, bit in profile.warning_bits.model_dump().items():
        assert sim_map.WarningFlag[name] == 1 << bit


def test_profile_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "site-pump.toml"
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    path.write_text(text.replace('name = "gip-mb1"', 'name = "site-pump"'))
    assert load_profile(path).name == "site-pump"
    assert load_profile(str(path)).name == "site-pump"


def _set(data: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

# (change, value, key the error must name)
BROKEN = [
    ("profile_version", _DELETE, "profile_version"),
    ("input.fields.rate_actual", _DELETE, "input.fields.rate_actual"),
    ("input.fields.rate_actual.words", 3, "input.fields.rate_actual.words"),
    ("input.fields.rate_actual.adress", 6, "input.fields.rate_actual.adress"),
    ("input.fields.rate_actual.scale", "-0.01", "input.fields.rate_actual.scale"),
    ("input.fields.rate_actual.scale", "fast", "input.fields.rate_actual.scale"),
    ("input.fields.volume_infused.scale", "0.5", "input.fields.volume_infused.scale"),
    ("input.fields.state.scale", "2", "input.fields.state.scale"),
    ("input.fields.uptime_s.address", 20, "input.fields.uptime_s.address"),
    ("input.fields.battery_percent.address", 12, "input.fields.battery_percent.address"),
    ("input.count", 126, "input.count"),
    ("holding.fields.command.address", 114, "holding.fields.command.address"),
    ("holding.fields.cmd_seq.words", 2, "holding.fields.cmd_seq.words"),
    ("holding.fields.vtbi.address", 70000, "holding.fields.vtbi.address"),
    ("states.PAUSED", 2, "states.PAUSED"),
    ("states.SLEEPING", 7, "states.SLEEPING"),
    ("alarm_bits.DOOR_OPEN", 15, "alarm_bits.DOOR_OPEN"),
    ("alarm_bits.AIR_IN_LINE", 0, "alarm_bits.AIR_IN_LINE"),
    ("warning_bits.LOW_BATTERY", _DELETE, "warning_bits.LOW_BATTERY"),
    ("commands.START", 0, "commands.START"),
    ("results.OK", "zero", "results.OK"),
    ("word_order", "middle", "word_order"),
    ("colour", "blue", "colour"),
]


@pytest.mark.parametrize(("dotted", "value", "key"), BROKEN, ids=[b[0] for b in BROKEN])
def test_malformed_profile_names_the_key(dotted: str, value: object, key: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(_set(shipped(), dotted, value))
    assert caught.value.key == key
    assert key in str(caught.value)


def test_bad_toml_and_missing_files_are_profile_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(broken)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")
    with pytest.raises(ProfileError, match="no shipped profile"):
        load_profile("gip-mb9")


words_st = st.sampled_from([1, 2])


@given(
    words=words_st,
    signed=st.booleans(),
    order=st.sampled_from(["high_first", "low_first"]),
    data=st.data(),
)
def test_encode_decode_round_trip(
    words: int, signed: bool, order: str, data: st.DataObject
) -> None:
    profile: Profile = parse_profile(_set(shipped(), "word_order", order))
    fld = RegisterField(address=0, words=words, signed=signed)
    raw = data.draw(st.integers(fld.raw_min, fld.raw_max))
    encoded = profile.encode(fld, raw)
    assert len(encoded) == words
    assert all(0 <= w <= 0xFFFF for w in encoded)
    assert profile.decode(fld, encoded) == raw


def test_word_order_and_sign() -> None:
    high = load_profile()
    low = parse_profile(_set(shipped(), "word_order", "low_first"))
    two = RegisterField(address=0, words=2)
    assert high.encode(two, 0x0001_0002) == [1, 2]
    assert low.encode(two, 0x0001_0002) == [2, 1]
    pressure = high.input.fields.pressure_downstream
    assert high.decode(pressure, [0xFFFF]) == -1
    assert high.decode(pressure, [0x8000]) == -32768
    assert high.decode(pressure, [0x7FFF]) == 32767

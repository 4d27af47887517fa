"""Fuzzing the file loaders a clinic admin feeds: protocol files and register-map profiles.

A loader meets whatever is on disk: a half-edited file, a wrong type, a stray byte. Each
must either load a valid object or refuse with its one documented error naming the key —
never another exception, never a half-built object. The strategies start from the shipped
files and damage them in the ways editors and disks do (a key removed, a value of another
type, a number out of range, bytes flipped or cut), so most examples reach deep into
validation instead of failing at the TOML syntax.

The number of examples comes from the hypothesis profile (`make fuzz` raises it).
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.drivers.base import ProfileError
from pumpd.drivers.profile import Profile, parse_profile
from pumpd.protocols import LoadedProtocol, ProtocolFileError, load_protocol_file

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_FILES = sorted((ROOT / "protocols").glob("*.toml"))
PROFILE_FILE = ROOT / "pumpd" / "drivers" / "profiles" / "gip-mb1.toml"

# Values of every TOML type (and the odd ones: NaN, huge, negative, empty).
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.text(max_size=30),
    st.just(""),
    st.just(0),
    st.just(-1),
    st.lists(st.integers(min_value=-5, max_value=70000), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a decoded document (dict keys and list indexes)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*prefix, key))
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.append((*prefix, index))
            out += _paths(value, (*prefix, index))
    return out


def _damage(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Apply one to three edits: remove a key, replace a value, or add an unknown key."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="edits")):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        kind = data.draw(st.sampled_from(["remove", "replace", "add"]), label="kind")
        if kind == "remove":
            del parent[last]
        elif kind == "replace":
            parent[last] = data.draw(scalars, label="value")
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=12), label="new key")] = data.draw(
                scalars
            )
    return doc


def _toml(value: Any) -> str:
    """A small TOML writer for the damaged documents (inline tables keep it simple)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return "nan"
        if value.is_infinite():
            return "inf" if value > 0 else "-inf"
        text = format(value, "f")
        return text if "." in text else text + ".0"
    if isinstance(value, str):
        return '"' + "".join(_char(c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _char(c: str) -> str:
    if " " <= c <= "~" and c not in '"\\':
        return c
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"


def _dump(doc: dict[str, Any]) -> str:
    return "\n".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in doc.items()) + "\n"


def _assert_names_a_key(err: ProtocolFileError) -> None:
    assert err.key, err
    assert err.message.strip(), err
    assert "Traceback" not in str(err)


@pytest.mark.parametrize("source", PROTOCOL_FILES, ids=lambda p: p.name)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_protocol_loads_or_is_refused_naming_the_key(
    source: Path, tmp_path: Path, data: st.DataObject
) -> None:
    doc = tomllib.loads(source.read_text(), parse_float=Decimal)
    target = tmp_path / source.name
    target.write_text(_dump(_damage(doc, data)))
    try:
        loaded = load_protocol_file(target)
    except ProtocolFileError as err:
        _assert_names_a_key(err)
    else:
        # A damage the schema accepts (e.g. a new title) still gives a whole protocol.
        assert isinstance(loaded, LoadedProtocol)
        assert loaded.protocol.id == doc["id"]


@pytest.mark.parametrize("source", PROTOCOL_FILES[:1], ids=lambda p: p.name)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)
def test_protocol_bytes_cut_or_flipped_are_refused_or_load(
    source: Path, tmp_path: Path, cut: int, flips: list[tuple[int, int]]
) -> None:
    raw = bytearray(source.read_bytes())
    for where, byte in flips:
        raw[where % len(raw)] = byte
    target = tmp_path / source.name
    target.write_bytes(bytes(raw[: max(1, len(raw) - cut)]))
    try:
        load_protocol_file(target)
    except ProtocolFileError as err:
        _assert_names_a_key(err)


def test_released_protocol_refused_after_any_change(tmp_path: Path) -> None:
    source = PROTOCOL_FILES[0]
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes() + b"\n")
    import hashlib

    released = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(ProtocolFileError, match="changed after release"):
        load_protocol_file(target, released_sha256=released)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_profile_parses_or_is_refused_naming_the_key(data: st.DataObject) -> None:
    doc = tomllib.loads(PROFILE_FILE.read_text(), parse_float=Decimal)
    refusal: ProfileError | None = None
    try:
        profile = parse_profile(_damage(doc, data))
    except ProfileError as err:
        refusal = err
    if refusal is None:
        assert isinstance(profile, Profile)
    else:
        assert refusal.key, refusal
        assert str(refusal).startswith("profile key "), refusal


def test_the_damage_reaches_validation() -> None:
    """The generator is not wasted on syntax errors: a known damage names its key."""
    doc = tomllib.loads(PROTOCOL_FILES[0].read_text(), parse_float=Decimal)
    doc["observation_min"] = "thirty"
    text = _dump(doc)
    assert tomllib.loads(text, parse_float=Decimal)["observation_min"] == "thirty"
    profile = tomllib.loads(PROFILE_FILE.read_text(), parse_float=Decimal)
    del profile["input"]
    with pytest.raises(ProfileError, match="input"):
        parse_profile(profile)

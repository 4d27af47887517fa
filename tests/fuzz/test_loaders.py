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

import hashlib
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.drivers import Profile, ProfileError, load_profile, parse_profile
from pumpd.protocols import LoadedProtocol, ProtocolFileError, load_protocol_file

from .budget import examples
from .damage import byte_damage, damage, dump, flip_and_cut

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_FILES = sorted((ROOT / "protocols").glob("*.toml"))
PROFILE_FILE = ROOT / "pumpd" / "drivers" / "profiles" / "gip-mb1.toml"


def _assert_names_a_key(err: ProtocolFileError) -> None:
    assert err.key, err
    assert err.message.strip(), err
    assert "Traceback" not in str(err)


@pytest.mark.parametrize("source", PROTOCOL_FILES, ids=lambda p: p.name)
@settings(
    max_examples=examples(0.5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_protocol_loads_or_is_refused_naming_the_key(
    source: Path, tmp_path: Path, data: st.DataObject
) -> None:
    doc = tomllib.loads(source.read_text(), parse_float=Decimal)
    target = tmp_path / source.name
    target.write_text(dump(damage(doc, data)))
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
@given(bad=byte_damage)
def test_protocol_bytes_cut_or_flipped_are_refused_or_load(
    source: Path, tmp_path: Path, bad: tuple[int, list[tuple[int, int]]]
) -> None:
    target = tmp_path / source.name
    target.write_bytes(flip_and_cut(source.read_bytes(), *bad))
    try:
        load_protocol_file(target)
    except ProtocolFileError as err:
        _assert_names_a_key(err)


def test_released_protocol_refused_after_any_change(tmp_path: Path) -> None:
    source = PROTOCOL_FILES[0]
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes() + b"\n")
    released = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(ProtocolFileError, match="changed after release"):
        load_protocol_file(target, released_sha256=released)


def profile_or_named_refusal(load: Callable[[], Profile]) -> None:
    """``load`` gives a whole Profile or one ProfileError naming the key; nothing else."""
    refusal: ProfileError | None = None
    try:
        profile = load()
    except ProfileError as err:
        refusal = err
    if refusal is None:
        assert isinstance(profile, Profile)
    else:
        assert refusal.key, refusal
        assert str(refusal).startswith("profile key "), refusal


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_profile_parses_or_is_refused_naming_the_key(data: st.DataObject) -> None:
    doc = tomllib.loads(PROFILE_FILE.read_text(), parse_float=Decimal)
    profile_or_named_refusal(lambda: parse_profile(damage(doc, data)))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_profile_file_loads_or_is_refused_naming_the_key(
    tmp_path: Path, data: st.DataObject
) -> None:
    """The whole loader from disk (``load_profile`` with a path, as a site's own profile is
    given): damaged keys, or bytes flipped and cut into bad TOML or bad UTF-8."""
    raw = PROFILE_FILE.read_bytes()
    if data.draw(st.booleans(), label="byte damage"):
        text = flip_and_cut(raw, *data.draw(byte_damage, label="bytes"))
    else:
        doc = tomllib.loads(raw.decode(), parse_float=Decimal)
        text = dump(damage(doc, data)).encode()
    target = tmp_path / "site-pump.toml"
    target.write_bytes(text)
    profile_or_named_refusal(lambda: load_profile(target))


def test_a_profile_file_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    """Regression (found by the fuzz test above): a byte that is not UTF-8 raised
    UnicodeDecodeError out of the loader instead of its ProfileError."""
    target = tmp_path / "site-pump.toml"
    target.write_bytes(PROFILE_FILE.read_bytes().replace(b"gip-mb1", b"gip-\xff", 1))
    with pytest.raises(ProfileError, match="not UTF-8") as caught:
        load_profile(target)
    assert caught.value.key == "<encoding>"


def test_the_damage_reaches_validation() -> None:
    """The generator is not wasted on syntax errors: a known damage names its key."""
    doc = tomllib.loads(PROTOCOL_FILES[0].read_text(), parse_float=Decimal)
    doc["observation_min"] = "thirty"
    text = dump(doc)
    assert tomllib.loads(text, parse_float=Decimal)["observation_min"] == "thirty"
    profile = tomllib.loads(PROFILE_FILE.read_text(), parse_float=Decimal)
    del profile["input"]
    with pytest.raises(ProfileError, match="input"):
        parse_profile(profile)

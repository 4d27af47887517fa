"""Fuzzing the daemon's configuration loader (``pumpd.toml``, pumpd/config.py).

An administrator's file reaches ``pumpd --check`` and the daemon's start in any state: a
key removed or misspelt, a value of another type, a path with a NUL byte, a URL that does
not parse, bytes that are not UTF-8. ``load_config`` must give a whole ``DaemonConfig`` or
one ``ConfigError`` whose every problem names a key of the file and says what is wrong —
never another exception (the daemon would die with a traceback instead of a sentence).

Two seed documents: the shipped example (real pumps) and a simulation set-up (loopback
TCP, a pseudo-terminal), so the simulation-only checks are reached too.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.config import ConfigError, DaemonConfig, load_config, parse_config

from .damage import byte_damage, damage, dump, flip_and_cut

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packaging" / "pumpd.toml.example"
SIMULATION: dict[str, Any] = {
    "daemon": {
        "socket": "/tmp/pumpd-fuzz/pumpd.sock",
        "database": "sqlite:////tmp/pumpd-fuzz/audit.db",
        "simulation": True,
        "time_scale": 60.0,
        "poll_hz": 20.0,
    },
    "roles": {"nurse": ["pumpd-nurse"], "admin": ["pumpd-admin"]},
    "staff": {"idle_timeout_min": 5.0, "max_failures": 3},
    "pump": [
        {"id": "chair-1", "transport": "modbus-tcp", "address": "127.0.0.1:5020", "unit": 1},
        {"id": "chair-2", "transport": "modbus-rtu", "device": "/dev/pts/0", "unit": 2},
    ],
}
SEEDS = {"example": tomllib.loads(EXAMPLE.read_text()), "simulation": SIMULATION}
PSEUDO_KEY = re.compile(r"^\((syntax|encoding|file|top level)\)$")
SECTIONS = frozenset({"daemon", "roles", "staff", "pump"})


def assert_names_keys(err: ConfigError, roots: frozenset[str], *, any_key: bool = False) -> None:
    """Every problem names a key of the file (or the file itself) and says what is wrong;
    ``any_key`` when the document is not known (bytes damaged): any non-empty key."""
    assert err.problems
    for key, message in err.problems:
        named = (
            (any_key and key.strip())
            or PSEUDO_KEY.match(key)
            or any(key == r or key.startswith((f"{r}.", f"{r}[")) for r in roots | SECTIONS)
        )
        assert named, (key, message)
        assert message.strip(), key
        assert "Traceback" not in message


def check(path: Path, doc: dict[str, Any] | None = None) -> None:
    """Loads whole, or refused naming keys (of ``doc``'s top level when it is known)."""
    try:
        config = load_config(path)
    except ConfigError as err:
        roots = frozenset() if doc is None else frozenset(str(k) for k in doc)
        assert_names_keys(err, roots, any_key=doc is None)
    else:
        assert isinstance(config, DaemonConfig)
        assert config.pumps, "a configuration without pumps was accepted"


@pytest.mark.parametrize("seed", sorted(SEEDS))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_config_loads_or_is_refused_naming_every_key(
    seed: str, tmp_path: Path, data: st.DataObject
) -> None:
    target = tmp_path / "pumpd.toml"
    doc = damage(SEEDS[seed], data)
    target.write_text(dump(doc))
    check(target, doc)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=byte_damage)
def test_config_bytes_cut_or_flipped_are_refused_or_load(
    tmp_path: Path, bad: tuple[int, list[tuple[int, int]]]
) -> None:
    target = tmp_path / "pumpd.toml"
    target.write_bytes(flip_and_cut(EXAMPLE.read_bytes(), *bad))
    check(target)


def test_the_seeds_load() -> None:
    """The generator starts from files the loader accepts (else every example is a refusal)."""
    for name, doc in SEEDS.items():
        assert parse_config(dump(doc), path=Path("/etc/pumpd/pumpd.toml")).pumps, name


# Regressions found by the fuzz tests above: each used to escape as another exception
# (ValueError, RuntimeError) from deep inside the loader, or to pass --check and fail later.
BAD_VALUES = [
    ("daemon", "database", "postgresql://h:abc/db", "daemon.database", "port"),
    ("daemon", "database", "postgresql://[::1/db", "daemon.database", "cannot parse"),
    ("daemon", "database", "~no-such-user-here/audit.db", "daemon.database", "home directory"),
    ("daemon", "database", "sqlite:////var/lib/\x00.db", "daemon.database", "NUL"),
    ("daemon", "socket", "/run/pumpd/\x00.sock", "daemon.socket", "NUL"),
    ("daemon", "protocols", "/usr/share/\x00", "daemon.protocols", "NUL"),
    ("pump", "device", "/dev/tty\x00USB0", "pump[1].device", "NUL"),
]


@pytest.mark.parametrize(("section", "key", "value", "named", "says"), BAD_VALUES)
def test_a_value_that_used_to_crash_the_loader_is_refused_by_key(
    section: str, key: str, value: str, named: str, says: str
) -> None:
    doc = tomllib.loads(EXAMPLE.read_text())
    if section == "pump":
        doc["pump"][1][key] = value
    else:
        doc[section][key] = value
    with pytest.raises(ConfigError) as caught:
        parse_config(dump(doc), path=Path("/etc/pumpd/pumpd.toml"))
    assert caught.value.key == named, caught.value.problems
    assert says in caught.value.message, caught.value.message


def test_a_nul_in_a_simulated_device_path_is_refused_by_key() -> None:
    doc = dict(SIMULATION)
    doc["pump"] = [dict(p) for p in SIMULATION["pump"]]
    doc["pump"][1]["device"] = "/dev/pts/\x00"
    with pytest.raises(ConfigError) as caught:
        parse_config(dump(doc), path=Path("/etc/pumpd/pumpd.toml"))
    assert caught.value.key == "pump[1].device"

"""``[forward]`` in pumpd.toml: defaults, and every bad value refused by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpd.config import ConfigError, parse_config

PUMP = """
[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "10.0.0.5:502"
unit = 1
"""


def _parse(forward: str) -> object:
    return parse_config(forward + PUMP, path=Path("/etc/pumpd/pumpd.toml"))


def test_forward_with_defaults() -> None:
    config = parse_config(
        '[forward]\nurl = "postgresql://pumpd_forward@central.example/pumpd?sslmode=verify-full"\n'
        'site = "clinic-north"\n' + PUMP,
        path=Path("/etc/pumpd/pumpd.toml"),
    )
    fwd = config.forward
    assert fwd is not None
    assert fwd.site == "clinic-north"
    assert fwd.url.startswith("postgresql+psycopg://pumpd_forward@central.example/pumpd")
    assert "sslmode=verify-full" in fwd.url
    assert (fwd.batch_size, fwd.alert_after_s, str(fwd.mark_file)) == (
        1000,
        900.0,
        "/var/lib/pumpd/forward.mark",
    )
    assert parse_config(PUMP, path=Path("/etc/pumpd/pumpd.toml")).forward is None


@pytest.mark.parametrize(
    ("section", "key", "fragment"),
    [
        ('site = "clinic-north"', "forward.url", "required key is missing"),
        ('url = "postgresql://c/db"', "forward.site", "required key is missing"),
        ('url = "/var/lib/central.db"\nsite = "a"', "forward.url", "PostgreSQL"),
        ('url = "mysql://c/db"\nsite = "a"', "forward.url", "unsupported database"),
        ('url = "postgresql://c/db"\nsite = "Clinic North"', "forward.site", "expected 1-64"),
        ('url = "postgresql://c/db"\nsite = "a"\nbatch_size = 0', "forward.batch_size", "1"),
        ('url = "postgresql://c/db"\nsite = "a"\nalert_after_s = -1', "forward.alert_after_s", "0"),
        (
            'url = "postgresql://c/db"\nsite = "a"\nmark_file = "rel"',
            "forward.mark_file",
            "absolute",
        ),
        (
            'url = "postgresql://c/db"\nsite = "a"\nbatchsize = 5',
            "forward.batchsize",
            "unknown key",
        ),
    ],
)
def test_bad_forward_values_name_their_key(section: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(f"[forward]\n{section}\n")
    problems = dict(caught.value.problems)
    assert key in problems, problems
    assert fragment in problems[key]


def test_forward_duty_cycle_default_and_bounds() -> None:
    fwd = parse_config(
        '[forward]\nurl = "postgresql://c/db"\nsite = "a"\n' + PUMP,
        path=Path("/etc/pumpd/pumpd.toml"),
    ).forward
    assert fwd is not None
    assert fwd.duty_cycle == 0.25
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match=r"forward\.duty_cycle"):
            _parse(f'[forward]\nurl = "postgresql://c/db"\nsite = "a"\nduty_cycle = {bad}\n')

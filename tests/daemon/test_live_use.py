"""A pump without a watchdog of its own is refused for live use unless the site accepts it.

The capability comes from the pump's declaration (here a site profile file: the GIP-MB1
registers with ``watchdog = false``, as a gateway without a failsafe would declare);
``pumpd --check`` and the real start both refuse it, naming the key that accepts the risk.
"""

from __future__ import annotations

import asyncio
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from pumpd.config import ConfigError, parse_config
from pumpd.daemon import liveuse


def no_watchdog_profile(tmp_path: Path) -> Path:
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    shipped = 'watchdog = { min_s = 1, max_s = 65535, set_by = "pumpd" }'
    assert shipped in text
    path = tmp_path / "gateway-no-watchdog.toml"
    path.write_text(text.replace(shipped, "watchdog = false"))
    assert tomllib.loads(path.read_text())["capabilities"]["watchdog"] is False
    return path


def config_text(tmp_path: Path, profile: str, *, extra: str = "", simulation: bool = False) -> str:
    (tmp_path / "run").mkdir(exist_ok=True)
    return (
        f'[daemon]\nsocket = "{tmp_path / "run" / "s.sock"}"\n'
        f'database = "sqlite:///{tmp_path / "audit.db"}"\n'
        'audit_spool = "off"\n'
        f"simulation = {'true' if simulation else 'false'}\n"
        '[[pump]]\nid = "chair-7"\ntransport = "modbus-tcp"\naddress = "127.0.0.1:9"\n'
        f'unit = 1\nprofile = "{profile}"\n{extra}'
    )


def review(tmp_path: Path, text: str) -> tuple[list[liveuse.PumpRefusal], list[str]]:
    return liveuse.review(parse_config(text, path=tmp_path / "pumpd.toml"))


def test_live_use_without_a_watchdog_is_refused_naming_the_key(tmp_path: Path) -> None:
    profile = str(no_watchdog_profile(tmp_path))
    refused, notes = review(tmp_path, config_text(tmp_path, profile))
    assert [r.key for r in refused] == ["pump[0].accept_no_pump_watchdog"]
    assert refused[0].message.startswith("chair-7: This pump has no watchdog of its own")
    assert notes == []


def test_an_accepted_risk_is_a_note_not_a_refusal(tmp_path: Path) -> None:
    profile = str(no_watchdog_profile(tmp_path))
    text = config_text(tmp_path, profile, extra="accept_no_pump_watchdog = true\n")
    assert parse_config(text, path=tmp_path / "x.toml").pumps[0].accept_no_pump_watchdog
    refused, notes = review(tmp_path, text)
    assert refused == []
    assert notes == [
        "chair-7: This pump has no watchdog of its own: if pumpd or its link fails it goes "
        "on delivering; the site accepted this risk in its configuration."
    ]


def test_in_simulation_nobody_is_at_risk(tmp_path: Path) -> None:
    profile = str(no_watchdog_profile(tmp_path))
    assert review(tmp_path, config_text(tmp_path, profile, simulation=True)) == ([], [])


def test_a_needless_acceptance_is_pointed_out(tmp_path: Path) -> None:
    text = config_text(tmp_path, "gip-mb1", extra="accept_no_pump_watchdog = true\n")
    refused, notes = review(tmp_path, text)
    assert refused == []
    assert notes == [
        "pump[0].accept_no_pump_watchdog: chair-7 has a watchdog of its own; "
        "the acceptance is not needed"
    ]


def test_a_profile_that_does_not_load_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    with pytest.raises(ConfigError) as refused:
        review(tmp_path, config_text(tmp_path, str(bad)))
    assert [key for key, _ in refused.value.problems] == ["pump[0].profile"]


async def _pumpd(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pumpd.cli.daemon", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.slow
async def test_check_and_the_start_refuse_it(tmp_path: Path) -> None:
    config = tmp_path / "pumpd.toml"
    config.write_text(config_text(tmp_path, str(no_watchdog_profile(tmp_path))))
    code, out = await _pumpd("--config", str(config), "--check")
    assert code == 1, out
    assert f"{config}: pump[0].accept_no_pump_watchdog: chair-7: This pump has no watchdog" in out
    code, out = await _pumpd("--config", str(config))
    assert code == 1, out
    assert "start-up refused" in out
    assert "accept_no_pump_watchdog = true for this pump" in out
    # Accepted: --check passes and says what was accepted.
    config.write_text(
        config_text(
            tmp_path,
            str(no_watchdog_profile(tmp_path)),
            extra="accept_no_pump_watchdog = true\n",
        )
    )
    code, out = await _pumpd("--config", str(config), "--check")
    assert code == 0, out
    assert "note: chair-7: This pump has no watchdog of its own" in out

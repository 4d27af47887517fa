"""`[board]` in pumpd.toml: the daemon accepts and ignores it, the board checks it strictly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pumpd.config import ConfigError, load_config
from pumpd_board.settings import load_settings, settings_from


def test_the_daemon_accepts_and_ignores_a_board_section(config_file: Callable[[str], Path]) -> None:
    path = config_file('[board]\nlisten = "127.0.0.1:8471"\nanything = "the board checks it"\n')
    config = load_config(path)
    assert [p.id for p in config.pumps] == ["chair-1"]


def test_defaults_and_the_socket_from_the_daemon_section(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    s = load_settings(config_file(""))
    assert (s.host, s.port) == ("127.0.0.1", 8470)
    assert s.socket == tmp_path / "pumpd.sock"
    assert s.mask_patient_ref is True
    assert s.access_token is None
    assert s.url == "http://127.0.0.1:8470/"


def test_an_unknown_board_key_is_refused_by_name(config_file: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(config_file("[board]\ncolour = 'red'\n"))
    assert err.value.key == "board.colour"


def test_beyond_loopback_only_with_a_token(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(config_file('[board]\nlisten = "0.0.0.0:8470"\n'))
    assert err.value.key == "board.listen"
    assert "access_token_file" in err.value.message
    token = tmp_path / "board.token"
    token.write_text("k3J9-secret-wall-screen-token\n", encoding="utf-8")
    token.chmod(0o640)
    s = load_settings(
        config_file(f'[board]\nlisten = "0.0.0.0:8470"\naccess_token_file = "{token}"\n')
    )
    assert s.access_token == "k3J9-secret-wall-screen-token"
    assert s.token_matches("k3J9-secret-wall-screen-token")
    assert not s.token_matches("k3J9-secret-wall-screen-tokex")
    assert not s.token_matches(None)


def test_a_token_file_others_can_read_or_a_short_token_is_refused(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    token = tmp_path / "board.token"
    token.write_text("long-enough-token-but-public\n", encoding="utf-8")
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by every user"):
        load_settings(config_file(f'[board]\naccess_token_file = "{token}"\n'))
    token.write_text("short\n", encoding="utf-8")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(config_file(f'[board]\naccess_token_file = "{token}"\n'))


def test_the_clinic_zone_from_the_daemon_section(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    s = settings_from({"daemon": {"timezone": "Europe/Vienna"}}, tmp_path / "f.toml", sock)
    assert s.timezone == "Europe/Vienna"
    with pytest.raises(ConfigError) as err:
        settings_from({"daemon": {"timezone": "Mars/Olympus"}}, tmp_path / "f.toml", sock)
    assert err.value.key == "daemon.timezone"


def test_bounds_are_checked(config_file: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(config_file("[board]\npoll_interval_s = 0.01\nmax_clients = 0\n"))
    assert {k for k, _ in err.value.problems} == {"board.poll_interval_s", "board.max_clients"}

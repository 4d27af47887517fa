"""What a reload takes over and what waits for a restart is declared on the configuration's
fields (``pumpd.reloading``): a field marked RESTART is reported by name and keeps its
running value, a field marked APPLIED is taken from the re-read file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from structlog.testing import capture_logs

from pumpd.config import DaemonConfig
from pumpd.reloading import APPLIED, RESTART, OnReload, marked, needing_restart, reloaded

from .conftest import Rig


@dataclass(frozen=True)
class _Settings:
    name: str
    port: int = field(metadata=RESTART)
    limit: int = field(metadata=APPLIED)


def test_a_restart_field_is_reported_and_kept_an_applied_field_is_taken() -> None:
    running = _Settings(name="a", port=1, limit=3)
    loaded = _Settings(name="b", port=2, limit=4)
    assert needing_restart(running, loaded) == ["port"]
    assert reloaded(running, loaded) == _Settings(name="a", port=1, limit=4)


def test_an_unchanged_restart_field_is_not_reported() -> None:
    running = _Settings(name="a", port=1, limit=3)
    assert needing_restart(running, dataclasses.replace(running, limit=9)) == []


def test_every_daemon_setting_declares_what_a_reload_does_with_it() -> None:
    applied = set(marked(DaemonConfig, OnReload.APPLIED))
    restart = set(marked(DaemonConfig, OnReload.RESTART))
    names = {f.name for f in dataclasses.fields(DaemonConfig)}
    assert names - applied - restart == {"path"}
    assert applied == {
        "sha256",
        "protocols",
        "roles",
        "staff_idle_timeout_s",
        "staff_max_failures",
        "staff_lockout_s",
    }
    assert {"socket", "database", "pumps", "poll_hz", "audit_key_file", "forward"} <= restart


async def test_a_reload_applies_staff_settings_and_reports_a_changed_poll_rate(rig: Rig) -> None:
    daemon = rig.daemon()
    await daemon.start()
    try:
        text = rig.config_path.read_text()
        assert "poll_hz = 10\n" in text
        rig.config_path.write_text(
            text.replace("poll_hz = 10\n", "poll_hz = 5\n") + "\n[staff]\nmax_failures = 3\n"
        )
        with capture_logs() as logs:
            await daemon.reload()
        assert daemon.config.poll_hz == 10
        assert daemon.config.staff_max_failures == 3
        assert daemon.control is not None
        assert daemon.control.server.service.registry.max_failures == 3
        warned = [e for e in logs if e["event"] == "reload: these settings need a restart"]
        assert [e["keys"] for e in warned] == [["poll_hz"]]
    finally:
        await daemon.shutdown("sigterm")

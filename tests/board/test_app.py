"""The board's HTTP side without a browser: headers, access, bounds, rendering, read-only."""

from __future__ import annotations

import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pumpd_board.app import CSP, TOKEN_COOKIE, create_app
from pumpd_board.settings import BoardSettings, load_settings
from pumpd_board.source import Hub, NotARead, ReadOnlyClient, Snapshot
from pumpd_board.tiles import PumpView, build_tile, duration, mask_patient_ref

TOKEN = "wall-screen-token-0123456789"
BASE = "http://127.0.0.1:8470"

VIEW: dict[str, Any] = {
    "pump_id": "chair-3",
    "reachable": True,
    "pump_state": "INFUSING",
    "session_id": "s-1",
    "session_state": "INFUSING",
    "patient_ref": "MRN-004217",
    "protocol_id": "ketamine-trd-standard",
    "protocol_version": 2,
    "drug": "ketamine",
    "delivered_ul": 12_300,
    "vtbi_ul": 41_000,
    "rate_ml_h": "61.500",
    "dose_rate_mg_h": "24.600",
    "dose_rate_mg_kg_h": "0.300",
    "remaining_s": 1_680,
    "alarms": [
        {"code": "a.low", "priority": "low", "message": "Battery low", "source": "pump"},
        {"code": "a.high", "priority": "high", "message": "Downstream occlusion", "source": "pump"},
    ],
    "reminders": [],
    "vitals_due_in_s": -75,
    "audit_backlog": 0,
    "simulated": True,
    "some_future_field": 1,
}


def settings_for(
    config_file: Callable[[str], Path], tmp_path: Path, extra: str = ""
) -> BoardSettings:
    return load_settings(config_file(f"[board]\n{extra}"))


def hub_with(settings: BoardSettings, view: dict[str, Any]) -> Hub:
    hub = Hub(settings)
    now = dt.datetime.now(dt.UTC)
    tile = build_tile(
        PumpView.model_validate(view),
        now=now,
        zone=zoneinfo.ZoneInfo("UTC"),
        mask=settings.mask_patient_ref,
    )
    hub.latest = Snapshot(1, (tile,), True, None, now, time.monotonic())
    return hub


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "board.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_the_page_has_a_strict_policy_and_no_inline_code(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    settings = settings_for(config_file, tmp_path)
    with TestClient(
        create_app(settings, hub_with(settings, VIEW), poll=False), base_url=BASE
    ) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # every script is a file
    assert re.findall(r"\sstyle=|<style|\son[a-z]+=", html) == []
    assert "http://" not in html
    assert "https://" not in html
    tile = html[html.index('id="chair-chair-3"') :]
    assert "alarm-high" in tile[:200]
    assert "!!!" in tile
    assert "Downstream occlusion" in tile
    # the highest priority first, the low one too, each with its marker
    assert tile.index("Downstream occlusion") < tile.index("Battery low")
    assert '<progress value="12300" max="41000">' in tile
    assert "61.5 mL/h" in tile
    assert "0.30 mg/kg/h" in tile
    assert "overdue 1:15" in tile
    assert "MRN-004217" not in html
    assert "••••••••17" in html


def test_the_patient_reference_is_escaped_and_shown_when_unmasked(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    settings = settings_for(config_file, tmp_path, "mask_patient_ref = false\n")
    view = {**VIEW, "patient_ref": "<img src=x onerror=alert(1)>"}
    with TestClient(
        create_app(settings, hub_with(settings, view), poll=False), base_url=BASE
    ) as client:
        html = client.get("/").text
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_only_the_board_s_own_host_names_are_served(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    settings = settings_for(config_file, tmp_path)
    with TestClient(
        create_app(settings, hub_with(settings, VIEW), poll=False), base_url=BASE
    ) as client:
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
        assert client.get("/", headers={"host": "localhost:8470"}).status_code == 200
        assert client.get("/", headers={"host": "[::1]:8470"}).status_code == 200
        assert client.get("/", headers={"host": "[::2]:8470"}).status_code == 400
        assert client.get("/", headers={"host": "127.0.0.1.evil.example"}).status_code == 400
        assert client.post("/").status_code == 405


def test_with_a_token_every_page_needs_it(
    config_file: Callable[[str], Path], tmp_path: Path, token_file: Path
) -> None:
    settings = settings_for(config_file, tmp_path, f'access_token_file = "{token_file}"\n')
    app = create_app(settings, hub_with(settings, VIEW), poll=False)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        assert client.get("/").status_code == 401
        assert client.get("/events").status_code == 401
        assert client.get("/?token=not-the-token-at-all").status_code == 401
        first = client.get(f"/?token={TOKEN}")
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert f"{TOKEN_COOKIE}={TOKEN}" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert client.get("/").status_code == 200  # the cookie from now on
    with TestClient(app, base_url=BASE) as other:
        assert other.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert other.get("/static/board.js").status_code == 200  # no data in it


def test_event_streams_are_bounded(config_file: Callable[[str], Path], tmp_path: Path) -> None:
    settings = settings_for(config_file, tmp_path, "max_clients = 2\n")
    app = create_app(settings, hub_with(settings, VIEW), poll=False)
    app.state.board.streams = 2
    with TestClient(app, base_url=BASE) as client:
        refused = client.get("/events")
    assert refused.status_code == 503
    assert "max_clients" in refused.text


def test_the_client_sends_nothing_but_reads(tmp_path: Path) -> None:
    client = ReadOnlyClient(str(tmp_path / "no.sock"))
    for method in ("session.start", "session.acknowledge", "config.reload", "staff.add"):
        with pytest.raises(NotARead):
            client.call(method, {"pump": "chair-1"})


async def test_a_daemon_that_is_not_there_is_a_broken_link(
    config_file: Callable[[str], Path], tmp_path: Path
) -> None:
    hub = Hub(settings_for(config_file, tmp_path))
    await hub.poll_once()
    snap = hub.latest
    assert snap.link_ok is False
    assert snap.problem is not None
    assert "not running" in snap.problem
    assert snap.seq == 1
    assert snap.tiles == ()


def test_formats() -> None:
    assert mask_patient_ref("MRN-004217") == "••••••••17"
    assert mask_patient_ref("P7") == "•7"
    assert duration(59) == "0:59"
    assert duration(-75) == "1:15"
    assert duration(3_725) == "1:02:05"


def test_countdown_fields_in_the_clinic_zone_and_dashes_without_them() -> None:
    now = dt.datetime(2026, 3, 2, 13, 0, 0, tzinfo=dt.UTC)
    vienna = zoneinfo.ZoneInfo("Europe/Vienna")
    paused = {
        **VIEW,
        "session_state": "PAUSED",
        "alarms": [],
        "vitals_due_in_s": None,
        "pause_auto_stop_at": "2026-03-02T13:10:00+00:00",
        "earliest_discharge_at": "2026-03-02T13:45:30Z",
    }
    tile = build_tile(PumpView.model_validate(paused), now=now, zone=vienna, mask=False)
    assert tile.pause_auto_stop is not None
    assert tile.pause_auto_stop.remaining_s == 600
    assert tile.pause_auto_stop.local_time == "14:10 CET"
    assert tile.earliest_discharge is not None
    assert tile.earliest_discharge.remaining_s == 2_730
    assert tile.remaining_s is None  # nothing flows while paused
    assert tile.priority is None
    bare = {k: v for k, v in VIEW.items() if not k.endswith("_at")} | {"vitals_due_in_s": None}
    plain = build_tile(PumpView.model_validate(bare), now=now, zone=vienna, mask=False)
    assert plain.pause_auto_stop is None
    assert plain.earliest_discharge is None
    assert plain.vitals_due is None


def test_a_session_that_ended_by_itself_says_so_on_its_tile() -> None:
    now = dt.datetime(2026, 3, 2, 13, 0, 0, tzinfo=dt.UTC)
    ended = {
        **VIEW,
        "session_state": "ALARM",
        "delivery_ended": {
            "rule": "continue.ended",
            "reason": "Delivery was interrupted by tick.volume.over_infusion: …",
            "interrupted_by": ["tick.volume.over_infusion"],
            "observation_started_at": "2026-03-02T12:59:00Z",
        },
    }
    tile = build_tile(
        PumpView.model_validate(ended), now=now, zone=zoneinfo.ZoneInfo("UTC"), mask=False
    )
    assert tile.ended_by == "tick.volume.over_infusion"
    plain = build_tile(
        PumpView.model_validate({**VIEW, "delivery_ended": None}),
        now=now,
        zone=zoneinfo.ZoneInfo("UTC"),
        mask=False,
    )
    assert plain.ended_by is None

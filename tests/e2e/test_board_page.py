"""The page's own behaviour in Chromium, on a real board server whose hub holds a fixed
floor (three tiles: high, medium and low priority) instead of polling a daemon: the flash
rates and the steady low priority under Playwright's clock, the tone's bursts, and the
overlay when the board server itself goes away. The daemon-fed story is
tests/e2e/test_board.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import socket
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from pumpd_board.app import create_app
from pumpd_board.settings import load_settings
from pumpd_board.source import Hub, Snapshot
from pumpd_board.tiles import PumpView, build_tile

from .board_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium, wait_js

pytestmark = pytest.mark.slow


def view(pump: str, priority: str) -> dict[str, Any]:
    return {
        "pump_id": pump,
        "reachable": True,
        "session_state": "INFUSING",
        "patient_ref": f"MRN-{pump}",
        "delivered_ul": 5_000,
        "vtbi_ul": 40_000,
        "rate_ml_h": "60",
        "remaining_s": 2_100,
        "alarms": [{"code": f"x.{priority}", "priority": priority, "message": f"{priority} thing"}],
    }


CONFIG = """\
[daemon]
socket = "{dir}/pumpd.sock"
database = "sqlite:///{dir}/audit.db"

[[pump]]
id = "c1"
transport = "modbus-tcp"
address = "127.0.0.1:5020"
unit = 1

[board]
listen = "127.0.0.1:0"
stale_after_s = 60
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, uvicorn.Server]]:
    need_chromium()
    config = tmp_path / "pumpd.toml"
    config.write_text(CONFIG.format(dir=tmp_path), encoding="utf-8")
    settings = load_settings(config)
    hub = Hub(settings)
    now = dt.datetime.now(dt.UTC)
    tiles = tuple(
        build_tile(
            PumpView.model_validate(view(p, prio)),
            now=now,
            zone=zoneinfo.ZoneInfo("UTC"),
            mask=True,
        )
        for p, prio in (("c1", "high"), ("c2", "medium"), ("c3", "low"))
    )
    hub.latest = Snapshot(1, tiles, True, None, now, time.monotonic())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, hub, poll=False),
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def background(page: Any, pump: str) -> str:
    return str(page.locator(f"#chair-{pump}").evaluate("t => getComputedStyle(t).backgroundColor"))


def test_flash_rates_markers_and_the_tone(served: tuple[str, uvicorn.Server], page: Any) -> None:
    url, _ = served
    page.clock.install()
    page.goto(url)
    page.locator("#chair-c1.alarm-high").wait_for()
    page.clock.pause_at(dt.datetime.fromtimestamp(int(time.time()) + 5, dt.UTC))

    high, medium, low = [], [], set()
    for _ in range(100):  # 5 s in steps of 50 ms
        page.clock.run_for(50)
        high.append(background(page, "c1"))
        medium.append(background(page, "c2"))
        low.add(background(page, "c3"))
    changes = [sum(a != b for a, b in itertools.pairwise(s)) for s in (high, medium)]
    assert changes[0] in (19, 20), changes  # 2 Hz: 20 changes in 5 s
    assert changes[1] in (5, 6), changes  # 0.6 Hz: 6 changes in 5 s
    assert len(set(high)) == len(set(medium)) == 2
    assert len(low) == 1  # low priority: steady
    assert page.locator("#chair-c1 .state").inner_text().startswith("!!!")
    assert page.locator("#chair-c2 .state").inner_text().startswith("!!")
    assert not page.locator("#chair-c2 .state").inner_text().startswith("!!!")
    assert page.locator("#chair-c3 .state").inner_text().startswith("! ")

    tone = page.locator("#tone")
    assert tone.is_visible()
    tone.click()
    # The audio context resumes on the browser's audio thread, in real time (not on the
    # page's installed clock): on a loaded machine that takes a while.
    wait_js(page, 'document.getElementById("tone").textContent === "Alarm tone on"', 15.0)
    assert tone.inner_text() == "Alarm tone on"
    page.clock.run_for(25_000)  # a burst at once, then every 10 s while the high alarm stands
    assert tone.get_attribute("data-bursts") == "3"

    # no update for stale_after_s (60 s here): STALE, with the age of the last update
    assert page.locator("#overlay").is_hidden()
    page.clock.run_for(35_000)
    assert page.locator("#overlay").is_visible()
    assert page.locator("#overlay-title").inner_text() == "STALE"
    assert "Last update 1 min" in page.locator("#overlay-detail").inner_text()


def test_the_board_server_going_away_is_disconnected(
    served: tuple[str, uvicorn.Server], page: Any
) -> None:
    url, server = served
    page.goto(url)
    page.locator("#chair-c1").wait_for()
    assert page.locator("#overlay").is_hidden()
    server.should_exit = True
    page.locator("#overlay").wait_for(state="visible", timeout=15_000)
    assert page.locator("#overlay-title").inner_text() == "DISCONNECTED"
    assert "board server does not answer" in page.locator("#overlay-detail").inner_text()
    assert "Last update" in page.locator("#overlay-detail").inner_text()

"""The nurse-station board in a real browser (Debian's Chromium through Playwright), fed by
the real daemon and simulator, run as the auditor account.

One session, as a nurse station would see it: the chairs idle; chair-1 programmed and
infusing (the tile's figures and countdowns); an occlusion injected at the simulator (the
tile is red and flashing within a second of the alarm appearing in pumpd's status, with the
`!!!` marker); the flash rate and the countdowns under Playwright's clock; the alarm cleared
and acknowledged; then the daemon stopped (the DISCONNECTED overlay, with the age of the
last update counting under the controlled clock).
"""

from __future__ import annotations

import datetime as dt
import itertools
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pumpd.demo import press_alarm_key

from .board_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    BoardProcess,
    add_board_section,
    need_chromium,
    running_board,
    wait_js,
)
from .conftest import Accounts
from .stack import Stack
from .test_signals import start_infusion

pytestmark = pytest.mark.slow

TILE = "#chair-chair-1"


@pytest.fixture
def board_stack(accounts: Accounts) -> Iterator[tuple[Stack, BoardProcess]]:
    need_chromium()
    stack = Stack(time_scale=60, roles=accounts.roles, socket_group=accounts.socket_group)
    stack.default_user = accounts.nurse
    try:
        stack.start_sim()
        stack.write_config()
        add_board_section(stack)  # the daemon starts with [board] in its file
        stack.start_daemon()
        with running_board(stack, accounts.auditor) as board:
            yield stack, board
    finally:
        stack.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


WATCHER = """
import sys, time
from pumpd.cli.client import Client
with Client(sys.argv[1], timeout_s=5) as c:
    print("watching", flush=True)
    while True:
        views = c.call("status", {"pump": "chair-1"})
        if any(a["priority"] == "high" for a in views[0]["alarms"]):
            print(time.time(), flush=True)
            break
        time.sleep(0.02)
"""


def first_alarm_watcher(stack: Stack, user: str | None) -> subprocess.Popen[str]:
    """pumpd's own status, asked every 20 ms by a reader account: it prints the time the
    high alarm is first in it."""
    command = [sys.executable, "-c", WATCHER, str(stack.socket_path)]
    if user is not None:
        entry = pwd.getpwnam(user)
        command = [
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            *command,
        ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "watching"
    return proc


def test_board_follows_an_infusion_through_an_occlusion(
    board_stack: tuple[Stack, BoardProcess], accounts: Accounts, browser: Any
) -> None:
    stack, board = board_stack
    errors: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(board.url)
    tile = page.locator(TILE)
    tile.wait_for()
    assert page.locator("#chair-chair-2").is_visible()
    assert page.locator("#overlay").is_hidden()
    assert "read-only" in page.locator("header.top").inner_text()

    # -- infusing: the tile's figures
    start_infusion(stack, accounts, "P-BOARD-7")
    wait_js(
        page, "document.querySelector('#chair-chair-1 .state').textContent.includes('INFUSING')"
    )
    wait_js(page, "Number(document.querySelector('#chair-chair-1 progress').value) > 0")
    text = tile.inner_text()
    assert "P-BOARD-7" in text
    assert "ketamine-trd-standard v" in text
    assert "mL/h" in tile.locator(".rate").inner_text()
    assert "mg/kg/h" in tile.locator(".dose-rate").inner_text()
    assert ":" in tile.locator(".time-left").inner_text()
    assert ":" in tile.locator(".vitals-due").inner_text()
    assert tile.get_attribute("data-priority") == ""

    # -- the occlusion: red and flashing within one second of the alarm in pumpd's status
    page.evaluate(
        """() => new MutationObserver((_, obs) => {
            const t = document.querySelector('#chair-chair-1');
            if (t && t.classList.contains('alarm-high')) {
                window.redAt = Date.now();
                obs.disconnect();
            }
        }).observe(document.getElementById('root'),
                   {subtree: true, childList: true, attributes: true})"""
    )
    watcher = first_alarm_watcher(stack, accounts.auditor)
    stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=True)
    wait_js(page, "window.redAt !== undefined", 15)
    out, _ = watcher.communicate(timeout=15)
    red_at = page.evaluate("window.redAt") / 1000
    lag = red_at - float(out.strip())
    print(f"alarm in pumpd's status -> tile red: {lag * 1000:.0f} ms")
    assert lag <= 1.0, f"the tile turned red {lag:.2f} s after the alarm"
    assert "!!!" in tile.locator(".state").inner_text()
    assert "occlusion" in tile.locator(".alarms").inner_text().lower()
    colours = set()
    deadline = time.monotonic() + 3
    while len(colours) < 2 and time.monotonic() < deadline:
        colours.add(tile.evaluate("t => getComputedStyle(t).backgroundColor"))
        time.sleep(0.05)
    assert len(colours) == 2, f"the high alarm tile does not flash: {colours}"

    # -- the flash rate and the countdowns, under Playwright's clock
    clocked = browser.new_page()
    clocked.clock.install()
    clocked.goto(board.url)
    clocked.locator(f"{TILE}.alarm-high").wait_for()
    clocked.clock.pause_at(dt.datetime.fromtimestamp(int(time.time()) + 5, dt.UTC))
    phases = []
    for _ in range(40):  # 2 s in steps of 50 ms
        clocked.clock.run_for(50)
        phases.append(clocked.evaluate("document.documentElement.dataset.flashHigh"))
    changes = sum(1 for a, b in itertools.pairwise(phases) if a != b)
    assert 7 <= changes <= 8, f"2 Hz is 8 changes in 2 s, saw {changes}: {phases}"
    assert phases.count("on") in range(18, 23), phases  # 50 % duty

    # -- the nurse clears the line, silences the pump and acknowledges in pumpd
    stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=False)
    host, port = stack.sim_tcp.rsplit(":", 1)
    # (in a thread: Playwright's sync API keeps an event loop running in this one)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(press_alarm_key, host, int(port), 1).result(timeout=30)
    stack.ok("ack", "chair-1", "--note", "line straightened")
    wait_js(
        page,
        "document.querySelector('#chair-chair-1').dataset.priority === '' && "
        "document.querySelector('#chair-chair-1 .state').textContent.includes('STOPPED')",
    )
    stack.ok("observe", "chair-1")
    wait_js(
        page, "document.querySelector('#chair-chair-1 .state').textContent.includes('OBSERVATION')"
    )
    assert "from " in tile.locator(".discharge").inner_text()

    # -- the daemon goes away: DISCONNECTED, with the age of the last update
    clocked.reload()
    clocked.locator(f"{TILE}.state-observation").wait_for()
    before = clocked.locator(f"{TILE} .discharge .countdown").inner_text()
    assert stack.stop_daemon(signal.SIGTERM) == 0
    page.locator("#overlay").wait_for(state="visible", timeout=10_000)
    assert "DISCONNECTED" in page.locator("#overlay-title").inner_text()
    assert "pumpd does not answer" in page.locator("#overlay-detail").inner_text()
    assert "Last update" in page.locator("#overlay-detail").inner_text()
    wait_js(clocked, "document.querySelector('#overlay').hidden === false")
    clocked.clock.run_for(125_000)
    detail = clocked.locator("#overlay-detail").inner_text()
    assert "Last update 2 min" in detail, detail
    after = clocked.locator(f"{TILE} .discharge .countdown").inner_text()
    assert _seconds(before) - _seconds(after) in range(124, 127), (before, after)

    # -- pumpd is back: the board reconnects by itself and the overlay goes
    stack.start_daemon()
    page.locator("#overlay").wait_for(state="hidden", timeout=20_000)
    assert "OBSERVATION" in tile.locator(".state").inner_text()
    assert not errors, errors


def _seconds(text: str) -> int:
    if text == "now":
        return 0
    parts = [int(p) for p in text.split(":")]
    total = 0
    for p in parts:
        total = total * 60 + p
    return total

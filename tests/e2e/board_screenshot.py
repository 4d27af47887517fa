"""Take the README's picture of the board from a real floor: four chairs on the simulator and
the daemon, one infusing, one paused, one in observation, one stopped by an occlusion.

    .venv/bin/python -m tests.e2e.board_screenshot docs/images/board.png

As root (as `make demo` does) a throwaway group gets the roles; needs /usr/bin/chromium.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pumpd.demo import role_group

from .board_browser import CHROMIUM, CHROMIUM_ARGS, add_board_section, running_board
from .stack import PIN, Stack, add_staff


def program(stack: Stack, pump: str, patient: str, weight: str) -> None:
    stack.ok(
        "program", pump, "--patient", patient, "--weight", weight,
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    stack.ok(
        "confirm", pump, "--weight", weight, "--witness", "N002", "--pin-stdin",
        stdin=PIN["N002"] + "\n",
    )  # fmt: skip
    stack.ok("prime", pump, "--line-disconnected")
    stack.wait_state(pump, ["PRIMED"])
    stack.ok("vitals", pump, "--bp", "122/78", "--hr", "72", "--spo2", "98")
    stack.ok("start", pump)
    stack.wait_state(pump, ["INFUSING"])


def main(out: Path) -> None:
    with role_group() as group:
        roles = {"nurse": [group], "auditor": [group], "admin": [group]}
        stack = Stack(time_scale=20, pumps=5, roles=roles, socket_group=group)
        stack.default_user = None
        try:
            stack.start_sim()
            stack.write_config()
            add_board_section(stack, 'title = "Ketamine suite, chairs 1-5"\n')
            stack.start_daemon()
            add_staff(stack, None)
            program(stack, "chair-4", "MRN-118204", "64kg")
            stack.ok("stop", "chair-4", "--reason", "patient request")
            stack.ok("observe", "chair-4")
            program(stack, "chair-3", "MRN-120377", "91kg")
            stack.ok("pause", "chair-3", "--reason", "patient dizzy")
            program(stack, "chair-1", "MRN-104512", "82kg")
            program(stack, "chair-2", "MRN-099871", "70kg")
            time.sleep(4)
            stack.sim_request("fault", unit=2, fault="occlusion-downstream", on=True)
            stack.wait_state("chair-2", ["ALARM"])
            time.sleep(1)
            with running_board(stack, None) as board, ThreadPoolExecutor(1) as pool:
                pool.submit(shoot, board.url, out).result(timeout=60)
        finally:
            problems = [x for x in stack.daemon_log(200_000).splitlines() if "audit" in x.lower()]
            print("\n".join(problems[:20]), file=sys.stderr)
            stack.close()


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.clock.install()
        page.goto(url)
        page.locator("#chair-chair-2.alarm-high").wait_for(timeout=20_000)
        # stop the page's clock in the "on" phase of the 2 Hz flash, so the red shows
        now_ms = int(time.time() * 1000) // 500 * 500 + 1_100
        page.clock.pause_at(dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC))
        time.sleep(1.5)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/board.png"))

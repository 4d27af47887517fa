"""What the board's browser tests need: Debian's Chromium (or a loud skip), and a real
``pumpd-board`` process beside a :class:`~tests.e2e.stack.Stack`.

Without /usr/bin/chromium the tests are skipped with a warning; with ``CI=true`` they fail
(`.ci/run` installs the package). Never a browser that Playwright downloads.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .stack import BIN, Stack, StackError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires Chromium for the board's browser tests: {reason}", pytrace=False)
    warnings.warn(f"board browser tests SKIPPED: {reason}", stacklevel=1)
    pytest.skip(f"board browser tests SKIPPED: {reason}")


def wait_js(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll an expression through the DevTools protocol: Playwright's wait_for_function
    evaluates a string in the page, which the board's Content-Security-Policy refuses."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(f"() => Boolean({expression})"):
            return
        time.sleep(0.05)
    raise AssertionError(f"not true after {timeout_s:g} s: {expression}")


@dataclass
class BoardProcess:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def add_board_section(stack: Stack, extra: str = "") -> None:
    """The `[board]` section, in the daemon's own file (the daemon must accept it)."""
    with stack.config_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[board]\nlisten = "127.0.0.1:0"\nmask_patient_ref = false\n{extra}')


@contextmanager
def running_board(stack: Stack, user: str | None) -> Iterator[BoardProcess]:
    """`pumpd-board --config` as `user` (setpriv; None: this process's account)."""
    command = [str(BIN / "pumpd-board"), "--config", str(stack.config_path)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "Europe/Vienna"}
    if user is not None:
        entry = pwd.getpwnam(user)
        command = [
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            *command,
        ]  # fmt: skip
    log = stack.workdir / "board.log"
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("pumpd-board ready"):
        proc.kill()
        raise StackError(f"pumpd-board did not start: {line!r}\n{log.read_text()}")
    url = dict(p.split("=", 1) for p in line.split()[2:])["url"]
    board = BoardProcess(proc, url, log)
    try:
        yield board
    finally:
        board.stop()


def wait_until(predicate: object, timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise StackError(f"timed out after {timeout_s:g} s waiting for {what}")

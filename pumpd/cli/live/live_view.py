"""``pumpctl watch``: a live view that cannot mislead.

Each frame says when it was true (the daemon's time of the answer, in the clinic's zone).
When an answer does not come (the daemon stopped, restarts, or hangs past the bound), the
view does not freeze on old figures: a loud STALE banner says since when and why, the last
known figures stay visible under it as what they are, and the view reconnects by itself.
A new high-priority alarm rings the terminal bell once. One connection serves the whole
view, so the daemon records it as one open/close pair in its audit log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from pumpd.cli import client as rpc
from pumpd.cli.live import render
from pumpd.cli.live.common import report

Mode = Literal["live", "stream", "json"]

STALE_REPEAT_S = 10.0
"""Into a pipe or file, a STALE line is repeated this often while the outage lasts."""
MIN_ANSWER_WAIT_S = 5.0
"""The shortest wait for an answer before the view calls itself stale."""
_FATAL_CODES = frozenset({-32001, -32002, -32012, -32602})
"""Errors no reconnect can cure (forbidden, unknown pump, bad params): they end the view."""

BELL = "\a"


def high_alarms(views: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Each pump's high-priority alarms as (pump, code): what rings the bell when new."""
    return {
        (str(v.get("pump_id")), str(a.get("code")))
        for v in views
        for a in v.get("alarms") or []
        if isinstance(a, dict) and str(a.get("priority", "")).lower() == "high"
    }


def updated_line(views: list[dict[str, Any]]) -> Text:
    """``updated 14:05:09 CST (America/Chicago)``: when the figures below were true."""
    first = views[0] if views else {}
    zone = first.get("timezone")
    shown = render.clock(first.get("as_of"), zone)
    if shown == "-":
        return Text("updated -", "dim")
    return Text(f"updated {shown} ({zone})", "dim")


def frame(views: list[dict[str, Any]]) -> RenderableType:
    return Group(updated_line(views), render.status_views(views))


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's own flush at
    exit does not print a second error (the Python documentation's recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@contextmanager
def stopped_by_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) sets ``stop`` instead of raising KeyboardInterrupt wherever the
    program happens to be (inside a socket read, a console lock, a half-written frame): the
    loop ends at its next wait and the view closes in order."""
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Watch:
    """The refresh loop; ``mode`` is how frames are written (in place, appended, JSON)."""

    def __init__(
        self,
        socket_path: str,
        params: dict[str, Any],
        interval_s: float,
        console: Console,
        mode: Mode,
    ) -> None:
        self.socket_path = socket_path
        self.params = params
        self.interval_s = interval_s
        self.console = console
        self.mode = mode
        self.answer_wait_s = max(MIN_ANSWER_WAIT_S, 3 * interval_s)
        self._client: rpc.Client | None = None
        self.views: list[dict[str, Any]] = []
        self.last_ok_mono: float = 0.0
        self.stale_reason: str | None = None
        self._stale_shown_mono: float | None = None
        self.seen_high: set[tuple[str, str]] = set()
        self.stop = threading.Event()
        """Set by Ctrl-C (:func:`stopped_by_ctrl_c`): the loop ends at its next wait."""

    # -- the daemon -------------------------------------------------------------------

    def _fetch(self) -> bool:
        """One status read on the view's connection (made again when lost)."""
        try:
            if self._client is None:
                # Without the staff token: a view left open must not keep a login alive.
                self._client = rpc.Client(self.socket_path, timeout_s=self.answer_wait_s)
            views = self._client.call("status", self.params)
        except rpc.SocketPermissionDenied as exc:
            self._drop()
            report(exc)
        except rpc.RpcError as exc:
            if exc.code in _FATAL_CODES:
                self._drop()
                report(exc)
            self.stale_reason = exc.message
            return False
        except rpc.ClientError as exc:
            self._drop()
            self.stale_reason = self._why(exc)
            return False
        self.views = views if isinstance(views, list) else []
        self.last_ok_mono = time.monotonic()
        self.stale_reason = None
        return True

    def _why(self, exc: rpc.ClientError) -> str:
        """The outage in a nurse's words (not an errno: "Broken pipe" means nothing at a
        chair)."""
        cause = exc.__cause__
        if isinstance(cause, TimeoutError):
            return f"pumpd did not answer within {render.duration(self.answer_wait_s)}"
        if isinstance(cause, FileNotFoundError | ConnectionRefusedError):
            return "pumpd is not running (nothing listens on its socket)"
        if isinstance(exc, rpc.DaemonUnreachable):
            return "the connection to pumpd was lost (stopped or restarting)"
        return str(exc)

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        if not self._fetch():
            # No daemon at the start: say so and exit 5, as every other command does.
            self._drop()
            report(rpc.DaemonUnreachable(self.stale_reason or "pumpd did not answer"))
        try:
            if self.mode == "live":
                self._run_live()
            else:
                self._run_appending()
        finally:
            self._drop()

    def _ring_for_new_alarms(self) -> None:
        high = high_alarms(self.views)
        new = high - self.seen_high
        self.seen_high = high
        if new and self.mode != "json":
            self.console.file.write(BELL)
            self.console.file.flush()

    def _run_live(self) -> None:
        with Live(console=self.console, auto_refresh=False) as live:
            while not self.stop.is_set():
                if self.stale_reason is None:
                    self._ring_for_new_alarms()
                    live.update(frame(self.views), refresh=True)
                else:
                    live.update(self._stale_frame(), refresh=True)
                self._pause_then_fetch()

    def _run_appending(self) -> None:
        was_ok = True
        while not self.stop.is_set():
            if self.stale_reason is None:
                self._ring_for_new_alarms()
                self._write_frame(reconnected=not was_ok)
                self._stale_shown_mono = None
            else:
                self._write_stale()
            was_ok = self._pause_then_fetch()

    def _pause_then_fetch(self) -> bool:
        """Wait, read again; returns whether the view was current before this read."""
        ok_now = self.stale_reason is None
        if not self.stop.wait(self.interval_s if ok_now else max(1.0, self.interval_s)):
            self._fetch()
        return ok_now

    def _write_frame(self, *, reconnected: bool) -> None:
        if self.mode == "json":
            line = json.dumps(self.views, ensure_ascii=False, sort_keys=True)
            self.console.file.write(line + "\n")
            self.console.file.flush()
            return
        if reconnected:
            self.console.print(Text("reconnected to pumpd; the figures are current again", "green"))
        first = self.views[0] if self.views else {}
        shown = render.clock(first.get("as_of"), first.get("timezone"))
        self.console.rule(f"updated {shown}")
        self.console.print(render.status_views(self.views))

    def _age_s(self) -> int:
        return int(time.monotonic() - self.last_ok_mono)

    def _stale_text(self) -> str:
        first = self.views[0] if self.views else {}
        since = render.clock(first.get("as_of"), first.get("timezone"))
        return (
            f"STALE: no update from pumpd since {since} ({render.duration(self._age_s())} ago): "
            f"{self.stale_reason}. The figures below are old. Reconnecting by itself."
        )

    def _stale_frame(self) -> RenderableType:
        banner = Panel(Text(self._stale_text(), "bold white on red"), style="bold red")
        old = Text("last known figures, NOT current:", "bold red")
        return Group(banner, old, render.status_views(self.views), banner)

    def _write_stale(self) -> None:
        now = time.monotonic()
        if self._stale_shown_mono is not None and now - self._stale_shown_mono < STALE_REPEAT_S:
            return
        self._stale_shown_mono = now
        if self.mode == "json":
            first = self.views[0] if self.views else {}
            line = {
                "stale": True,
                "last_update_at": first.get("as_of"),
                "no_update_for_s": self._age_s(),
                "reason": self.stale_reason,
            }
            self.console.file.write(json.dumps(line, sort_keys=True) + "\n")
            self.console.file.flush()
            return
        self.console.print(Text(self._stale_text(), "bold white on red"))

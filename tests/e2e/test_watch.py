"""`pumpctl watch` as a nurse leaves it open, through the real processes.

The daemon runs in America/Chicago: every time the view shows is that zone's, with its
abbreviation. A new high-priority alarm rings the terminal bell once, not every frame. When
the daemon goes away the view says STALE (no traceback, no frozen frame) and reconnects by
itself when the daemon is back. In the audit log the whole view is one open/close pair.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from .conftest import Accounts
from .stack import Stack, running_stack
from .test_signals import start_infusion

WAIT_S = 60.0
CLINIC_ZONE = "America/Chicago"
UPDATED = re.compile(rb"updated \d\d:\d\d:\d\d (CST|CDT)")


class Watching:
    """A `pumpctl watch` process whose output (stdout and stderr) is collected as it comes:
    into a pipe (frames appended), or on a pseudo-terminal (`tty`: redrawn in place)."""

    def __init__(self, stack: Stack, *args: str, tty: bool = False) -> None:
        command, env = stack.command(["watch", *args])
        self.out = b""
        self._lock = threading.Lock()
        if tty:
            master, slave = pty.openpty()
            env = {**env, "COLUMNS": "120", "LINES": "60", "TERM": "xterm"}
            self.proc = subprocess.Popen(command, env=env, stdout=slave, stderr=slave)
            os.close(slave)
            self._source: Callable[[], bytes] = lambda: _read_pty(master)
        else:
            self.proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            assert self.proc.stdout is not None
            pipe = self.proc.stdout
            self._source = lambda: pipe.read1(65536)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self._source():
            with self._lock:
                self.out += chunk

    def text(self) -> bytes:
        with self._lock:
            return self.out

    def wait_for(self, what: str, test: Callable[[bytes], bool]) -> bytes:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            out = self.text()
            if test(out):
                return out
            assert self.proc.poll() is None, f"watch exited {self.proc.poll()}: {out[-3000:]!r}"
            time.sleep(0.1)
        raise AssertionError(f"watch never showed {what}: {self.text()[-3000:]!r}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return code


def _read_pty(master: int) -> bytes:
    try:
        return os.read(master, 65536)
    except OSError:  # EIO: the process closed its side
        return b""


def _utc(text: object) -> dt.datetime:
    assert isinstance(text, str), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _view_events(stack: Stack, since: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """The audit log's events since ``since`` (its own clock), payloads by type."""
    done = stack.audit("events", "--json", "--since", since.isoformat())
    assert done.returncode == 0, done.stderr
    events: dict[str, list[dict[str, Any]]] = {}
    for event in json.loads(done.stdout):
        events.setdefault(event["event_type"], []).append(event["payload"])
    return events


def test_watch_rings_goes_stale_reconnects_and_is_one_audit_pair(accounts: Accounts) -> None:
    with running_stack(
        time_scale=120,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        timezone=CLINIC_ZONE,
    ) as stack:
        stack.default_user = accounts.nurse
        start_infusion(stack, accounts, "P-WATCH")
        # One-shot reads show the clinic's time too, and the daemon names its zone.
        assert json.loads(stack.ok("whoami", "--json"))["timezone"] == CLINIC_ZONE
        shown = stack.ok("status", "chair-1")
        assert re.search(r"vitals due\s+in .*\(at \d\d:\d\d:\d\d C[SD]T\)", shown), shown

        watch = Watching(stack, "chair-1", "--interval", "0.3")
        screen = Watching(stack, "--interval", "0.3", tty=True)
        watch.wait_for("an infusing frame", lambda o: b"INFUSING" in o and bool(UPDATED.search(o)))
        screen.wait_for("a frame on the terminal", lambda o: bool(UPDATED.search(o)))
        # (Normally none; a loaded machine can raise a high audit.write_failed alarm, which
        # rings, rightly: so the bells are counted from here.)
        bells = watch.text().count(b"\a")

        stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=True)
        stack.wait_state("chair-1", ["ALARM"])
        rang = watch.wait_for("the bell", lambda o: o.count(b"\a") > bells)
        frames = len(UPDATED.findall(rang))
        watch.wait_for("five frames more", lambda o: len(UPDATED.findall(o)) >= frames + 5)
        assert watch.text().count(b"\a") == rang.count(b"\a"), "one bell, not one a frame"

        assert stack.stop_daemon(signal.SIGTERM) == 0, stack.daemon_log()
        gone = watch.wait_for("STALE", lambda o: b"STALE" in o)
        assert watch.proc.poll() is None, "the view stays up when the daemon goes"
        stale_at = gone.index(b"STALE")
        assert b"Reconnecting by itself" in gone[stale_at:]
        shown = screen.wait_for("STALE on the terminal", lambda o: b"STALE" in o)
        on_screen = len(shown)
        stack.start_daemon()
        # On the terminal the banner goes and a fresh frame is drawn in place.
        screen.wait_for("a fresh frame", lambda o: bool(UPDATED.search(o[on_screen:])))
        assert screen.interrupt() == 0
        assert b"Traceback" not in screen.text(), screen.text()[-3000:]
        back = watch.wait_for("a reconnect", lambda o: b"reconnected" in o[stale_at:])
        after = back[back.index(b"reconnected", stale_at) :]
        watch.wait_for("a fresh frame", lambda o: bool(UPDATED.search(o[len(back) - len(after) :])))
        assert watch.interrupt() == 0
        out = watch.text()
        assert b"Traceback" not in out, out[-3000:]
        assert b"Broken pipe" not in out
        assert b"Errno" not in out, "the outage in words, not an errno"
        assert b"UTC" not in out, "the clinic's zone, not UTC"

        # The audit: a watch is an open/close pair per connection, nothing per refresh.
        # (Selected by time: the views above may still be closing, and their reads across
        # the restart may have failed once, "not connected yet", a record of its own.)
        # The record's times are to the second: start in a second of its own.
        t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        time.sleep((t0 - dt.datetime.now(dt.UTC)).total_seconds() + 0.05)
        watch = Watching(stack, "--json", "--interval", "0.2")
        watch.wait_for("ten refreshes", lambda o: o.count(b"\n") >= 10)
        assert watch.interrupt() == 0
        lines = [json.loads(line) for line in watch.text().splitlines()]
        assert all(isinstance(v, list) for v in lines), "JSON lines, each the status list"

        def since_t0(events: list[dict[str, object]]) -> list[dict[str, object]]:
            return [p for p in events if _utc(p["opened_at"]) >= t0]

        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            after = _view_events(stack, since=t0)
            if since_t0(after.get("control.view.closed", [])):
                break
            time.sleep(0.2)
        closed = since_t0(after.get("control.view.closed", []))
        assert len(closed) == 1, (t0, [sorted(c.items()) for c in closed])
        assert closed[0]["reads"] == {"status": len(lines)}
        assert closed[0]["end_code"] == "client_closed"
        assert len(since_t0(after.get("control.view.opened", []))) == 1
        served = [p for p in after.get("control.request.served", []) if p["method"] == "status"]
        assert served == [], "no record per refresh"

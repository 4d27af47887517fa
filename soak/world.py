"""The processes of one soak run and what the soak itself did to them.

Built on the end-to-end harness (`tests/e2e/stack.py`: the real `pumpsim` and `pumpd`
processes). :class:`World` adds what the chaos needs: the daemon's lives (generation,
pid, when it was ready, how it ended), a wait for "the daemon is up again", the faults
the soak injected and the keys it pressed at the pumps, all stamped with
``time.monotonic()`` (system-wide on Linux, so comparable with the simulator's stamps).
"""

from __future__ import annotations

import contextlib
import grp
import os
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pumpsim.control import ControlClient

from pumpd.drivers import Command
from soak import panel
from soak.kinds import DULCO_KEY_BASE, NEWERA_KEY_BASE, is_dulco, is_newera, read_sim
from tests.e2e.stack import Stack

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}
RSS_FLOOR_WINDOW_S = 10.0
"""A daemon's RSS swings by 64 MiB per argon2id PIN hash in flight (at most two at once,
``pumpd.staff.registry``) and falls back when it ends; the lowest value over this window
is what the daemon keeps. Logins and witnessed checks are seconds apart in a soak; if
hashes ran back to back for the whole window the figure holds one (it errs high)."""


@dataclass
class DaemonLife:
    generation: int
    pid: int
    started_mono: float
    ready_mono: float
    rss_kib_at_ready: int
    ended_mono: float | None = None
    ended_by: str | None = None
    """KILL, TERM (chaos) or END (the soak's own final SIGTERM)."""
    rss_kib_at_end: int | None = None
    rss_kib_peak: int = 0
    """The highest RSS sampled in this life."""
    rss_kib_floor_at_end: int | None = None
    """The lowest RSS sampled in the last ``RSS_FLOOR_WINDOW_S`` of this life: what it
    keeps, without the PIN hashes in flight at the moment it ended."""
    rss_recent: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def note_rss(self, t_mono: float, kib: int) -> None:
        self.rss_kib_peak = max(self.rss_kib_peak, kib)
        self.rss_recent.append((t_mono, kib))
        while self.rss_recent and self.rss_recent[0][0] < t_mono - RSS_FLOOR_WINDOW_S:
            self.rss_recent.popleft()

    @property
    def rss_kib_floor(self) -> int:
        """The lowest RSS sampled in the last ``RSS_FLOOR_WINDOW_S`` (0: none sampled)."""
        return min((kib for _, kib in self.rss_recent), default=0)


@dataclass(frozen=True)
class Injection:
    """One fault request the simulator answered: turned on or off (soak/injections.py pairs
    them for the evidence)."""

    t_mono: float
    unit: int
    fault: str
    on: bool
    params: dict[str, object]
    t_epoch: float
    """``time.time()`` read with ``t_mono``, as the request was sent."""


@dataclass(frozen=True)
class Press:
    t_mono: float
    unit: int
    cmd_seq: int
    command: str
    answered: bool = True
    """False: written, no reply; the pump may or may not have taken it."""


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


@contextlib.contextmanager
def role_group(name: str) -> Iterator[str]:
    """A Unix group holding the soak's roles. pumpd gives root no role through its own
    groups, so as root a throwaway group is created and joined by this process (the
    daemon checks the peer's groups) and removed at the end; as anyone else, the primary
    group is used."""
    if os.geteuid() != 0:
        yield grp.getgrgid(os.getgid()).gr_name
        return
    subprocess.run(["groupdel", name], capture_output=True, check=False)
    subprocess.run(["groupadd", "--users", "root", name], check=True, capture_output=True)
    before = os.getgroups()
    try:
        os.setgroups([*before, grp.getgrnam(name).gr_gid])
        yield name
    finally:
        os.setgroups(before)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


@dataclass
class World:
    stack: Stack
    lives: list[DaemonLife] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    presses: list[Press] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    up: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def generation(self) -> int:
        return len(self.lives)

    @property
    def sim_tcp(self) -> tuple[str, int]:
        host, port = self.stack.sim_tcp.rsplit(":", 1)
        return host, int(port)

    # ------------------------------------------------------------------ the daemon

    def start_daemon(self) -> None:
        started = time.monotonic()
        self.stack.start_daemon()
        assert self.stack.daemon is not None
        pid = self.stack.daemon.pid
        ready, kib = time.monotonic(), rss_kib(pid)
        life = DaemonLife(self.generation + 1, pid, started, ready, kib)
        life.note_rss(ready, kib)
        with self.lock:
            self.lives.append(life)
        self.up.set()

    def note_rss(self) -> None:
        """Sample the RSS of the daemon that is up (the sampler calls this each period)."""
        with self.lock:
            if not self.lives or self.lives[-1].ended_mono is not None:
                return
            life = self.lives[-1]
            kib = rss_kib(life.pid)
            if kib:
                life.note_rss(time.monotonic(), kib)

    def stop_daemon(self, how: str) -> None:
        """Signal the daemon (``KILL``/``TERM``, or ``END`` = TERM at the end of the run)."""
        life = self.lives[-1]
        rss = rss_kib(life.pid)
        self.up.clear()
        sig = SIGNALS.get(how, signal.SIGTERM)
        with self.lock:
            now = time.monotonic()
            if rss:
                life.note_rss(now, rss)
            life.ended_mono = now
            life.ended_by = how
            life.rss_kib_at_end = rss
            life.rss_kib_floor_at_end = life.rss_kib_floor
        self.stack.stop_daemon(sig)
        if how != "END":
            self.restarts[how] += 1

    def wait_up(self, timeout_s: float) -> bool:
        return self.up.wait(timeout_s)

    # ------------------------------------------------------------------ the pumps

    def sim_status(self, unit: int) -> dict[str, Any]:
        """The pump's state and true volume from the simulator, in GIP-MB1 terms (any kind)."""
        host, port = self.stack.sim_control
        with ControlClient(host, port, timeout_s=10) as control:
            return read_sim(control, unit)

    def inject(self, unit: int, fault: str, on: bool, params: dict[str, Any]) -> dict[str, Any]:
        t, epoch = time.monotonic(), time.time()
        if is_dulco(unit):
            reply = self.stack.sim_request(
                "dulco-fault", unit=unit - DULCO_KEY_BASE, fault=fault, on=on, **params
            )
        elif is_newera(unit):
            reply = self.stack.sim_request(
                "newera-fault", address=unit - NEWERA_KEY_BASE, fault=fault, on=on, **params
            )
        elif fault == "reboot":
            reply = self.stack.sim_request("reboot", unit=unit)
        else:
            reply = self.stack.sim_request("fault", unit=unit, fault=fault, on=on, **params)
        with self.lock:
            self.injections.append(Injection(t, unit, fault, on, dict(params), epoch))
        return reply

    def press(self, unit: int, command: Command) -> int:
        if is_dulco(unit):
            if command is not Command.ACK_ALARM:
                raise panel.PanelError(f"pump {unit}: only the DULCO's error reset is modelled")
            # The error reset key at the pump (the simulator's control channel stands in
            # for the nurse's finger); it writes nothing on pumpd's line.
            self.stack.sim_request("dulco-panel-reset", unit=unit - DULCO_KEY_BASE)
            return 0
        if is_newera(unit):
            # The simulated New Era pump has no key pumpd's checker could tell apart; its
            # alarm is cleared by the next request that reads it (pumpd's own poll).
            raise panel.PanelError(f"pump {unit}: no panel key is modelled for a New Era pump")
        host, port = self.sim_tcp
        try:
            seq = panel.press(host, port, unit, command)
        except panel.PanelUncertain as exc:
            # Kept: if the pump took it after all, its record is a press, not a command
            # without an intent.
            with self.lock:
                self.presses.append(
                    Press(time.monotonic(), unit, exc.cmd_seq, command.value, answered=False)
                )
            raise
        with self.lock:
            self.presses.append(Press(time.monotonic(), unit, seq, command.value))
        return seq

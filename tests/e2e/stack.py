"""The real thing, as processes: `pumpsim`, `pumpd --config`, and `pumpctl` per command.

A :class:`Stack` owns a working directory (world-traversable, so throwaway users can reach
the socket), a simulator process, the daemon's configuration and process, and runs
`pumpctl` as this user or as another one (`setpriv` with that user's uid, gid and groups).
Every wait is bounded; nothing asserts on speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpsim.control import ControlClient

BIN = Path(sys.executable).parent
DEFAULT = "\0default"
"""`user=` sentinel: the stack's default user (None means this very process)."""
READY_TIMEOUT_S = 90.0
WAIT_S = 120.0


class StackError(AssertionError):
    """The stack did not get where a test needs it; the message has the daemon's log tail."""


@dataclass
class Stack:
    time_scale: int = 120
    pumps: int = 2
    socket_group: str | None = None
    roles: dict[str, list[str]] = field(default_factory=dict)
    heartbeat_timeout_s: int = 3
    default_user: str | None = None
    database_url: str | None = None
    """The audit database; by default a fresh SQLite file in the working directory."""
    audit_spool: str | None = None
    """The daemon's `audit_spool`; by default `spool/audit.spool` in the working directory
    (`"off"` switches it off)."""
    rtu_pumps: int = 0
    """The last `rtu_pumps` GIP-MB1 units are wired over the simulator's RTU pty line."""
    newera_pumps: int = 0
    """The last `newera_pumps` chairs are New Era syringe pumps (60 mL syringes) at
    addresses 1.. on the simulator's New Era pty line; the chairs before them are GIP-MB1."""
    dulco_pumps: int = 0
    """0 or 1: the last chair is a DULCO flex pump (the prominent-dulcoflex profile, unit 20)
    on the simulator's DULCO pty line; the New Era chairs come just before it."""
    staff_idle_timeout_min: float | None = None
    """`[staff] idle_timeout_min` (simulated minutes: the daemon's clock is scaled)."""
    timezone: str | None = None
    """`[daemon] timezone` (the clinic's IANA zone); by default the system's."""

    max_rate: str | None = None
    """The simulated pumps' own maximum rate (`pumpsim --max-rate`, mL/h)."""
    protocols: Path | None = None
    """`[daemon] protocols`: the library directory (default the shipped one)."""
    simulation: bool = True
    """`[daemon] simulation`; live (false) runs the simulator unscaled (`time_scale` 1)."""
    workdir: Path = field(init=False)
    sim: subprocess.Popen[str] | None = field(default=None, init=False)
    daemon: subprocess.Popen[str] | None = field(default=None, init=False)
    sim_tcp: str = field(default="", init=False)
    sim_control: tuple[str, int] = field(default=("", 0), init=False)
    ready_line: str = field(default="", init=False)
    _daemon_logs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pumpd-e2e-"))
        self.workdir.chmod(0o755)  # other users must reach the socket in it
        (self.workdir / "run").mkdir(mode=0o700)

    @property
    def socket_path(self) -> Path:
        return self.workdir / "pumpd.sock"

    @property
    def database(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.workdir / 'audit.db'}"

    @property
    def spool_path(self) -> Path | None:
        if self.audit_spool == "off":
            return None
        if self.audit_spool is not None:
            return Path(self.audit_spool)
        return self.workdir / "spool" / "audit.spool"

    @property
    def control_journal(self) -> Path:
        """What the simulator's control channel was told (`pumpsim --control-journal`)."""
        return self.workdir / "pumpsim-control.jsonl"

    @property
    def rtu_link(self) -> Path:
        return self.workdir / "pump-rtu"

    @property
    def newera_link(self) -> Path:
        return self.workdir / "pump-newera"

    @property
    def dulco_line(self) -> Path:
        return self.workdir / "pump-dulco"

    def transport_of(self, unit: int) -> str:
        """`tcp`, `rtu`, `newera` or `dulco`: how the daemon reaches the pump of chair
        `unit`."""
        if unit > self.pumps - self.dulco_pumps:
            return "dulco"
        gip = self.pumps - self.dulco_pumps - self.newera_pumps
        if unit > gip:
            return "newera"
        return "rtu" if unit > gip - self.rtu_pumps else "tcp"

    def newera_address(self, unit: int) -> int:
        """The New Era network address of chair `unit` (a `newera` chair)."""
        return unit - (self.pumps - self.dulco_pumps - self.newera_pumps)

    @property
    def config_path(self) -> Path:
        return self.workdir / "pumpd.toml"

    # ------------------------------------------------------------------ processes

    def start_sim(self) -> None:
        gip = max(1, self.pumps - self.newera_pumps - self.dulco_pumps)
        args = ["--pumps", str(gip), "--tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"]
        args += ["--control-journal", str(self.control_journal)]
        args += ["--time-scale", str(self.time_scale)]
        if self.dulco_pumps:
            # The pump's Modbus timeout as long as heartbeat_timeout_s allows (a loaded
            # machine's pause is not a silence); 115200 baud: the wire time, scaled, would
            # otherwise be minutes of pump time.
            timeout_ms = min(10_000, self.heartbeat_timeout_s * 1000)
            args += ["--dulco-link", str(self.dulco_line), "--dulco-baud", "115200"]
            args += ["--dulco-timeout-ms", str(timeout_ms)]
        if self.newera_pumps:
            args += ["--newera-link", str(self.newera_link)]
            args += ["--newera-pumps", str(self.newera_pumps)]
        if self.max_rate is not None:
            args += ["--max-rate", self.max_rate]
        if self.rtu_pumps:
            args += ["--rtu-link", str(self.rtu_link)]
        log = (self.workdir / "pumpsim.log").open("w")
        self.sim = subprocess.Popen(
            [str(BIN / "pumpsim"), *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.sim.stdout is not None
        line = self.sim.stdout.readline()
        if not line.startswith("pumpsim ready"):
            raise StackError(f"pumpsim did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        self.sim_tcp = fields["tcp"]
        host, port = fields["control"].rsplit(":", 1)
        self.sim_control = (host, int(port))

    def write_config(self) -> None:
        if self.spool_path is not None:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            "[daemon]",
            f'socket = "{self.socket_path}"',
            f'database = "{self.database}"',
            f'audit_spool = "{self.spool_path or "off"}"',
            "poll_hz = 10",
            f"simulation = {'true' if self.simulation else 'false'}",
        ]
        if self.simulation:
            lines.append(f"time_scale = {self.time_scale}")
        if self.protocols is not None:
            lines.append(f'protocols = "{self.protocols}"')
        if self.socket_group:
            lines.append(f'socket_group = "{self.socket_group}"')
        if self.timezone:
            lines.append(f'timezone = "{self.timezone}"')
        if self.staff_idle_timeout_min is not None:
            lines += ["\n[staff]", f"idle_timeout_min = {self.staff_idle_timeout_min}"]
        lines.append("\n[roles]")
        lines += [f"{role} = {json.dumps(groups)}" for role, groups in self.roles.items()]
        for unit in range(1, self.pumps + 1):
            if self.transport_of(unit) == "dulco":
                wire = [
                    'transport = "modbus-rtu"',
                    'profile = "prominent-dulcoflex"',
                    f'device = "{self.dulco_line}"',
                    "baudrate = 115200",
                    'parity = "N"',  # a pty keeps no parity
                    "unit = 20",
                ]
            elif self.transport_of(unit) == "newera":
                wire = [
                    'transport = "newera-serial"',
                    f'device = "{self.newera_link}"',
                    f"address = {self.newera_address(unit)}",
                    'syringe = "bd-plastic-60ml"',
                ]
            elif self.transport_of(unit) == "rtu":
                wire = ['transport = "modbus-rtu"', f'device = "{self.rtu_link}"', f"unit = {unit}"]
            else:
                wire = ['transport = "modbus-tcp"', f'address = "{self.sim_tcp}"', f"unit = {unit}"]
            lines += [
                "\n[[pump]]",
                f'id = "chair-{unit}"',
                *wire,
                f"heartbeat_timeout_s = {self.heartbeat_timeout_s}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start_daemon(self) -> None:
        self._daemon_logs += 1
        log_path = self.workdir / f"pumpd-{self._daemon_logs}.log"
        out = log_path.open("w")
        self.daemon = subprocess.Popen(
            [str(BIN / "pumpd"), "--config", str(self.config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("pumpd ready"):
                    self.ready_line = line
                    return
            if self.daemon.poll() is not None:
                break
            time.sleep(0.1)
        raise StackError(f"pumpd not ready (exit {self.daemon.poll()}):\n{self.daemon_log()}")

    def daemon_log(self, chars: int = 4000) -> str:
        path = self.workdir / f"pumpd-{self._daemon_logs}.log"
        return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(sig)
        try:
            return self.daemon.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            raise StackError(f"pumpd did not exit on signal {sig}:\n{self.daemon_log()}") from None

    def close(self) -> None:
        for proc in (self.daemon, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ clients

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PUMPD_SOCKET"] = str(self.socket_path)
        env["XDG_RUNTIME_DIR"] = str(self.workdir / "run")
        env["COLUMNS"] = "120"
        return env

    def runtime_dir(self, user: str) -> Path:
        """A private XDG_RUNTIME_DIR (and HOME) for `user`, where its staff token lives."""
        path = self.workdir / f"run-{user}"
        if not path.exists():
            entry = pwd.getpwnam(user)
            path.mkdir(mode=0o700)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def command(
        self, args: Sequence[str], user: str | None = DEFAULT
    ) -> tuple[list[str], dict[str, str]]:
        """argv and environment of a pumpctl process: as `user` (root only: setpriv with its
        uid, gid and groups), by default the stack's default user, or this process (None)."""
        if user == DEFAULT:
            user = self.default_user
        command: list[str] = [str(BIN / "pumpctl"), *args]
        env = self.env()
        if user is not None:
            entry = pwd.getpwnam(user)
            command = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--init-groups",
                *command,
            ]
            home = str(self.runtime_dir(user))
            env = {
                "PATH": "/usr/bin:/bin",
                "PUMPD_SOCKET": str(self.socket_path),
                "HOME": home,
                "XDG_RUNTIME_DIR": home,
                "COLUMNS": "120",
                "LANG": "C.UTF-8",
            }
        return command, env

    def pumpctl(
        self, *args: str, user: str | None = DEFAULT, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """A real pumpctl process (see :meth:`command`), its output captured."""
        command, env = self.command(args, user)
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, timeout=120
        )

    def ok(self, *args: str, user: str | None = DEFAULT, stdin: str = "") -> str:
        result = self.pumpctl(*args, user=user, stdin=stdin)
        if result.returncode != 0:
            raise StackError(
                f"pumpctl {' '.join(args)} exited {result.returncode}: {result.stderr}\n"
                f"{self.daemon_log()}"
            )
        return result.stdout

    def status(self, pump: str) -> dict[str, Any]:
        out = self.ok("status", pump, "--json")
        views = json.loads(out)
        assert isinstance(views, list), views
        assert len(views) == 1, views
        view: dict[str, Any] = views[0]
        return view

    def wait_state(
        self, pump: str, states: Sequence[str], timeout_s: float = WAIT_S
    ) -> dict[str, Any]:
        """The pump's view once its session is in one of `states`."""
        return self.wait_view(
            pump, lambda v: v.get("session_state") in states, f"in {states}", timeout_s
        )

    def wait_view(
        self,
        pump: str,
        wanted: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = WAIT_S,
    ) -> dict[str, Any]:
        """The pump's first view that is `wanted`, read from one `pumpctl watch --json` (a
        view every 0.2 s on one connection): a `pumpctl status` process per read would spend
        a CPU-second every few reads on a 2-core machine, and see the state a process
        start-up late."""
        command, env = self.command(["watch", pump, "--json", "--interval", "0.2"])
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] = {}
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
            assert proc.stdout is not None
            pending = b""
            try:
                while (left_s := deadline - time.monotonic()) > 0:
                    ready, _, _ = select.select([proc.stdout], [], [], left_s)
                    if not ready:
                        continue
                    chunk = os.read(proc.stdout.fileno(), 1 << 16)
                    if not chunk:
                        errors.seek(0)
                        raise StackError(
                            f"pumpctl watch {pump} exited {proc.wait()} before {pump} was "
                            f"{what}: {errors.read().decode(errors='replace')}\n"
                            f"{self.daemon_log()}"
                        )
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        views = json.loads(line)
                        if not isinstance(views, list):
                            continue  # a stale notice: no answer from pumpd for a while
                        assert len(views) == 1, views
                        view = views[0]
                        if wanted(view):
                            return view
            finally:
                proc.kill()
                proc.wait()
                proc.stdout.close()
        raise StackError(f"{pump} not {what} after {timeout_s:g} s: {view}")

    def sim_request(self, op: str, **fields: object) -> dict[str, Any]:
        host, port = self.sim_control
        with ControlClient(host, port, timeout_s=10) as c:
            return c.request(op, **fields)

    def wait_halted(self, pump: str, settle_s: float = 1.0) -> dict[str, Any]:
        """The pump's view once pumpd reads it halted (PAUSED or IDLE) and ``settle_s`` more
        of polls (10 at 10 Hz) have judged its final volume.

        A fault that drives a pump wrong is seen by more than one rule, in either order: a
        runaway's rate mismatch pauses it, and the readings after that pause can still show
        the volume it ran ahead crossing the over-infusion band, a second alarm latched a
        poll or two after the first. A test that acknowledges the first before the second
        is in acknowledges only half of it."""
        self.wait_view(pump, lambda v: v.get("pump_state") in ("PAUSED", "IDLE"), "read halted")
        time.sleep(settle_s)
        return self.status(pump)

    def sim_status(self, unit: int) -> dict[str, Any]:
        reply = self.sim_request("status", unit=unit)
        status: dict[str, Any] = reply["status"]
        return status

    def sim_log(self, unit: int) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.sim_request("log", unit=unit)["records"]
        return records

    def audit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "pumpaudit"), "--database", self.database, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


@contextlib.contextmanager
def running_stack(**kwargs: Any) -> Iterator[Stack]:
    stack = Stack(**kwargs)
    try:
        stack.start_sim()
        stack.write_config()
        stack.start_daemon()
        yield stack
    finally:
        stack.close()


SHORT_PROTOCOL = "ketamine-trd-short-test"
"""ketamine-trd-standard's rate (150 mL/h) and rules with a 20 mL bag over 8 min and a 2 mL
prime (tests/e2e/protocols/): for the tests that run a session to its volume, whose point
is the stop at the volume, not the 40 minutes. 8 min of infusion is 8 s at x60: enough for
the commands a test makes while it runs, not at x120 on a loaded machine."""
_TEST_PROTOCOLS = Path(__file__).resolve().parent / "protocols"
_SHIPPED_PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"


def library_with_short_protocol(directory: Path) -> Path:
    """The shipped library (released) plus :data:`SHORT_PROTOCOL` (a draft: simulation only)
    in a new `directory`, readable by the throwaway accounts."""
    directory.mkdir(mode=0o755)
    for path in (*_SHIPPED_PROTOCOLS.iterdir(), *_TEST_PROTOCOLS.glob("*.toml")):
        if path.is_file():
            shutil.copy(path, directory)
    directory.chmod(0o755)
    return directory


PIN = {"N001": "493817", "N002": "620554", "N009": "111999"}


def add_staff(stack: Stack, user: str | None) -> None:
    """Two nurses in the registry (added by an admin account)."""
    for staff_id, name in (("N001", "Ana Silva"), ("N002", "Ben Okafor")):
        stack.ok(
            "staff", "add", staff_id, "--name", name, "--role", "nurse", "--pin-stdin",
            user=user, stdin=PIN[staff_id] + "\n",
        )  # fmt: skip

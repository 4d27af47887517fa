"""The demo's rig: its clock and timeouts, the `Demo` that starts `pumpsim`, `pumpd` and
`pumpctl` processes and stops every one on exit, the chairs' transports (`CHAIRS`), the
alarm key pressed on a simulated pump, and the nurse-station board.

`pumpd/demo.py` tells the story (`make demo`) with these; kept apart so both stay
readable.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpd.cli.client import Client, ClientError

TIME_SCALE = 60
READY_TIMEOUT_S = 90.0
STATE_TIMEOUT_S = 240.0
OBSERVATION_REAL_S = 30 * 60 / TIME_SCALE + 2  # the protocol's 30 min, plus a margin
BIN = Path(sys.executable).parent
ROOT_GROUP_PREFIX = "pumpd-demo"
PIN_ANA = "493817"
PIN_BEN = "620554"


class DemoFailed(RuntimeError):
    """A step did not do what the demo expects; the message says which."""


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def say(text: str) -> None:
    print(f"# {text}", flush=True)


@dataclass
class Demo:
    workdir: Path
    group: str
    observation_began: dict[str, float] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    sim_control: str = ""
    sim_tcp: str = ""
    quiet_view: Client | None = None
    socket_path: Path = field(init=False)
    database: str = field(init=False)

    def __post_init__(self) -> None:
        self.socket_path = self.workdir / "pumpd.sock"
        self.database = f"sqlite:///{self.workdir / 'audit.db'}"
        (self.workdir / "run").mkdir(mode=0o700)

    # ------------------------------------------------------------------ processes

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PUMPD_SOCKET"] = str(self.socket_path)
        env["XDG_RUNTIME_DIR"] = str(self.workdir / "run")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("COLUMNS", "100")
        return env

    @property
    def newera_link(self) -> Path:
        return self.workdir / "newera-line"

    @property
    def dulco_link(self) -> Path:
        return self.workdir / "dulco-line"

    def start_simulator(self) -> None:
        args = [
            "--pumps",
            "1",
            "--tcp",
            "127.0.0.1:0",
            "--newera-link",
            str(self.newera_link),
            "--newera-pumps",
            "1",
            # The DULCO pump's Modbus timeout is set at its panel (3 s, as long as chair-3's
            # heartbeat_timeout_s allows); 115200 baud keeps the scaled wire time short.
            "--dulco-link",
            str(self.dulco_link),
            "--dulco-timeout-ms",
            "3000",
            "--dulco-baud",
            "115200",
            "--control",
            "127.0.0.1:0",
            "--time-scale",
            str(TIME_SCALE),
        ]
        print("$ pumpsim " + shlex.join(args), flush=True)
        log = (self.workdir / "pumpsim.log").open("w")
        proc = subprocess.Popen(
            [str(BIN / "pumpsim"), *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("pumpsim ready"):
            raise DemoFailed(f"pumpsim did not start: {line!r}")
        print(line.rstrip(), flush=True)
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        self.sim_tcp, self.sim_control = fields["tcp"], fields["control"]

    @property
    def key_file(self) -> Path:
        return self.workdir / "chain.key"

    def write_config(self) -> Path:
        config = self.workdir / "pumpd.toml"
        # A keyed chain, as in a clinic: only the key's holder can rebuild the hashes.
        self.tool("pumpd", "audit", "keygen", str(self.key_file))
        pumps = "".join(
            f'\n[[pump]]\nid = "{chair}"\n' + "".join(f"{line}\n" for line in lines(self))
            for chair, lines in CHAIRS.items()
        )
        config.write_text(
            "[daemon]\n"
            f'socket = "{self.socket_path}"\n'
            f'socket_group = "{self.group}"\n'
            f'database = "{self.database}"\n'
            f'audit_spool = "{self.workdir / "audit.spool"}"\n'
            "poll_hz = 10\n"
            "simulation = true\n"
            f"time_scale = {TIME_SCALE}\n"
            # The staff login's idle time runs on the simulated clock: 600 simulated
            # minutes are 10 real ones at x60.
            "\n[staff]\nidle_timeout_min = 600\n"
            "\n[roles]\n"
            f'nurse = ["{self.group}"]\n'
            f'auditor = ["{self.group}"]\n'
            f'admin = ["{self.group}"]\n'
            f'\n[audit]\nkey_file = "{self.key_file}"\n' + pumps,
            encoding="utf-8",
        )
        return config

    def start_daemon(self, config: Path) -> None:
        print(f"$ pumpd --config {config}", flush=True)
        log_path = self.workdir / "pumpd.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [str(BIN / "pumpd"), "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env(),
        )
        self.procs.append(proc)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("pumpd ready"):
                    print(line, flush=True)
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise DemoFailed(f"pumpd did not become ready (exit {proc.poll()}); its log:\n{tail}")

    def stop_all(self) -> None:
        if self.quiet_view is not None:
            self.quiet_view.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    # ------------------------------------------------------------------ the nurse

    def pumpctl(
        self, *args: str, stdin: str | None = None, expect: int = 0, shown_stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run `pumpctl` as a nurse would type it; print the command and what it said."""
        prefix = f"{shown_stdin} | " if shown_stdin else ""
        print(f"\n$ {prefix}pumpctl {shlex.join(args)}", flush=True)
        result = subprocess.run(
            [str(BIN / "pumpctl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=180,
        )
        for line in (result.stdout + result.stderr).rstrip().splitlines():
            print(f"  {line}", flush=True)
        if result.returncode != expect:
            raise DemoFailed(
                f"pumpctl {' '.join(args)} exited {result.returncode}, expected {expect}"
            )
        return result

    def tool(
        self, name: str, *args: str, check: bool = True, brief: bool = False, width: int = 100
    ) -> str:
        """Another real command (pumpsim, pumpaudit), printed with its output (`brief`: a
        JSON status reply shown as its state and alarm flags only)."""
        print(f"\n$ {name} {shlex.join(args)}", flush=True)
        env = {**self.env(), "COLUMNS": str(width)}
        result = subprocess.run(
            [str(BIN / name), *args], capture_output=True, text=True, timeout=120, env=env
        )
        out = (result.stdout + result.stderr).rstrip()
        if brief and result.returncode == 0:
            reply = json.loads(result.stdout)
            flags = reply.get("alarm_flags", reply.get("alarm"))
            out = f"pump state {reply.get('state')}, alarm flags {flags} …"
        for line in out.splitlines():
            print(f"  {line}", flush=True)
        if check and result.returncode != 0:
            raise DemoFailed(f"{name} {' '.join(args)} exited {result.returncode}")
        return result.stdout

    def status(self, pump: str) -> dict[str, Any]:
        """The daemon's view of one pump (read quietly; the printed views are pumpctl's), on
        one kept connection like any live view: audited as one view, not one read each."""
        if self.quiet_view is None:
            self.quiet_view = Client(str(self.socket_path))
        try:
            views = self.quiet_view.call("status", {"pump": pump})
        except ClientError:  # closed as idle meanwhile: once more on a new connection
            self.quiet_view.close()
            self.quiet_view = Client(str(self.socket_path))
            views = self.quiet_view.call("status", {"pump": pump})
        view: dict[str, Any] = views[0]
        return view

    def wait_for(self, pump: str, states: Sequence[str], *, vitals_every_s: float = 0) -> None:
        """Wait (bounded) until the session reaches one of `states`, taking vitals meanwhile."""
        deadline = time.monotonic() + STATE_TIMEOUT_S
        last_vitals = time.monotonic()
        last_watch = time.monotonic()
        while time.monotonic() < deadline:
            view = self.status(pump)
            if view.get("session_state") in states:
                if "OBSERVATION" in states:
                    self.observation_began[pump] = time.monotonic()
                return
            if view.get("session_state") == "ALARM" and "ALARM" not in states:
                raise DemoFailed(f"{pump} alarmed: {view.get('alarms')}")
            now = time.monotonic()
            if vitals_every_s and now - last_vitals >= vitals_every_s:
                self.pumpctl("vitals", pump, "--bp", "124/80", "--hr", "76", "--spo2", "97")
                last_vitals = now
            if vitals_every_s and now - last_watch >= 12:
                self.pumpctl("watch", pump, "--once")
                last_watch = now
            time.sleep(0.5)
        raise DemoFailed(f"{pump} did not reach {'/'.join(states)} in {STATE_TIMEOUT_S:g} s")

    def ack_at_pump(self, unit: int) -> None:
        """The nurse presses the pump's own alarm key (pumpd never sends ACK_ALARM itself)."""
        print(f"\n# at chair-{unit}'s pump: the nurse presses the alarm key (ACK_ALARM)")
        host, port = self.sim_tcp.rsplit(":", 1)
        press_alarm_key(host, int(port), unit)


def _gip_mb1_tcp(demo: Demo) -> list[str]:
    return ['transport = "modbus-tcp"', f'address = "{demo.sim_tcp}"', "unit = 1"]


def _newera_serial(demo: Demo) -> list[str]:
    return [
        'transport = "newera-serial"',
        f'device = "{demo.newera_link}"',
        "baudrate = 19200",
        "address = 1",
        'syringe = "bd-plastic-60ml"',
        "heartbeat_timeout_s = 10",
    ]


def _dulco_flex_rtu(demo: Demo) -> list[str]:
    return [
        'transport = "modbus-rtu"',
        'profile = "prominent-dulcoflex"',
        f'device = "{demo.dulco_link}"',
        "baudrate = 115200",
        'parity = "N"',  # the pump's line is 8E1; a pseudo-terminal keeps no parity
        "unit = 20",
        "heartbeat_timeout_s = 3",
    ]


CHAIRS = {
    "chair-1": _gip_mb1_tcp,
    "chair-2": _newera_serial,
    "chair-3": _dulco_flex_rtu,
}
"""Each chair's pump and how pumpd reaches it: its `[[pump]]` lines after the id."""


def press_alarm_key(host: str, port: int, unit: int) -> None:
    """What the alarm key on the pump's panel does: ACK_ALARM, written by nobody but the
    nurse at the pump. Its cmd_seq is taken far from the last one so that it can never be
    the sequence number pumpd's own next command carries."""
    import asyncio

    from pymodbus.client import AsyncModbusTcpClient

    from pumpd.drivers import Command, load_profile

    profile = load_profile()

    async def press() -> None:
        client = AsyncModbusTcpClient(host, port=port, timeout=3, retries=0)
        await client.connect()
        try:
            last = profile.input.fields.last_cmd_seq.address
            reply = await client.read_input_registers(last, count=1, device_id=unit)
            seq = (reply.registers[0] + 32768) % 65536 or 1
            cmd = profile.holding.fields.cmd_seq.address
            code = profile.command_code(Command.ACK_ALARM)
            await client.write_registers(cmd, [seq, code], device_id=unit)
        finally:
            client.close()

    asyncio.run(press())


def start_board(demo: Demo, config: Path) -> None:
    """The nurse-station board (docs/board.md) beside the daemon: `[board]` in the same file
    (the daemon ignores it), a free loopback port, its address printed for a browser."""
    with config.open("a", encoding="utf-8") as f:
        f.write('\n[board]\nlisten = "127.0.0.1:0"\nmask_patient_ref = false\n')
    print(f"$ pumpd-board --config {config}", flush=True)
    proc = subprocess.Popen(
        [str(BIN / "pumpd-board"), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=(demo.workdir / "board.log").open("w"),
        stdin=subprocess.DEVNULL,
        text=True,
        env=demo.env(),
    )
    demo.procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("pumpd-board ready"):
        raise DemoFailed(f"pumpd-board did not start: {line!r}")
    url = dict(part.split("=", 1) for part in line.split()[2:])["url"]
    print(f"{line.rstrip()}\n# the nurse-station board: open {url} in a browser", flush=True)

"""`make demo`: a full supervised ketamine session, as a clinic would run it, on a laptop.

It starts the real `pumpsim` (time scale 60: one real second is one simulated minute)
serving a mixed clinic (`CHAIRS`): chair-1 a GIP-MB1 pump over Modbus TCP, chair-2 a New
Era NE-1000 syringe pump (60 mL syringe, Safe mode) on a serial line (a pseudo-terminal),
chair-3 a ProMinent DULCO flex metering pump driven through the `prominent-dulcoflex`
register-map profile over Modbus RTU on another pseudo-terminal. Then the real
`pumpd` in simulation mode on a temporary SQLite database (config, socket and database in
a temporary directory), and it types the nurses' commands into real `pumpctl` processes,
printing each command and its output:

* an admin adds two staff members; nurse Ana (N001) logs in at the shared station;
* chair-1: program, the double-check by nurse Ben (N002) at the same terminal (staff id +
  PIN, the weight typed again), baseline vitals, prime with the line disconnected, start,
  a pause and a resume, a downstream occlusion cleared at the pump, acknowledged and
  continued (`pumpctl resume --reason`), vitals every ten simulated minutes, a clinical
  note, completion, the observation and the discharge checklist;
* chair-2, the syringe pump: the 100 mL bag protocol is refused for the syringe's capacity
  (exit 3); the syringe protocol `ketamine-trd-syringe` (1 mg/mL) is programmed instead; a
  motor stall (the syringe pump's only occlusion alarm) is injected through the
  simulator's control channel, pumpd stops the pump and raises the alarm, the nurse clears
  the line, acknowledges the alarm in pumpd and ends the infusion there (`pumpctl end`),
  then observes and discharges;
* chair-3, the DULCO flex (no prime over Modbus, no volume target of its own): a third
  patient on the 100 mL bag protocol, the double-check and vitals; the start without a
  prime is refused until the nurse says the line was primed by hand (`start
  --primed-by-hand`); it infuses beside the others, pumpd stops it at the programmed
  volume, and it is observed and discharged; `pumpctl pumps` lists the three pumps with
  their transports;
* chair-1: a soft-limit override approved by a second nurse;
* `pumpaudit sessions`, the timeline of chair-1's session and `pumpaudit verify`;
* chair-1's session report as a PDF (and its pages as PNG) and its FHIR R4 bundle, in a
  directory that is kept.

About three minutes. Every process it starts is stopped on exit or Ctrl-C. As
root, the role group (a throwaway `pumpd-demo-<pid>` group, unique to the run, so two demos
at once do not remove each other's) is created and removed again; as any other user the
user's own primary group is given the roles in the demo's configuration.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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


# ---------------------------------------------------------------------- the story


def session_id_of(demo: Demo, pump: str) -> str:
    return str(demo.status(pump).get("session_id"))


def run_story(demo: Demo) -> str:
    """The whole story; returns the id of chair-1's treated session (for the records)."""
    banner("who is at the terminal, and the staff registry (admin)")
    demo.pumpctl("whoami")
    demo.pumpctl(
        "staff", "add", "N001", "--name", "Ana Silva", "--role", "nurse", "--pin-stdin",
        stdin=f"{PIN_ANA}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl(
        "staff", "add", "N002", "--name", "Ben Okafor", "--role", "nurse", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("staff", "list")
    say("Ana logs in at the shared nurse station: the audit names her, not the account")
    demo.pumpctl("login", "N001", "--pin-stdin", stdin=f"{PIN_ANA}\n", shown_stdin="echo ******")
    demo.pumpctl("whoami")
    demo.pumpctl("pumps")

    banner("chair-1: program, double-check by a second nurse, baseline vitals, prime")
    demo.pumpctl(
        "program", "chair-1", "--patient", "P-0042", "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    say("the same person may not double-check her own order:")
    demo.pumpctl("confirm", "chair-1", "--weight", "82kg", expect=3)
    say("Ben types the weight again himself and his PIN (hidden at a terminal)")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    demo.pumpctl("prime", "chair-1", "--line-disconnected")
    demo.wait_for("chair-1", ["PRIMED"])
    demo.pumpctl("status", "chair-1")

    banner("chair-1: start")
    demo.pumpctl("start", "chair-1")
    demo.wait_for("chair-1", ["INFUSING"])
    treated = session_id_of(demo, "chair-1")
    demo.pumpctl("watch", "chair-1", "--once")

    banner("chair-2, a syringe pump on a serial line: a second patient, then a stall")
    say("a 100 mL bag protocol does not fit chair-2's 60 mL syringe: refused, nothing sent")
    demo.pumpctl(
        "program", "chair-2", "--patient", "P-0107", "--weight", "64kg",
        "--protocol", "ketamine-trd-standard", "--yes", expect=3,
    )  # fmt: skip
    demo.pumpctl(
        "program", "chair-2", "--patient", "P-0107", "--weight", "64kg",
        "--protocol", "ketamine-trd-syringe", "--yes",
    )  # fmt: skip
    demo.pumpctl(
        "confirm", "chair-2", "--weight", "64kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-2", "--bp", "118/76", "--hr", "70", "--spo2", "99")
    demo.pumpctl("prime", "chair-2", "--line-disconnected")
    demo.wait_for("chair-2", ["PRIMED"])
    demo.pumpctl("start", "chair-2")
    demo.wait_for("chair-2", ["INFUSING"])
    time.sleep(3)
    say("the simulator kinks chair-2's line: the syringe pump's motor stalls (A?S)")
    control = ["--control", demo.sim_control, "--address", "1"]
    demo.tool("pumpsim", "newera-fault", *control, "stall", "on", brief=True)
    demo.wait_for("chair-2", ["ALARM"])
    demo.pumpctl("alarms")
    demo.pumpctl("status", "chair-2")
    end_after_stall(demo, control)
    start_dulco(demo)

    banner("chair-1: a pause and a resume, vitals every ten (simulated) minutes")
    demo.pumpctl("vitals", "chair-1", "--bp", "130/84", "--hr", "78", "--spo2", "97")
    demo.pumpctl("pause", "chair-1", "--reason", "patient asked for a short break")
    demo.wait_for("chair-1", ["PAUSED"])
    time.sleep(1)
    demo.pumpctl("status", "chair-1")
    demo.pumpctl("resume", "chair-1")
    demo.wait_for("chair-1", ["INFUSING"])
    time.sleep(2)
    say("the patient leans on chair-1's line: a downstream occlusion")
    control = ["--control", demo.sim_control, "--unit", "1"]
    demo.tool("pumpsim", "fault", *control, "occlusion-downstream", "on", brief=True)
    demo.wait_for("chair-1", ["ALARM"])
    demo.pumpctl("alarms")
    say("acknowledging while the line is still blocked is refused:")
    demo.pumpctl("ack", "chair-1", expect=3)
    continue_after_occlusion(demo, control)
    demo.pumpctl("vitals", "chair-1", "--bp", "136/86", "--hr", "82", "--spo2", "97")
    demo.pumpctl("note", "chair-1", "Nausea; ondansetron 4 mg IV given.")
    demo.wait_for("chair-1", ["OBSERVATION"], vitals_every_s=9)
    demo.pumpctl("status", "chair-1")

    banner("observation and discharge (30 simulated minutes)")
    demo.pumpctl("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
    demo.pumpctl("checklist", "chair-1")
    say("discharge before the observation time is over is refused:")
    demo.pumpctl("discharge", "chair-1", "--confirm-all", expect=3)
    demo.wait_for("chair-2", ["OBSERVATION"])
    wait_for_discharge(demo, "chair-2")
    demo.pumpctl("discharge", "chair-2", "--confirm-all")
    demo.wait_for("chair-3", ["OBSERVATION"])
    wait_for_discharge(demo, "chair-3")
    demo.pumpctl("discharge", "chair-3", "--confirm-all")
    wait_for_discharge(demo, "chair-1")
    demo.pumpctl("discharge", "chair-1", "--confirm-all")
    override_approved_by_second_nurse(demo)
    demo.pumpctl("logout")
    return treated


def start_dulco(demo: Demo) -> None:
    """chair-3, a metering pump driven through its register map: it cannot prime over
    Modbus and holds no volume target, so the line is primed by hand (the kernel refuses
    the start until the nurse says so) and pumpd stops it at the programmed volume."""
    banner("chair-3, a DULCO flex over Modbus RTU: a third patient, primed by hand")
    say("the three kinds side by side: each with its own transport and line")
    demo.pumpctl("pumps")
    demo.pumpctl(
        "program", "chair-3", "--patient", "P-0233", "--weight", "70kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    demo.pumpctl(
        "confirm", "chair-3", "--weight", "70kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-3", "--bp", "126/80", "--hr", "68", "--spo2", "98")
    say("this pump cannot prime over its bus: a start without a prime is refused")
    demo.pumpctl("start", "chair-3", expect=3)
    say("the nurse primes the line by hand at the bag and says so at the start")
    demo.pumpctl("start", "chair-3", "--primed-by-hand")
    demo.wait_for("chair-3", ["INFUSING"])
    demo.pumpctl("status", "chair-3")


def end_after_stall(demo: Demo, control: list[str]) -> None:
    """chair-2's kinked line is straightened and the alarm acknowledged in pumpd; the
    nurse ends the infusion there and the observation begins.

    A syringe pump knows of a blockage only while its motor pushes: once pumpd has
    stopped it, it shows no alarm of its own (a line still blocked would stall again at
    once); the alarm stays in the session until a nurse acknowledges it. Continuing is not
    shown: the remaining volume must be one the pump holds exactly (4 digits), and pumpd
    never rounds it silently (docs/driver.md)."""
    say("the nurse straightens the line at the pump and acknowledges the alarm")
    demo.tool("pumpsim", "newera-fault", *control, "stall", "off", brief=True)
    demo.pumpctl("ack", "chair-2", "--note", "kinked line straightened at the pump")
    demo.pumpctl("end", "chair-2", "--reason", "line stalled; not continued today, doctor informed")
    demo.pumpctl("status", "chair-2")


def continue_after_occlusion(demo: Demo, control: list[str]) -> None:
    """chair-1's kinked line is straightened, the pump's own alarm key pressed, the alarm
    acknowledged in pumpd, and the same session continued (the kernel decides: a cleared
    mechanical alarm, the remaining volume from the independent account, the interruption
    within the pause limit, fresh vitals, the pump idle); it then runs to completion."""
    say("the nurse straightens the line; the pump keeps its alarm until its own key is pressed")
    demo.tool("pumpsim", "fault", *control, "occlusion-downstream", "off", brief=True)
    print("\n# at chair-1's pump: the nurse presses the alarm key", flush=True)
    demo.tool("pumpsim", "press-alarm-key", *control, brief=True)
    demo.pumpctl("ack", "chair-1", "--note", "kinked line straightened at the pump")
    say("continuing needs fresh vitals and a reason; the kernel decides")
    demo.pumpctl("vitals", "chair-1", "--bp", "120/78", "--hr", "72", "--spo2", "98")
    demo.pumpctl("resume", "chair-1", "--reason", "kinked line straightened, patient well")
    demo.wait_for("chair-1", ["INFUSING"])
    demo.pumpctl("status", "chair-1")


def override_approved_by_second_nurse(demo: Demo) -> None:
    """A 140 kg patient at the escalation protocol's default dose: Ana gives the reason,
    Ben approves each soft verdict (value and limit shown) as part of his double-check."""
    banner("chair-1: a soft-limit override, approved by a second nurse")
    demo.pumpctl(
        "program", "chair-1", "--patient", "P-0131", "--weight", "140kg",
        "--protocol", "ketamine-trd-escalation", "--yes",
        "--override-reason", "140 kg; default escalation dose confirmed by Dr Rao",
    )  # fmt: skip
    say("a double-check that does not approve the override is refused and names it:")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "140kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******", expect=3,
    )  # fmt: skip
    say("Ben approves exactly what is listed, with his double-check")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "140kg", "--approve-override",
        "--witness", "N002", "--pin-stdin", stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.tool(
        "pumpaudit",
        "--database",
        demo.database,
        "events",
        "--type",
        "override.granted",
        width=180,
    )
    demo.pumpctl("abort", "chair-1", "--reason", "demo: the treatment is given another day")


def wait_for_discharge(demo: Demo, pump: str) -> None:
    """Sleep until the protocol's observation time (30 simulated min) has passed for `pump`."""
    began = demo.observation_began[pump]
    remaining = began + OBSERVATION_REAL_S - time.monotonic()
    if remaining > 0:
        say(f"waiting {remaining:.0f} s (real) for {pump}'s observation time to pass")
        time.sleep(remaining)
    demo.pumpctl("vitals", pump, "--bp", "120/78", "--hr", "70", "--spo2", "98")


def show_audit(demo: Demo, session_id: str) -> None:
    banner("the audit log")
    demo.tool("pumpaudit", "--database", demo.database, "sessions")
    demo.tool("pumpaudit", "--database", demo.database, "show", session_id, width=180)
    demo.tool("pumpaudit", "--database", demo.database, "verify", "--key-file", str(demo.key_file))


def write_session_records(demo: Demo, session_id: str) -> None:
    """Chair-1's session report (PDF) and its FHIR R4 bundle, kept after the demo ends."""
    banner("chair-1's session report and its FHIR record")
    keep = Path(tempfile.mkdtemp(prefix="pumpd-demo-records-"))
    pdf, bundle = keep / f"{session_id}.pdf", keep / f"{session_id}.fhir.json"
    key = ["--key-file", str(demo.key_file)]
    report = ["report", session_id, "--pdf", str(pdf), "--png", str(keep / "pages"), *key]
    demo.tool("pumpaudit", "--database", demo.database, *report)
    demo.tool(
        "pumpaudit", "--database", demo.database, "fhir", session_id, "--out", str(bundle), *key
    )
    print(f"\nThe report is {pdf} (its pages as PNG in {keep / 'pages'})", flush=True)
    print(f"The FHIR bundle is {bundle}", flush=True)


def verify_against_published_heads(demo: Demo) -> None:
    """The chain against the heads pumpd published in its log (journald's stand-in here):
    a cut tail, a rewound chain or a forged head line would be named (docs/audit.md,
    "Published heads")."""
    banner("the audit chain against the heads pumpd published in its log")
    log = str(demo.workdir / "pumpd.log")
    demo.tool(
        "pumpaudit",
        "--database",
        demo.database,
        "verify",
        "--key-file",
        str(demo.key_file),
        "--checkpoints",
        log,
    )


@contextlib.contextmanager
def role_group() -> Iterator[str]:
    """The Unix group that holds the demo's roles.

    pumpd grants no role to root's own groups (no implicit superuser), so as root a
    throwaway group with root as its member is created, joined by this process (its
    children, the pumpctl processes, inherit it) and removed at the end.
    """
    if os.geteuid() != 0:
        yield grp.getgrgid(os.getgid()).gr_name
        return
    # One group per run (this process's id): a second demo at the same time must not
    # remove the first one's group, and so its roles, when it cleans up.
    name = f"{ROOT_GROUP_PREFIX}-{os.getpid()}"
    subprocess.run(["groupdel", name], capture_output=True, check=False)  # a dead run's
    subprocess.run(["groupadd", "--users", "root", name], check=True)
    before = os.getgroups()
    try:
        os.setgroups([*before, grp.getgrnam(name).gr_gid])
        yield name
    finally:
        os.setgroups(before)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


def main() -> int:
    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="pumpd-demo-"))
    code = 0
    try:
        with role_group() as group:
            demo = Demo(workdir=workdir, group=group)
            try:
                banner("the simulator and the daemon (simulation mode, time x60)")
                demo.start_simulator()
                config = demo.write_config()
                print(f"\n{config}:\n" + config.read_text(encoding="utf-8"))
                start_board(demo, config)
                demo.start_daemon(config)
                session = run_story(demo)
            finally:
                demo.stop_all()
            show_audit(demo, session)
            write_session_records(demo, session)

            verify_against_published_heads(demo)
            print("\nThe demo is over: every command above went through pumpd's control socket.")
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started is stopped.")
        code = 130
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        for name in ("pumpd.log",):
            path = workdir / name
            if path.exists():
                print(f"--- last lines of {name}", file=sys.stderr)
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
                print("\n".join(tail), file=sys.stderr)
        code = 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

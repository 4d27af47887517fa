"""A supervised session over a DULCO flex Control pump, through real processes.

pumpctl → pumpd's socket → the register-map driver with the prominent-dulcoflex profile →
a pseudo-terminal (Modbus RTU, unit 20, parity N because a pty keeps none) → pumpsim's
DULCO pump. The pump cannot prime over Modbus: the nurse starts with a line primed by
hand (`start --primed-by-hand`). The pump has no VTBI of its own: the driver stops it at the plan's
volume. A fault stops the session; after a simulated Modbus timeout the pump, which would
restart by itself, never does.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import IS_ROOT, Accounts
from .stack import (
    BIN,
    PIN,
    SHORT_PROTOCOL,
    Stack,
    StackError,
    add_staff,
    library_with_short_protocol,
)

PROTOCOL = "ketamine-trd-standard"
UNIT = 20
pytestmark = pytest.mark.timeout(400)


@dataclass
class DulcoStack(Stack):
    """chair-1 is a DULCO flex pump at unit 20 on the simulator's DULCO line."""

    pump_timeout_ms: int = 3000
    """The pump's Modbus timeout: as long as `heartbeat_timeout_s` (3 s) allows, so a
    loaded test machine's pauses are not mistaken for silence."""

    @property
    def dulco_link(self) -> str:
        return str(self.workdir / "dulco")

    def start_sim(self) -> None:
        args = ["--tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"]
        args += ["--time-scale", str(self.time_scale), "--dulco-link", self.dulco_link]
        # 115200: the line's wire time, scaled 120 times, would be minutes of pump time.
        args += ["--dulco-timeout-ms", str(self.pump_timeout_ms), "--dulco-baud", "115200"]
        log = (self.workdir / "pumpsim.log").open("w")
        self.sim = subprocess.Popen(
            [str(BIN / "pumpsim"), *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.sim.stdout is not None
        line = self.sim.stdout.readline()
        if not line.startswith("pumpsim ready"):
            raise StackError(f"pumpsim did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        host, port = fields["control"].rsplit(":", 1)
        self.sim_control = (host, int(port))

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text(encoding="utf-8")
        head = text.split("\n[[pump]]", 1)[0]
        pump = "\n".join(
            [
                "\n[[pump]]",
                'id = "chair-1"',
                'transport = "modbus-rtu"',
                'profile = "prominent-dulcoflex"',
                f'device = "{self.dulco_link}"',
                "baudrate = 115200",
                'parity = "N"',
                f"unit = {UNIT}",
                f"heartbeat_timeout_s = {self.heartbeat_timeout_s}",
            ]
        )
        self.config_path.write_text(head + pump + "\n", encoding="utf-8")

    def pump(self) -> dict[str, object]:
        status: dict[str, object] = self.sim_request("dulco-status", unit=UNIT)["status"]  # type: ignore[assignment]
        return status


def _stack(accounts: Accounts, protocols: Path | None = None) -> DulcoStack:
    # Time scale 40, not 120: this pump has no VTBI of its own, so the stop at the volume is
    # as late as the line and the event loop are, and every wall millisecond is scaled.
    s = DulcoStack(
        time_scale=40,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        protocols=protocols,
    )
    s.start_sim()
    s.write_config()
    s.start_daemon()
    s.default_user = accounts.nurse
    add_staff(s, accounts.admin)
    return s


def _programmed_and_started(s: Stack, accounts: Accounts, protocol: str = PROTOCOL) -> str:
    out = s.ok(
        "program", "chair-1", "--patient", "P-DF-1", "--weight", "82kg",
        "--protocol", protocol, "--yes",
    )  # fmt: skip
    match = re.search(r"programmed, session (\S+)", out)
    assert match, out
    if IS_ROOT:
        assert accounts.nurse2 is not None
        s.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        s.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    # The pump cannot prime over Modbus (the profile says priming = false): the line is
    # primed by hand, and the nurse says so at the start.
    s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    # Without a prime the kernel's start check refuses, until the nurse says it was by hand.
    refused = s.pumpctl("start", "chair-1")
    assert refused.returncode != 0, refused.stdout
    s.ok("start", "chair-1", "--primed-by-hand")
    s.wait_state("chair-1", ["INFUSING"], timeout_s=60)
    return match.group(1)


def test_a_session_over_a_dulco_flex_pump(accounts: Accounts, tmp_path: Path) -> None:
    # The short test protocol: the standard's 150 mL/h, so the same overshoot per wall
    # second at x40 as a 40 min session, to a 20 mL volume.
    s = _stack(accounts, library_with_short_protocol(tmp_path / "protocols"))
    try:
        pumps = json.loads(s.ok("pumps", "--json"))
        assert [(p["pump_id"], p["transport"]) for p in pumps] == [("chair-1", "modbus-rtu")]
        forced = s.pump()
        assert forced["power_up"] == 0  # pumpd forced "always off" at connect
        assert forced["run"] is False

        session_id = _programmed_and_started(s, accounts, SHORT_PROTOCOL)
        view = s.wait_state("chair-1", ["OBSERVATION"])
        assert view["session_id"] == session_id
        truth = s.pump()
        assert truth["motor_running"] is False
        # Stopped by the driver within a poll of the volume (no pump-side VTBI).
        assert 20_000 <= float(truth["deletable_ul"]) <= 21_000, truth  # type: ignore[arg-type]
        assert abs(view["delivered_ul"] - float(truth["deletable_ul"])) <= 200, (view, truth)  # type: ignore[arg-type]
        assert truth["restarts_by_itself"] == 0

        assert s.stop_daemon() == 0
        verify = s.audit("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    except BaseException:
        print(s.daemon_log(20_000))
        raise
    finally:
        s.close()


def test_a_fault_stops_it_and_a_modbus_timeout_never_restarts_it(accounts: Accounts) -> None:
    s = _stack(accounts)
    try:
        _programmed_and_started(s, accounts)
        # The link goes quiet for three of the pump's timeouts: the pump stops by itself.
        s.sim_request("dulco-fault", unit=UNIT, fault="no-answer", on=True)
        deadline = time.monotonic() + 30
        while not s.pump()["timed_out"]:
            assert time.monotonic() < deadline, s.pump()
            time.sleep(0.2)
        time.sleep(1.0)
        s.sim_request("dulco-fault", unit=UNIT, fault="no-answer", on=False)
        # Polling resumes; the pump would start again on the first request unless that
        # request is the stop. Watch it for a while: it never runs again by itself.
        view = s.wait_state("chair-1", ["ALARM", "STOPPED"], timeout_s=60)
        # The silence is the session's alarm (the pump's own comm-loss flag, or the kernel's
        # loss of sight of the pump, whichever a loaded machine lets come first).
        assert any("comm" in a["code"] for a in view["alarms"]), view
        for _ in range(10):
            pump = s.pump()
            assert pump["motor_running"] is False, pump
            assert pump["restarts_by_itself"] == 0, pump
            time.sleep(0.3)
        assert pump["run"] is False
        assert view["session_state"] != "INFUSING"
        log = s.sim_request("dulco-log", unit=UNIT)["records"]
        assert isinstance(log, list)
        # After the silence, the first thing pumpd wrote was start/stop = stop.
        assert any(r["address"] == 1200 and r["words"] == [0] for r in log)

        # An error at the pump (its flow monitor) is an alarm pumpd acts on.
        s.sim_request("dulco-fault", unit=UNIT, fault="metering-monitor", on=True)
        deadline = time.monotonic() + 30
        while "occlusion_downstream" not in json.dumps(s.status("chair-1")["alarms"]):
            assert time.monotonic() < deadline, s.status("chair-1")
            time.sleep(0.3)
        assert s.pump()["motor_running"] is False
    except BaseException:
        print(s.daemon_log(20_000))
        raise
    finally:
        s.close()

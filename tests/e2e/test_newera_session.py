"""A supervised session over a New Era syringe pump, through real processes.

pumpctl → pumpd's socket → the New Era driver → a pseudo-terminal → pumpsim's New Era
pumps (Safe mode, CRC, SAF watchdog in wall seconds while delivery runs at time scale).
A bag protocol refused for the syringe's capacity; then the syringe protocol: program,
double-check, a prime the pump bounds itself, start, the infusion to its volume (the
pump's own stop at VOL, pumpd's STOP behind it, no pump fault); the simulator's own
counter must match the plan, and the audit chain must verify. (What the pump declares and
the views show: tests/e2e/test_capabilities.py, without a session.)
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import pytest

from .conftest import IS_ROOT, Accounts
from .stack import BIN, PIN, Stack, StackError, add_staff

PROTOCOL = "ketamine-trd-syringe"
# A whole 40 min session at x120 and its audit read back: minutes on a loaded 2-core
# machine, beyond the suite's 120 s per test.
pytestmark = pytest.mark.timeout(400)


@dataclass
class NewEraStack(Stack):
    """chair-1 is a New Era pump at address 1 on the simulator's New Era line."""

    @property
    def newera_link(self) -> str:
        return str(self.workdir / "newera")

    def start_sim(self) -> None:
        args = ["--tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"]
        args += ["--time-scale", str(self.time_scale), "--newera-link", self.newera_link]
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
                'transport = "newera-serial"',
                f'device = "{self.newera_link}"',
                "baudrate = 19200",
                "address = 1",
                'syringe = "bd-plastic-60ml"',
                f"heartbeat_timeout_s = {self.heartbeat_timeout_s}",
            ]
        )
        self.config_path.write_text(head + pump + "\n", encoding="utf-8")


def test_a_session_over_a_new_era_pump(accounts: Accounts) -> None:
    s = NewEraStack(time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group)
    try:
        s.start_sim()
        s.write_config()
        s.start_daemon()
        s.default_user = accounts.nurse
        run_session(s, accounts)
    except BaseException:
        print(s.daemon_log(20_000))  # shown by pytest on failure
        raise
    finally:
        s.close()


def run_session(s: Stack, accounts: Accounts) -> None:
    add_staff(s, accounts.admin)
    pumps = json.loads(s.ok("pumps", "--json"))
    assert [(p["pump_id"], p["transport"]) for p in pumps] == [("chair-1", "newera-serial")]

    untouched = s.sim_request("newera-status", address=1)["status"]
    refused = s.pumpctl(
        "program", "chair-1", "--patient", "P-NE-BAG", "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    # A 100 mL bag protocol and its 15 mL prime do not fit the 60 mL syringe: refused
    # before anything reaches the pump or the session.
    assert refused.returncode == 3, refused.stderr
    assert "syringe.vtbi_above_capacity" in refused.stderr
    assert "need 115 mL, more than the 60 mL the bd-plastic-60ml syringe holds" in " ".join(
        refused.stderr.split()
    )
    assert s.status("chair-1")["session_state"] is None
    assert s.sim_request("newera-status", address=1)["status"] == untouched

    out = s.ok(
        "program", "chair-1", "--patient", "P-NE-1", "--weight", "82kg",
        "--protocol", PROTOCOL, "--yes",
    )  # fmt: skip
    match = re.search(r"programmed, session (\S+)", out)
    assert match, out
    session_id = match.group(1)
    if IS_ROOT:
        assert accounts.nurse2 is not None
        s.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        s.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip

    s.ok("prime", "chair-1", "--line-disconnected")
    view = s.wait_state("chair-1", ["PRIMED"])
    primed = s.sim_request("newera-status", address=1)["status"]
    assert abs(primed["infused_ul"] - 2_000) <= 20, primed  # the pump stopped the prime

    s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    s.ok("start", "chair-1")
    view = s.wait_state("chair-1", ["INFUSING"], timeout_s=40)
    assert view["session_id"] == session_id
    assert view["vtbi_ul"] == 41_000  # 0.5 mg/kg x 82 kg at 1 mg/mL
    view = s.wait_state("chair-1", ["OBSERVATION"])
    assert abs(view["delivered_ul"] - 41_000) <= 200, view

    truth = s.sim_request("newera-status", address=1)["status"]
    # The prime was cleared from the pump's counter at start: the plan, nothing more.
    assert abs(truth["infused_ul"] - 41_000) <= 200, truth
    assert truth["state"] == "S"
    assert truth["safe_timeout_s"] == s.heartbeat_timeout_s  # SAF n, never × time_scale

    assert s.stop_daemon() == 0
    sessions = s.audit("sessions", "--json")
    assert sessions.returncode == 0, sessions.stderr
    assert session_id in sessions.stdout
    verify = s.audit("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The pump stopped itself at VOL; pumpd's STOP at the plan's volume came behind it,
    # and a pump with its own stop was not found running past it (no vtbi_ignored alarm).
    every = s.audit("events", "--json")
    assert every.returncode == 0, every.stderr
    recorded = json.loads(every.stdout)
    stops = [
        e
        for e in recorded
        if e["event_type"] == "pump.command.requested" and e["payload"]["command"] == "stop"
    ]
    assert [e["payload"]["reason_codes"] for e in stops] == [["infusion.complete"]]
    assert all(e["actor_kind"] == "daemon" for e in stops)
    raised = [e["payload"].get("alarm_code") for e in recorded if e["event_type"] == "alarm.raised"]
    assert "pump.vtbi_ignored" not in raised

"""Soft-limit overrides through the real processes: the programming nurse gives the
reason, a second nurse approves it at the double-check; a later adjustment with soft
verdicts and a soft start check wait for `pumpctl approve`; nothing reaches the pump
before the approval; the audit names both people, each verdict with value and limit.

And what must not get through: an order whose rate is above the pump's reported maximum
is refused before anything is written to the pump.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pumpd

from .conftest import IS_ROOT, Accounts
from .stack import BIN, PIN, Stack, add_staff, running_stack

SHIPPED = Path(pumpd.__file__).resolve().parent.parent / "protocols"

REASON = "140 kg patient, default escalation dose agreed with Dr Rao"
PROGRAM = [
    "program", "chair-1", "--patient", "P-OVR", "--weight", "140kg",
    "--protocol", "ketamine-trd-escalation", "--override-reason", REASON, "--yes",
]  # fmt: skip


def _second(stack: Stack, accounts: Accounts, *args: str) -> str:
    """A command by the second nurse: another OS account (root), else a PIN witness."""
    if IS_ROOT:
        return stack.ok(*args, user=accounts.nurse2)
    return stack.ok(*args, "--witness", "N002", "--pin-stdin", stdin=PIN["N002"] + "\n")


def _events(stack: Stack, kind: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30  # the audit writer is asynchronous: a bound, no speed
    found: list[dict[str, Any]] = []
    while len(found) < count and time.monotonic() < deadline:
        found = json.loads(stack.audit("events", "--type", kind, "--json").stdout)
        time.sleep(0.3)
    return found


START = 1  # GIP-MB1 command codes (docs/gip-mb1.md)


def _commands(stack: Stack, unit: int = 1) -> list[tuple[int, int]]:
    """(cmd_seq, command) of every command the simulated pump took."""
    return [(r["cmd_seq"], r["command"]) for r in stack.sim_log(unit)]


def test_an_override_is_given_by_one_nurse_and_approved_by_another(
    stack: Stack, accounts: Accounts
) -> None:
    add_staff(stack, accounts.admin)
    nurse = accounts.nurse or "this account"
    out = stack.ok(*PROGRAM)
    assert "AWAITING APPROVAL" in out
    assert "--approve-override" in out
    view = stack.status("chair-1")
    assert view["session_state"] == "PROGRAMMED"
    waiting = view["awaiting_approval"]
    assert waiting["what"] == "order"
    assert waiting["reason"] == REASON
    figures = {v["code"]: (v["value"], v["limit"], v["unit"]) for v in waiting["verdicts"]}
    assert figures == {
        "weight.above_soft_max": ("140", "130", "kg"),
        "total_dose.above_soft_max": ("105", "100", "mg"),
    }

    # A double-check that does not approve the override is refused, naming the verdicts.
    if IS_ROOT:
        plain = stack.pumpctl("confirm", "chair-1", "--weight", "140kg", user=accounts.nurse2)
    else:
        plain = stack.pumpctl(
            "confirm", "chair-1", "--weight", "140kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    assert plain.returncode == 3, plain.stderr
    assert "override.approval_missing" in plain.stderr
    assert "weight.above_soft_max (140 kg, limit 130 kg)" in plain.stderr
    assert "total_dose.above_soft_max (105 mg, limit 100 mg)" in plain.stderr
    # The nurse who gave the reason cannot approve it.
    itself = stack.pumpctl("confirm", "chair-1", "--weight", "140kg", "--approve-override")
    assert itself.returncode == 3, itself.stderr
    assert stack.status("chair-1")["session_state"] == "PROGRAMMED"

    shown = _second(
        stack, accounts, "confirm", "chair-1", "--weight", "140kg", "--approve-override"
    )
    assert "weight.above_soft_max: 140 kg (limit 130 kg)" in shown
    assert "total_dose.above_soft_max: 105 mg (limit 100 mg)" in shown
    assert "override approved by" in shown
    view = stack.status("chair-1")
    assert view["session_state"] == "VERIFIED"
    assert view["awaiting_approval"] is None
    [granted] = _events(stack, "override.granted", 1)
    second = accounts.nurse2 if IS_ROOT else "staff:N002"
    payload = granted["payload"]
    assert (payload["approved_by"], payload["witness"], payload["reason"]) == (
        nurse if IS_ROOT else payload["approved_by"],
        second,
        REASON,
    )
    assert sorted(payload["verdict_codes"]) == [
        "total_dose.above_soft_max",
        "weight.above_soft_max",
    ]
    assert {(v["code"], v["value"], v["limit"]) for v in payload["verdicts"]} == {
        ("weight.above_soft_max", "140", "130"),
        ("total_dose.above_soft_max", "105", "100"),
    }

    # Through to the infusion; an adjustment's soft verdicts wait for a second nurse.
    stack.ok("prime", "chair-1", "--line-disconnected")
    stack.wait_state("chair-1", ["PRIMED"])
    stack.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    stack.ok("start", "chair-1")
    stack.wait_state("chair-1", ["INFUSING"])
    sent = _commands(stack)
    out = stack.ok(
        "adjust", "chair-1", "--duration", "50min", "--reason", "dissociation",
        "--override-reason", "same patient, slower per Dr Rao", "--yes",
    )  # fmt: skip
    assert "nothing changes at the pump before approval" in out
    assert "pumpctl approve chair-1" in out
    view = stack.status("chair-1")
    assert view["awaiting_approval"]["what"] == "adjustment"
    assert view["rate_ml_h"] == "150"  # the old plan still runs
    assert _commands(stack) == sent  # nothing written to the pump
    itself = stack.pumpctl("approve", "chair-1")
    assert itself.returncode == 3, itself.stderr
    approved = _second(stack, accounts, "approve", "chair-1")
    assert "weight.above_soft_max: 140 kg (limit 130 kg)" in approved
    view = stack.wait_state("chair-1", ["INFUSING"])
    deadline = time.monotonic() + 30
    while view["rate_ml_h"] != "120" and time.monotonic() < deadline:
        time.sleep(0.3)
        view = stack.status("chair-1")
    assert view["rate_ml_h"] == "120", view
    assert len(_events(stack, "override.granted", 2)) == 2
    nothing = stack.pumpctl("approve", "chair-1")
    assert nothing.returncode == 3
    assert "nothing on chair-1 awaits" in nothing.stderr
    stack.ok("stop", "chair-1", "--reason", "end of test")


def test_a_low_battery_start_waits_for_the_second_nurse(stack: Stack, accounts: Accounts) -> None:
    add_staff(stack, accounts.admin)
    stack.ok(
        "program", "chair-2", "--patient", "P-BAT", "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    _second(stack, accounts, "confirm", "chair-2", "--weight", "82kg")
    stack.ok("prime", "chair-2", "--line-disconnected")
    stack.wait_state("chair-2", ["PRIMED"])
    stack.ok("vitals", "chair-2", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    stack.sim_request("fault", unit=2, fault="low-battery", on=True)
    stack.wait_state("chair-2", ["ALARM"])  # the kernel's low-priority battery alarm
    stack.ok("ack", "chair-2", "--note", "no free mains socket at chair 2")
    time.sleep(1.0)  # ten polls: acknowledged while the battery stays low, it stays a notice
    view = stack.status("chair-2")
    assert view["session_state"] == "VERIFIED", view  # no start was sent; the prime stands
    assert [a["code"] for a in view["alarms"]] == ["tick.pump.battery_low"]
    refused = stack.pumpctl("start", "chair-2")
    assert refused.returncode == 3
    assert "start.pump.battery_low" in refused.stderr
    held = stack.ok("start", "chair-2", "--override-reason", "mains socket at chair 2 broken")
    assert "start held" in held
    assert "pumpctl approve chair-2" in held
    assert stack.status("chair-2")["session_state"] == "VERIFIED"
    assert START not in [c for _, c in _commands(stack, 2)]
    _second(stack, accounts, "approve", "chair-2")
    stack.wait_state("chair-2", ["INFUSING"])
    [granted] = _events(stack, "override.granted", 1)
    assert granted["payload"]["verdict_codes"] == ["start.pump.battery_low"]
    stack.ok("stop", "chair-2", "--reason", "end of test")


def test_an_order_above_the_pumps_maximum_rate_is_refused(accounts: Accounts) -> None:
    with running_stack(
        time_scale=120,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        pumps=1,
        max_rate="120.00",
    ) as stack:
        stack.default_user = accounts.nurse
        deadline = time.monotonic() + 10
        while not stack.status("chair-1")["reachable"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        refused = stack.pumpctl(
            "program", "chair-1", "--patient", "P-MAX", "--weight", "82kg",
            "--protocol", "ketamine-trd-standard", "--yes",
        )  # fmt: skip
        assert refused.returncode == 3, refused.stderr
        assert "pump.rate_above_max" in refused.stderr
        assert "150 mL/h is above this pump's maximum of 120 mL/h" in refused.stderr
        assert stack.status("chair-1")["session_state"] is None
        assert _commands(stack) == []


def test_a_draft_protocol_is_refused_for_a_live_patient(accounts: Accounts, tmp_path: Path) -> None:
    """simulation = false, a library whose standard protocol is not in released.sha256:
    `pumpctl program` is refused (exit 3) naming the protocol and its status, nothing is
    programmed and `pumpd --check` notes the draft."""
    drafts = tmp_path / "protocols"
    drafts.mkdir()
    shutil.copy(SHIPPED / "ketamine-trd-standard.v1.toml", drafts)
    drafts.chmod(0o755)
    with running_stack(
        time_scale=1,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        pumps=1,
        protocols=drafts,
        simulation=False,
    ) as stack:
        stack.default_user = accounts.nurse
        refused = stack.pumpctl(
            "program", "chair-1", "--patient", "P-DRAFT", "--weight", "82kg",
            "--protocol", "ketamine-trd-standard", "--yes",
        )  # fmt: skip
        assert refused.returncode == 3, refused.stderr
        assert "ketamine-trd-standard@1 is a draft" in refused.stderr
        assert "protocol.not_released" in refused.stderr
        assert stack.status("chair-1")["session_state"] is None
        check = subprocess.run(
            [str(BIN / "pumpd"), "--config", str(stack.config_path), "--check"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "note: 1 draft protocol(s) will be refused for patients" in check.stdout

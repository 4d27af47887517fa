"""An interrupted infusion continued, or ended, through the real pumpd, pumpctl and pumpsim.

chair-1's line is kinked (a downstream occlusion): pumpd stops the pump and latches the
alarm. The nurse clears the line, presses the pump's own alarm key (`pumpsim
press-alarm-key`), acknowledges, records fresh vitals and continues with `pumpctl resume
--reason`: the kernel allows it, the pump is programmed for the remainder alone and the
same session runs to completion. A stop that was about delivery accuracy is not continued;
a nurse's own stop can be, or ended with `pumpctl end`. Every answer names the patient.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpd.cli.pumpctl import EXIT_REFUSED

from .conftest import IS_ROOT, Accounts
from .stack import (
    BIN,
    PIN,
    SHORT_PROTOCOL,
    Stack,
    add_staff,
    library_with_short_protocol,
    running_stack,
)

TIME_SCALE = 60  # the 15 min pause limit is 15 s of real time


@pytest.fixture
def slow_stack(accounts: Accounts, tmp_path: Path) -> Iterator[Stack]:
    """x60, with the short test protocol (the standard's rules and 150 mL/h, 20 mL over
    8 min: 8 s of infusion)."""
    with running_stack(
        time_scale=TIME_SCALE,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        protocols=library_with_short_protocol(tmp_path / "protocols"),
    ) as s:
        s.default_user = accounts.nurse
        yield s


@pytest.fixture
def unhurried_stack(accounts: Accounts) -> Iterator[Stack]:
    """x10, the standard protocol: its 15 min pause limit is 90 s of real time, so a
    paused infusion is still paused after a few nurse commands on a loaded machine (at
    x120 it ends itself after 7.5 s, which a loaded CI machine's pumpctl calls can take)."""
    with running_stack(
        time_scale=10, roles=accounts.roles, socket_group=accounts.socket_group
    ) as s:
        s.default_user = accounts.nurse
        yield s


def start(
    stack: Stack, accounts: Accounts, patient: str, protocol: str = "ketamine-trd-standard"
) -> None:
    add_staff(stack, accounts.admin)
    stack.ok(
        "program", "chair-1", "--patient", patient, "--weight", "82kg",
        "--protocol", protocol, "--yes",
    )  # fmt: skip
    if IS_ROOT:
        stack.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        stack.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    stack.ok("prime", "chair-1", "--line-disconnected")
    stack.wait_state("chair-1", ["PRIMED"])
    stack.ok("vitals", "chair-1", "--bp", "120/80", "--hr", "70", "--spo2", "98")
    stack.ok("start", "chair-1")
    stack.wait_state("chair-1", ["INFUSING"])


def pumpsim(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    host, port = stack.sim_control
    return subprocess.run(
        [str(BIN / "pumpsim"), args[0], "--control", f"{host}:{port}", "--unit", "1", *args[1:]],
        capture_output=True,
        text=True,
        timeout=30,
    )


def events(stack: Stack, kind: str) -> list[dict[str, Any]]:
    out = stack.audit("events", "--json", "--type", kind)
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def test_a_cleared_occlusion_is_continued_to_completion(
    slow_stack: Stack, accounts: Accounts
) -> None:
    stack = slow_stack
    start(stack, accounts, "P-0043", SHORT_PROTOCOL)
    stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=True)
    stack.wait_state("chair-1", ["ALARM"])
    refused = stack.pumpctl("resume", "chair-1", "--reason", "line straightened")
    assert refused.returncode == EXIT_REFUSED, refused.stderr  # ALARM: acknowledge first

    assert pumpsim(stack, "fault", "occlusion-downstream", "off").returncode == 0
    key = pumpsim(stack, "press-alarm-key")
    assert key.returncode == 0, key.stderr
    assert json.loads(key.stdout)["state"] == "IDLE"
    stack.ok("ack", "chair-1", "--note", "kinked line straightened")
    assert stack.status("chair-1")["session_state"] == "STOPPED"
    stack.ok("vitals", "chair-1", "--bp", "122/80", "--hr", "72", "--spo2", "98")
    reply = stack.ok("resume", "chair-1", "--reason", "kinked line straightened at the pump")
    assert reply.startswith("chair-1 (P-0043): continued"), reply
    view = stack.wait_state("chair-1", ["INFUSING"])
    assert view["session_id"]
    assert stack.sim_status(1)["state"] == "INFUSING"

    stack.wait_state("chair-1", ["OBSERVATION"], timeout_s=120)
    pump = stack.sim_status(1)
    # never more than the plan: 20 mL, the pump's own counter (it also counts the prime
    # separately) within the kernel's overrun allowance
    assert pump["volume_infused_ul"] <= 20_000 + 200, pump

    continued = events(stack, "session.continued")
    assert len(continued) == 1, continued
    payload = continued[0]["payload"]
    assert payload["reason"] == "kinked line straightened at the pump"
    assert payload["rule"] == "continue"
    assert payload["interrupted_by"] == ["tick.pump.alarm.occlusion_downstream"]
    assert payload["remaining_volume_ul"] + payload["delivered_volume_ul"] == 20_000
    assert continued[0]["session_id"] == view["session_id"]
    completed = events(stack, "infusion.completed")
    assert [e["session_id"] for e in completed] == [view["session_id"]]
    # the pump was programmed for the remainder: its VTBI is the counter at the
    # continuation plus the remaining volume (no over-infusion alarm was ever raised)
    raised = [e["payload"]["alarm_code"] for e in events(stack, "alarm.raised")]
    kernel = [c for c in raised if c.startswith("tick.")]  # not the daemon's own notices
    assert kernel == ["tick.pump.alarm.occlusion_downstream"], raised


def test_a_nurse_stop_names_the_patient_and_can_be_ended(stack: Stack, accounts: Accounts) -> None:
    from .test_signals import start_infusion

    start_infusion(stack, accounts, "P-0044")
    reply = stack.ok("stop", "chair-1", "--reason", "wrong chair?")
    assert reply.startswith("chair-1 (P-0044): stopped at "), reply
    assert " of 100 mL" in reply, reply
    missing = stack.pumpctl("resume", "chair-1")
    assert missing.returncode == EXIT_REFUSED, missing.stderr
    assert "continue.reason_missing" in missing.stderr
    ended = stack.ok("end", "chair-1", "--reason", "patient asked not to go on")
    assert ended.startswith("chair-1 (P-0044): ended at "), ended
    assert stack.status("chair-1")["session_state"] == "OBSERVATION"
    [end] = events(stack, "session.ended")
    assert end["payload"]["reason"] == "patient asked not to go on"
    assert end["payload"]["interrupted_by"] == ["nurse.stop"]

    # Discharge: the time and vitals gates come before any checklist question.
    early = stack.pumpctl("discharge", "chair-1")  # no --confirm-all, nothing on stdin
    assert early.returncode == EXIT_REFUSED, early.stderr
    assert "discharge.observation_too_short" in early.stderr
    assert "discharge.vitals_missing" in early.stderr
    assert "escort" not in early.stdout  # no question was asked
    reply = stack.ok("vitals", "chair-1", "--bp", "124/80", "--hr", "125", "--spo2", "97")
    # the kernel's verdict on the entry, in the nurse's terms
    assert "Heart rate 125 bpm is above the maximum of 120 bpm of the pause band" in reply, reply
    assert "see the patient" in reply, reply
    stack.wait_state("chair-1", ["ALARM"])  # outside the pause band while observed
    stack.ok("ack", "chair-1", "--note", "patient anxious, seen")
    time.sleep(1.0)  # several ticks: the acknowledged reading does not alarm again
    view = stack.status("chair-1")
    assert view["session_state"] == "OBSERVATION", view
    high = stack.pumpctl("discharge", "chair-1", "--confirm-all")
    assert high.returncode == EXIT_REFUSED, high.stderr
    assert "discharge.vitals_out_of_band" in high.stderr
    assert "heart rate 125 bpm" in high.stderr
    minimum_s = 30 * 60 / stack.time_scale + 0.5
    time.sleep(minimum_s)  # the observation time (and the 15 min of the vitals) pass
    stale = stack.pumpctl("discharge", "chair-1", "--confirm-all")
    assert stale.returncode == EXIT_REFUSED, stale.stderr
    assert "discharge.vitals_stale" in stale.stderr
    assert "discharge.observation_too_short" not in stale.stderr
    fine = stack.ok("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
    assert "Within the protocol's bands. (vitals.within_range)" in fine, fine
    done = stack.ok("discharge", "chair-1", "--confirm-all")
    assert "vital signs within the pause band (computed from the recorded vital signs)" in done
    assert stack.status("chair-1")["session_state"] == "DISCHARGED"

    # The same patient the same day: the course rules refuse at programming, before any
    # drug is primed (the prior session read from the audit log), and nothing is recorded.
    again = stack.pumpctl(
        "program", "chair-2", "--patient", "P-0044", "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    assert again.returncode == EXIT_REFUSED, again.stderr
    assert "course.interval.too_short" in again.stderr
    assert stack.status("chair-2")["session_state"] is None


def test_an_over_infusion_is_not_continued(unhurried_stack: Stack, accounts: Accounts) -> None:
    from .test_signals import start_infusion

    stack = unhurried_stack
    start_infusion(stack, accounts, "P-0045")
    stack.sim_request("fault", unit=1, fault="runaway", on=True, factor="3")
    stack.wait_state("chair-1", ["ALARM"])
    stack.sim_request("fault", unit=1, fault="runaway", on=False)
    # the kernel paused it for the rate mismatch, or stopped it for the over-infusion
    # (whichever it saw first, and the over-infusion may follow the pause); neither is
    # resumed nor continued: the stopped session is in observation by itself
    # (tests/e2e/test_delivery_ended.py)
    view = stack.wait_halted("chair-1")
    assert view["session_state"] == "ALARM", view
    codes = {a["code"] for a in view["alarms"]}
    assert codes, view
    assert codes <= {"tick.rate.mismatch", "tick.volume.over_infusion"}, codes
    stack.ok("ack", "chair-1", "--note", "pump taken out of service")
    stack.ok("vitals", "chair-1", "--bp", "122/80", "--hr", "72", "--spo2", "98")
    before = stack.status("chair-1")["session_state"]
    assert before in ("PAUSED", "OBSERVATION"), before
    refused = stack.pumpctl("resume", "chair-1", "--reason", "looks fine now")
    assert refused.returncode == EXIT_REFUSED, refused.stderr
    if before == "PAUSED":
        assert "continue.not_continuable" in refused.stderr
    assert stack.status("chair-1")["session_state"] == before
    assert stack.sim_status(1)["state"] in ("IDLE", "PAUSED")

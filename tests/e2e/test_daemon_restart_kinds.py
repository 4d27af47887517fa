"""A restart of pumpd mid-infusion on a DULCO flex and on a New Era pump, through real processes.

Neither pump keeps an uptime. pumpd judges a restart of the pump on what the pump itself
proves: the DULCO flex's switch-on counter (register 1026, kept in the checkpoint), the New
Era's power-on reset alarm (``A?R``, sent to the next request, whoever sends it). pumpd
SIGKILLed and started again is none of these: the new pumpd rebuilds the same session,
takes the pump's counter as it is (no recount), raises no "pump restarted", and the nurse
takes the session on from its alarm (the pump's own watchdog stopped it meanwhile, as on a
GIP-MB1). A real power cycle while pumpd is down is still caught (``pump.state_lost``).
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from .conftest import IS_ROOT, Accounts
from .stack import PIN, Stack
from .test_dulco_session import UNIT as DULCO_UNIT
from .test_dulco_session import DulcoStack, _programmed_and_started
from .test_newera_session import NewEraStack

pytestmark = pytest.mark.timeout(400)

AFTER_RESTART = ["ALARM", "STOPPED", "INFUSING", "PAUSED", "OBSERVATION"]


def _events(s: Stack, kind: str) -> list[dict[str, Any]]:
    out = s.audit("events", "--json", "--type", kind)
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def _raised(s: Stack) -> list[str]:
    return [str(e["payload"]["alarm_code"]) for e in _events(s, "alarm.raised")]


def _newera_started(s: Stack, accounts: Accounts) -> None:
    s.ok(
        "program", "chair-1", "--patient", "P-NE-R", "--weight", "82kg",
        "--protocol", "ketamine-trd-syringe", "--yes",
    )  # fmt: skip
    if IS_ROOT:
        assert accounts.nurse2 is not None
        s.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
    else:
        s.ok(
            "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip
    s.ok("prime", "chair-1", "--line-disconnected")
    s.wait_state("chair-1", ["PRIMED"])
    s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    s.ok("start", "chair-1")
    s.wait_state("chair-1", ["INFUSING"], timeout_s=40)


def _dulco_truth_ul(s: Stack) -> float:
    return float(s.sim_request("dulco-status", unit=DULCO_UNIT)["status"]["deletable_ul"])


def _newera_truth_ul(s: Stack) -> float:
    return float(s.sim_request("newera-status", address=1)["status"]["infused_ul"])


def _stack(kind: str, accounts: Accounts) -> Stack:
    # A slow scale: the infusion must still run when pumpd is killed and started again.
    cls = DulcoStack if kind == "dulco" else NewEraStack
    s = cls(time_scale=20, roles=accounts.roles, socket_group=accounts.socket_group)
    s.start_sim()
    s.write_config()
    s.start_daemon()
    s.default_user = accounts.nurse
    from .stack import add_staff

    add_staff(s, accounts.admin)
    return s


def _power_cycle(s: Stack, kind: str) -> None:
    if kind == "dulco":
        s.sim_request("dulco-fault", unit=DULCO_UNIT, fault="power-loss", on=True)
    else:
        s.sim_request("newera-fault", address=1, fault="power-loss", on=True)


def _killed_and_restarted(kind: str, accounts: Accounts, *, power_cycle: bool) -> Stack:
    s = _stack(kind, accounts)
    try:
        if kind == "dulco":
            _programmed_and_started(s, accounts)
        else:
            _newera_started(s, accounts)
        truth = _dulco_truth_ul if kind == "dulco" else _newera_truth_ul
        deadline = time.monotonic() + 30
        while truth(s) < 2_000:  # delivered enough that a recount would show
            assert time.monotonic() < deadline, "the pump did not deliver"
            time.sleep(0.2)
        s.ok("status", "chair-1", "--json")
        time.sleep(1.5)  # a periodic checkpoint with the pump's figures is on record
        before = s.status("chair-1")
        assert s.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(0.5)
        if power_cycle:
            _power_cycle(s, kind)
        s.start_daemon()
        view = s.wait_state("chair-1", AFTER_RESTART, timeout_s=60)
        assert view["session_id"] == before["session_id"]
        return s
    except BaseException:
        print(s.daemon_log(20_000))
        s.close()
        raise


@pytest.mark.parametrize("kind", ["dulco", "newera"])
def test_a_pumpd_restart_mid_infusion_is_no_pump_restart(kind: str, accounts: Accounts) -> None:
    s = _killed_and_restarted(kind, accounts, power_cycle=False)
    try:
        time.sleep(1.0)  # a few polls and ticks of the new pumpd
        recovered = _events(s, "daemon.recovered")
        assert recovered, "the new pumpd did not recover the session"
        assert "re-anchored" in json.dumps(recovered) or "carried" in json.dumps(recovered)
        raised = _raised(s)
        assert "pump.state_lost" not in raised, raised
        assert "tick.pump.rebooted" not in raised, raised
        # The counter the pump kept is this session's volume once, not counted again.
        view = s.status("chair-1")
        truth = _dulco_truth_ul(s) if kind == "dulco" else _newera_truth_ul(s)
        assert abs(view["delivered_ul"] - truth) <= 300, (view, truth)
        # The nurse takes the session on: the pump's own stop (its watchdog) is
        # acknowledged, and the session leaves ALARM, as on a GIP-MB1.
        if view["session_state"] == "ALARM":
            if kind == "dulco":
                s.sim_request("dulco-panel-reset", unit=DULCO_UNIT)
                time.sleep(0.5)
            s.ok("ack", "chair-1", "--note", "pumpd restarted; line checked")
            view = s.wait_state("chair-1", ["STOPPED", "PAUSED", "OBSERVATION"], timeout_s=30)
        assert view["session_state"] != "ALARM", view
        assert _raised(s).count("pump.state_lost") == 0
        assert s.stop_daemon() == 0
        verify = s.audit("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    except BaseException:
        print(s.daemon_log(20_000))
        raise
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["dulco", "newera"])
def test_a_pump_power_cycled_while_pumpd_was_down_is_caught(kind: str, accounts: Accounts) -> None:
    s = _killed_and_restarted(kind, accounts, power_cycle=True)
    try:
        deadline = time.monotonic() + 30
        while "pump.state_lost" not in (raised := _raised(s)):
            assert time.monotonic() < deadline, raised
            time.sleep(0.3)
        assert s.status("chair-1")["session_state"] == "ALARM"
    except BaseException:
        print(s.daemon_log(20_000))
        raise
    finally:
        s.close()

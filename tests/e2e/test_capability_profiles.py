"""What a pump cannot do, pumpd does or refuses: through real processes.

pumpctl → pumpd → the Modbus driver → pumpsim's GIP-MB1 pumps, with a site profile file
(``[[pump]] profile = "/…/x.toml"``) that has GIP-MB1's registers and declares less:

- no volume stop of its own (a dosing pump, or a gateway): the simulated pump is made to
  behave so (its volume register set to the maximum once it runs), and pumpd's stop at the
  plan's volume is the one that ends the infusion, with no pump fault raised;
- no watchdog of its own, in live use (``simulation = false``): the daemon refuses to
  start until the pump's ``accept_no_pump_watchdog = true``, and then every program on it
  writes ``pump.risk.accepted``.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from .conftest import IS_ROOT, Accounts
from .stack import (
    PIN,
    SHORT_PROTOCOL,
    Stack,
    StackError,
    add_staff,
    library_with_short_protocol,
)

PROTOCOL = "ketamine-trd-standard"
SHIPPED_WATCHDOG = 'watchdog = { min_s = 1, max_s = 65535, set_by = "pumpd" }'
SHIPPED_VTBI_STOP = "pump_vtbi_stop = true"


@dataclass
class ProfileStack(Stack):
    """Every pump reads its map from ``profile_text`` written to a site profile file."""

    profile_text: str = ""
    pump_extra: str = ""

    def write_config(self) -> None:
        profile = self.workdir / "site-profile.toml"
        profile.write_text(self.profile_text, encoding="utf-8")
        profile.chmod(0o644)
        super().write_config()
        text = self.config_path.read_text(encoding="utf-8")
        text = text.replace("\nunit = ", f'\nprofile = "{profile}"\n{self.pump_extra}unit = ')
        self.config_path.write_text(text, encoding="utf-8")


def gip_mb1_with(old: str, new: str) -> str:
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    assert old in text
    return text.replace(old, new)


def events(s: Stack, event_type: str) -> list[dict[str, Any]]:
    out = s.audit("events", "--type", event_type, "--json")
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def program_and_confirm(
    s: Stack, accounts: Accounts, patient: str, protocol: str = PROTOCOL
) -> str:
    out = s.ok(
        "program", "chair-1", "--patient", patient, "--weight", "82kg",
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
    return match.group(1)


async def forget_the_volume_target(address: str, unit: int) -> None:
    """The pump holds no volume target of its own: its VTBI register at the maximum."""
    host, port = address.rsplit(":", 1)
    client = AsyncModbusTcpClient(host, port=int(port))
    await client.connect()
    try:
        reply = await client.write_registers(102, [0xFFFF, 0xFFFF], device_id=unit)
        assert not reply.isError(), reply
    finally:
        client.close()


def test_pumpd_stops_a_pump_without_its_own_volume_stop_at_the_plan(
    accounts: Accounts, tmp_path: Path
) -> None:
    # The short test protocol (20 mL at 150 mL/h) at x60: 8 s of infusion, time enough to
    # take the volume target away from the pump before it could have stopped by itself.
    s = ProfileStack(
        time_scale=60,
        pumps=1,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        protocols=library_with_short_protocol(tmp_path / "protocols"),
        profile_text=gip_mb1_with(SHIPPED_VTBI_STOP, "pump_vtbi_stop = false"),
    )
    try:
        s.start_sim()
        s.write_config()
        s.start_daemon()
        s.default_user = accounts.nurse
        add_staff(s, accounts.admin)
        (pump,) = json.loads(s.ok("pumps", "--json"))
        assert pump["capabilities"]["pump_vtbi_stop"] is False
        assert "no volume stop of its own: pumpd stops it" in " ".join(s.ok("pumps").split())
        session_id = program_and_confirm(s, accounts, "P-NOVTBI", SHORT_PROTOCOL)
        s.ok("prime", "chair-1", "--line-disconnected")
        s.wait_state("chair-1", ["PRIMED"])
        s.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
        s.ok("start", "chair-1")
        s.wait_state("chair-1", ["INFUSING"], timeout_s=40)
        asyncio.run(forget_the_volume_target(s.sim_tcp, 1))
        # Still running with no target of its own: only pumpd's stop can end it now.
        running = s.sim_status(1)
        assert running["state"] == "INFUSING", running
        assert running["volume_infused_ul"] < 20_000, running
        view = s.wait_state("chair-1", ["COMPLETE", "OBSERVATION", "ALARM"], timeout_s=120)
        truth = s.sim_status(1)
        assert truth["state"] == "IDLE", truth  # stopped by pumpd, not by itself
        assert truth["volume_infused_ul"] >= 20_000
        over_ul = truth["volume_infused_ul"] - 20_000
        print(f"no pump-side VTBI, e2e: pumpd stopped the pump {over_ul} µL past the plan")
        assert s.stop_daemon() == 0
        stops = [
            e for e in events(s, "pump.command.requested") if e["payload"]["command"] == "stop"
        ]
        # pumpd's stop at the plan's volume came first (whether the kernel's volume
        # tolerance then also fired depends on the round trip, which no test times).
        assert stops[0]["payload"]["reason_codes"] == ["infusion.complete"]
        assert stops[0]["session_id"] == session_id
        raised = [e["payload"]["alarm_code"] for e in events(s, "alarm.raised")]
        assert "pump.vtbi_ignored" not in raised, (raised, view)
    except BaseException:
        print(s.daemon_log(20_000))  # shown by pytest on failure
        raise
    finally:
        s.close()


def test_live_use_of_a_pump_without_a_watchdog_needs_the_sites_acceptance(
    accounts: Accounts,
) -> None:
    s = ProfileStack(
        time_scale=1,
        pumps=1,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        simulation=False,
        profile_text=gip_mb1_with(SHIPPED_WATCHDOG, "watchdog = false"),
    )
    try:
        s.start_sim()
        s.write_config()
        with pytest.raises(StackError) as refused:
            s.start_daemon()
        assert "start-up refused" in str(refused.value)
        assert "pump[0].accept_no_pump_watchdog: chair-1: This pump has no watchdog" in str(
            refused.value
        )

        s.pump_extra = "accept_no_pump_watchdog = true\n"
        s.write_config()
        s.start_daemon()
        s.default_user = accounts.nurse
        add_staff(s, accounts.admin)
        (pump,) = json.loads(s.ok("pumps", "--json"))
        assert pump["capabilities"]["watchdog"] is None
        assert "NO WATCHDOG" in s.ok("pumps")
        session_id = program_and_confirm(s, accounts, "P-NOWD")
        assert s.stop_daemon() == 0
        (accepted,) = events(s, "pump.risk.accepted")
        assert accepted["session_id"] == session_id
        assert accepted["payload"]["reason_code"] == "pump.no_watchdog_accepted"
        assert accepted["payload"]["config_key"] == "accept_no_pump_watchdog"
    except BaseException:
        print(s.daemon_log(20_000))
        raise
    finally:
        s.close()

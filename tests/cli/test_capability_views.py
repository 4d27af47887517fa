"""What a pump cannot report is said to be so in every view, never shown as "-" or zero.

The renderers of pumpctl (pumps, status, watch) and the board's tile, from wire views built
by the daemon's own capability records.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from rich.console import Console

from pumpd.cli.live import capabilities as cli_caps
from pumpd.cli.live import render
from pumpd.drivers import NOT_REPORTED, NewEraConfig, NewEraPumpDriver, load_profile
from pumpd_board.tiles import PumpView, build_tile

# The record an NE-1000 in Safe mode reports (its driver is built, never connected).
SYRINGE = NewEraPumpDriver(
    NewEraConfig(device="/dev/null", address=0, syringe_diameter_mm=Decimal("14.5"))
).capabilities.as_dict()
GIP = load_profile("gip-mb1").capability_record.as_dict()


def _text(renderable: object, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return " ".join(console.export_text().split())


def _view(**fields: Any) -> dict[str, Any]:
    return {"pump_id": "chair-3", "reachable": True, "pump_state": "IDLE", **fields}


def test_the_client_and_the_daemon_use_the_same_words() -> None:
    assert cli_caps.NOT_REPORTED == NOT_REPORTED
    assert NOT_REPORTED == "not reported by this pump"


def test_status_says_a_syringe_pump_reports_no_pressure_and_no_battery() -> None:
    view = _view(
        pressure_downstream_mmhg=None,
        battery_percent=None,
        not_reported=["pressure_downstream_mmhg", "battery_percent"],
        capabilities=SYRINGE,
    )
    text = _text(render.pump_view(view))
    assert "line pressure not reported by this pump" in text
    assert "battery not reported by this pump" in text
    assert "0 mmHg" not in text
    assert "0 %" not in text


def test_status_shows_the_figures_of_a_pump_that_reports_them() -> None:
    view = _view(pressure_downstream_mmhg=42, battery_percent=87, not_reported=[])
    text = _text(render.pump_view(view))
    assert "line pressure 42 mmHg" in text
    assert "battery 87 %" in text
    # Reported but not known just now (the link is down): "-", not "not reported".
    unknown = _text(render.pump_view(_view(reachable=False, not_reported=[])))
    assert "line pressure -" in unknown
    assert "not reported" not in unknown


def test_a_view_from_a_daemon_without_capabilities_adds_no_rows() -> None:
    assert "line pressure" not in _text(render.pump_view(_view()))


def test_pumps_lists_each_pumps_capabilities() -> None:
    pumps = [
        {"pump_id": "chair-1", "reachable": True, "supervised": True, "capabilities": GIP},
        {"pump_id": "chair-3", "reachable": True, "supervised": True, "capabilities": SYRINGE},
        {"pump_id": "chair-9", "reachable": False, "supervised": False, "capabilities": None},
    ]
    text = _text(render.pumps_view(pumps), width=200)
    assert "chair-1: stops itself at its volume; watchdog 1-65535 s (pumpd)" in text
    assert "confirms by sequence echo" in text
    assert (
        "chair-3: stops itself at its volume; watchdog 1-255 s (pumpd); confirms by read-back"
        in text
    )
    assert "no KVO; pressure: not reported by this pump; battery: not reported by this pump" in text
    assert "detects occlusion_downstream, system_fault, comm_loss" in text
    assert "chair-9: not known until pumpd supervises it" in text


def test_a_pump_without_a_watchdog_or_volume_stop_says_so() -> None:
    bare = {**SYRINGE, "watchdog": None, "pump_vtbi_stop": False}
    text = _text(cli_caps.capability_text(bare))
    assert "no volume stop of its own: pumpd stops it" in text
    assert "NO WATCHDOG" in text


def test_the_board_tile_says_not_reported() -> None:
    now = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    syringe = PumpView.model_validate(
        _view(not_reported=["pressure_downstream_mmhg", "battery_percent"])
    )
    tile = build_tile(syringe, now=now, zone=zone, mask=False)
    assert (tile.pressure, tile.battery) == (NOT_REPORTED,) * 2
    gip = PumpView.model_validate(_view(pressure_downstream_mmhg=12, battery_percent=99))
    tile = build_tile(gip, now=now, zone=zone, mask=False)
    assert (tile.pressure, tile.battery) == ("12 mmHg", "99 %")
    tile = build_tile(PumpView.model_validate(_view()), now=now, zone=zone, mask=False)
    assert (tile.pressure, tile.battery) == ("-", "-")

"""A pump that is configured but not (yet) supervised, as right after a daemon start while
it is still being connected: the socket says so, it does not call it an unknown pump."""

from __future__ import annotations

from pumpd.control.context import PumpInfo

from .conftest import Rig


async def test_a_configured_pump_not_connected_yet_is_named_as_such(rig: Rig) -> None:
    # chair-10 is in the configuration, its pump has not been reached: no controller.
    pumps = dict(rig.ctx.pumps)
    pumps["chair-10"] = PumpInfo("chair-10", "modbus-tcp", "127.0.0.1:1", 10)
    rig.ctx.pumps = pumps
    assert "chair-10" not in rig.supervisor.controllers
    c = await rig.client()
    for method in ("status", "session.start"):
        error = await c.err(method, pump="chair-10")
        assert error["code"] == -32015, error
        assert error["message"].startswith("pump 'chair-10' is configured but not connected yet"), (
            error
        )
        assert "no pump" not in error["message"]
        assert error["data"] == {
            "kind": "pump_not_answering",
            "pump": "chair-10",
            "configured": True,
        }
    # A pump nobody configured is still an unknown pump, and the known ones are named.
    unknown = await c.err("status", pump="chair-99")
    assert unknown["code"] == -32012
    assert unknown["message"] == "no pump 'chair-99' (known: chair-1, chair-10, chair-2)"

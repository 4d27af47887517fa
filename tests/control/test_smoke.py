"""The socket answers: whoami and status over a real connection."""

from __future__ import annotations

from .conftest import Rig


async def test_whoami_and_status(rig: Rig) -> None:
    c = await rig.client()
    me = await c.ok("whoami")
    assert me["uid"] == 0 or me["uid"] > 0
    assert me["roles"] == ["nurse"]
    views = await c.ok("status")
    assert [v["pump_id"] for v in views] == ["chair-1", "chair-2"]
    assert all(v["simulated"] for v in views)

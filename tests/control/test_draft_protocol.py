"""A draft protocol (its file not in released.sha256) treats no patient outside simulation;
in simulation it may be used, and the session's record says it was a draft."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pumpd
from pumpd.control.rpc import Code
from pumpd.protocols import load_library

from .conftest import PROGRAM, Rig

SHIPPED = Path(pumpd.__file__).resolve().parent.parent / "protocols"


def _drafts(tmp_path: Path) -> Path:
    """The standard protocol, copied without the release manifest: a draft."""
    directory = tmp_path / "drafts"
    directory.mkdir()
    shutil.copy(SHIPPED / "ketamine-trd-standard.v1.toml", directory)
    return directory


async def test_a_draft_is_refused_for_a_patient_and_flagged_in_simulation(
    rig: Rig, tmp_path: Path
) -> None:
    rig.ctx.library = load_library(_drafts(tmp_path))
    c = await rig.client()
    rig.ctx.simulated = False
    for method in ("session.plan", "session.program"):
        err = await c.err(method, **PROGRAM)
        assert err["code"] == Code.REFUSED, err
        assert "ketamine-trd-standard@1 is a draft" in err["message"]
        assert [v["code"] for v in err["data"]["verdicts"]] == ["protocol.not_released"]
    assert rig.supervisor.controllers["chair-1"].session is None

    rig.ctx.simulated = True
    await c.ok("session.program", **PROGRAM)
    [programmed] = await rig.flushed_events(event_type="session.programmed")
    assert json.loads(programmed.payload)["protocol_status"] == "draft"

"""The published diagram is the machine's: regenerate it and compare byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pumpd.session import EDGES
from pumpd.session.diagram import document, edges

DOC = Path(__file__).resolve().parents[2] / "docs" / "session-diagram.md"


def test_the_committed_diagram_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == document(), (
        "docs/session-diagram.md is stale: run python -m pumpd.session --diagram"
    )


def test_the_diagram_shows_every_edge_of_the_table() -> None:
    moving, keeping = edges()
    for edge in EDGES:
        for source in edge.sources:
            if edge.dest is None:
                assert edge.trigger in keeping[source.value]
            else:
                assert edge.trigger in moving[(source.value, edge.dest.value)]


def test_the_generator_checks_and_writes(tmp_path: Path) -> None:
    target = tmp_path / "diagram.md"
    cmd = [sys.executable, "-m", "pumpd.session", "--diagram"]
    stale = subprocess.run([*cmd, "--check", str(target)], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "out of date" in stale.stdout
    written = subprocess.run([*cmd, str(target)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == document()
    fresh = subprocess.run([*cmd, "--check", str(target)], capture_output=True, text=True)
    assert fresh.returncode == 0

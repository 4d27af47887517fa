"""How many examples a fuzz test runs: a share of the active hypothesis profile's count.

The costly targets (a request over a real socket, a CLI process) take a share of what the
profile gives, so `make test` stays quick while `make fuzz` (the ``fuzz`` profile,
``PUMPD_FUZZ_EXAMPLES``) scales every target up together.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings


def examples(share: float, *, at_least: int = 10) -> int:
    """``share`` of the profile's ``max_examples`` (never fewer than ``at_least``)."""
    return max(at_least, int(settings.default.max_examples * share))


def report(config: pytest.Config, line: str) -> None:
    """One summary line of a target whose examples run inside the test (hypothesis's
    statistics do not see an inner ``@given``), written past pytest's capture in the long
    run only, so `make fuzz` shows every target's count."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or os.environ.get("HYPOTHESIS_PROFILE") != "fuzz":
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[fuzz] {line}")

"""Suite-wide test configuration. Per-area fixtures live in each tests/<area>/conftest.py."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI gets more examples; a developer's run stays quick. `make fuzz` raises it further.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PUMPD_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _runs_long(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None or item.nodeid.startswith("tests/e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (whole sessions through real processes, builds, and the in-process
    tests marked ``slow``: whole infusions, the fault matrix's batches) run first, the many
    short ones after them: with two workers (`make test`, `--dist worksteal`) the last test
    to finish is then a short one, and neither worker waits a minute on the other's last
    session. The order within each group stays as collected, so the rows of one fault
    matrix batch stay side by side at the head of one worker's queue, where a steal (taken
    from a queue's tail) does not split them: a batch split across workers runs twice."""
    items.sort(key=lambda item: not _runs_long(item))

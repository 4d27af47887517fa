"""Suite-wide test configuration. Per-area fixtures live in each tests/<area>/conftest.py."""

from __future__ import annotations

import os

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

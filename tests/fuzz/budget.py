"""How many examples a fuzz test runs: a share of the active hypothesis profile's count.

The costly targets (a request over a real socket, a CLI process) take a share of what the
profile gives, so `make test` stays quick while `make fuzz` (the ``fuzz`` profile,
``PUMPD_FUZZ_EXAMPLES``) scales every target up together.
"""

from __future__ import annotations

from hypothesis import settings


def examples(share: float, *, at_least: int = 10) -> int:
    """``share`` of the profile's ``max_examples`` (never fewer than ``at_least``)."""
    return max(at_least, int(settings.default.max_examples * share))

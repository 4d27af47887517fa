"""``[forward]`` of the daemon's configuration, apart from the forwarder that uses it.

pumpd.config builds it for every daemon start; the forwarder itself (SQLAlchemy queries,
the central schema and its migrations) is imported only when ``[forward]`` is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """``[forward]`` of the daemon's configuration (docs/central.md)."""

    url: str
    site: str
    batch_size: int = 1000
    alert_after_s: float = 900.0
    mark_file: Path = Path("/var/lib/pumpd/forward.mark")
    interval_s: float = 1.0
    retry_max_s: float = 60.0
    connect_timeout_s: float = 10.0
    duty_cycle: float = 0.25
    """Largest share of wall time the forwarder may work while catching up (docs/central.md)."""

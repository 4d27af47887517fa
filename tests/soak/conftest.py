"""The soak driver is a top-level package of the checkout (`soak/`, run as `python -m
soak`), not an installed one: make it importable however pytest was started."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

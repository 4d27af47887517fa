"""A protocol that prescribes keep-vein-open, for the tests only.

No shipped protocol has a KVO rate (protocols/README.md: a KVO from the drug bag keeps
delivering ketamine). The KVO state is still part of the machine, so the tests derive a
protocol from the shipped standard one, changing nothing but ``kvo_rate_ml_h``, and load it
through the real loader from a directory of its own (the shipped files stay untouched and
``released.sha256`` keeps pinning them; the derived file loads as a draft).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from pumpd.protocols import Library, LoadedProtocol, default_path, load_library

BASE = "ketamine-trd-standard.v1.toml"
KVO_RATE_ML_H = Decimal("5.00")
_SHIPPED_LINE = "kvo_rate_ml_h = 0\n"

_DIR: tempfile.TemporaryDirectory[str] | None = None
_LIBRARY: Library | None = None


def write_kvo_library(directory: Path, kvo_rate_ml_h: Decimal = KVO_RATE_ML_H) -> Path:
    """The shipped standard protocol with a KVO rate, written into ``directory``."""
    text = (default_path() / BASE).read_text(encoding="utf-8")
    if text.count(_SHIPPED_LINE) != 1:
        raise AssertionError(f"{BASE} no longer has exactly one {_SHIPPED_LINE!r}")
    path = directory / BASE
    path.write_text(text.replace(_SHIPPED_LINE, f"kvo_rate_ml_h = {kvo_rate_ml_h}\n"), "utf-8")
    return path


def kvo_library() -> Library:
    """A library holding only the derived KVO protocol (made once per test process)."""
    global _DIR, _LIBRARY
    if _LIBRARY is None:
        _DIR = tempfile.TemporaryDirectory(prefix="pumpd-kvo-")
        write_kvo_library(Path(_DIR.name))
        _LIBRARY = load_library(Path(_DIR.name))
    return _LIBRARY


def kvo_protocol() -> LoadedProtocol:
    loaded = kvo_library().get("ketamine-trd-standard")
    assert loaded.protocol.kvo_rate_ml_h == KVO_RATE_ML_H
    assert not loaded.released
    return loaded

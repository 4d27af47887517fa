"""Where the data files pumpd ships are: the protocol library and the Alembic migrations.

A built wheel carries them inside the package (``pumpd/_data/``, copied there by
``setup.py``), so an installed pumpd runs from any directory without its source tree. An
editable install (a checkout: ``make venv``) has no such copy and reads the top-level
``protocols/`` and ``migrations/`` of the checkout, where they are edited. One function per
resource; every caller asks here, so the two layouts cannot drift apart. The register-map
profiles are an ordinary package (``pumpd.drivers.profiles``) and need no lookup.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGE = "pumpd"
_DATA = "_data"


def protocols_dir() -> Path:
    """The protocol library that ships with pumpd (``released.sha256`` beside it)."""
    return _shipped("protocols")


def migrations_dir() -> Path:
    """The Alembic script directory of a site's audit database."""
    return _shipped("migrations")


def central_migrations_dir() -> Path:
    """The Alembic script directory of a central store (branch ``central``)."""
    return migrations_dir() / "central"


def _shipped(name: str) -> Path:
    """The installed copy, else the checkout's directory; when neither exists, the path
    where an installed pumpd should have it, so the caller's error names the right place."""
    package = resources.files(_PACKAGE)
    if not isinstance(package, Path):
        # Alembic and the protocol loader need real directories: a zipped pumpd cannot run.
        raise RuntimeError(f"pumpd must be installed as files, not from {package}")
    installed = package / _DATA / name
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    return installed

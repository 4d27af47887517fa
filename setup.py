"""Build hook: the wheel carries the protocol library and the Alembic migrations.

Both stay at the top of the repository (``protocols/``, ``migrations/``: the docs, the tests,
the release manifest and mutmut name them there) and are copied into the built package as
``pumpd/_data/protocols`` and ``pumpd/_data/migrations``, where :mod:`pumpd.shipped` finds
them in an installed pumpd. An editable install reads them from the checkout instead.
Everything else about the build is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED_DIRS = ("protocols", "migrations")
SHIPPED_INTO = Path("pumpd", "_data")


class BuildPyWithData(build_py):
    """``build_py`` plus the data directories, copied whole so that nothing is forgotten
    when a migration or a protocol version is added."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED_DIRS:
            source = HERE / name
            if not (source / "README.md").is_file():
                raise SystemExit(f"{source} is missing: the wheel would not run")
            target = Path(self.build_lib) / SHIPPED_INTO / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]")
            )


setup(cmdclass={"build_py": BuildPyWithData})

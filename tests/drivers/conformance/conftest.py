"""Fixtures of the conformance suite: every case runs once per backend in BACKENDS.

A case that takes ``fault`` runs once per fault of each backend's table; one that takes
``backend``, ``rig`` or ``pump`` runs once per backend. Each run gets its own simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pumpd.drivers.base import PumpDriver

from .backends import BACKENDS, Rig


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault" in metafunc.fixturenames:
        pairs = [(b, f) for b in BACKENDS for f in b.faults]
        metafunc.parametrize(
            ("backend", "fault"),
            pairs,
            ids=[f"{b.name}:{f.name}" for b, f in pairs],
            indirect=["backend"],
        )
    elif "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> type[Rig]:
    kind: type[Rig] = request.param
    return kind


@pytest.fixture
async def rig(backend: type[Rig], tmp_path: Path) -> AsyncIterator[Rig]:
    async with backend.open(tmp_path) as running:
        yield running


@pytest.fixture
async def pump(rig: Rig) -> AsyncIterator[PumpDriver]:
    driver = rig.driver()
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()

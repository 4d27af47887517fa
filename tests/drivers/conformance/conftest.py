"""Fixtures of the conformance suite: every case runs once per backend in BACKENDS.

A case that takes ``fault`` runs once per fault of each backend's table; one that takes
``backend``, ``rig`` or ``pump`` runs once per backend. Each run gets its own simulator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pumpd.drivers.base import PumpDriver, PumpUnreachable

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


async def connect_when_up(driver: PumpDriver, within_s: float = 10.0) -> None:
    """Dial until the simulator answers, as the daemon redials a pump it cannot reach yet.

    A driver's dial is bounded by its short request timeout (0.35 s here); on a loaded
    machine the first dial to a simulator that has just started can miss it. The cases
    judge what the pump does once connected (the dial itself is judged by
    ``test_a_pump_that_is_not_there_is_unreachable``), so setup waits for the link as the
    controller would.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            await driver.connect()
            return
        except PumpUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
async def pump(rig: Rig) -> AsyncIterator[PumpDriver]:
    driver = rig.driver()
    await connect_when_up(driver)
    try:
        yield driver
    finally:
        await driver.close()

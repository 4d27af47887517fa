"""Simulator tests: the pure model stepped by hand, and the real thing over real wires.

Each wire test gets its own simulator, so faults and pump state never leak between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pumpsim.harness import Simulator


@pytest.fixture
async def sim_tcp() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=True, time_scale=60.0) as sim:
        yield sim


@pytest.fixture
async def sim_rtu() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=False, rtu=True, baud=115_200, time_scale=60.0) as sim:
        yield sim

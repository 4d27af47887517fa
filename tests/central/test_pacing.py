"""The catch-up pause keeps the forwarder's share of wall time at ``duty_cycle``."""

from __future__ import annotations

import pytest

from pumpd.central.task import catch_up_pause_s


@pytest.mark.parametrize("duty", [0.05, 0.25, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("step_s", [0.001, 0.02, 0.5, 3.0])
def test_pause_holds_the_duty_cycle(step_s: float, duty: float) -> None:
    pause_s = catch_up_pause_s(step_s, duty)
    assert step_s / (step_s + pause_s) == pytest.approx(duty)


def test_full_duty_and_an_empty_step_never_pause() -> None:
    assert catch_up_pause_s(0.5, 1.0) == 0.0
    assert catch_up_pause_s(0.0, 0.25) == 0.0

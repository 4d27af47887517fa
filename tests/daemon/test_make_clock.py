"""The daemon's own check that a scaled clock runs only in simulation mode
(`pumpd/daemon/app.py::make_clock`), behind the configuration's (`pumpd/config.py`).

load_config refuses ``time_scale > 1`` without ``simulation = true``, so a configuration
that reaches the daemon that way was made by something other than the loader (a caller
that builds or changes one). The daemon does not trust the loader alone: a scaled clock
next to a real pump makes every timeout and every volume estimate wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from pumpd.clock import ScaledClock, SystemClock
from pumpd.config import DaemonConfig, parse_config
from pumpd.daemon.app import Daemon, StartupError, make_clock

SIMULATION = """
[daemon]
socket = "/run/pumpd/pumpd.sock"
database = "sqlite:////var/lib/pumpd/audit.db"
simulation = true
time_scale = 60

[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "127.0.0.1:5020"
unit = 1
"""


def simulation_config() -> DaemonConfig:
    return parse_config(SIMULATION, path=Path("/etc/pumpd/pumpd.toml"))


def test_a_scaled_clock_without_simulation_is_refused_by_the_daemon_itself() -> None:
    cfg = simulation_config()
    scaled = make_clock(cfg)
    assert isinstance(scaled, ScaledClock)
    assert scaled.scale == 60
    # The same file with simulation switched off after the loader checked it.
    real_pumps = dataclasses.replace(cfg, simulation=False)
    with pytest.raises(StartupError, match=r"time_scale > 1 is allowed only in simulation"):
        make_clock(real_pumps)
    with pytest.raises(StartupError, match=r"only in simulation"):
        Daemon(real_pumps)
    # Real time is always allowed, with or without simulation.
    for simulation in (True, False):
        unscaled = dataclasses.replace(cfg, simulation=simulation, time_scale=1.0)
        assert isinstance(make_clock(unscaled), SystemClock)


def test_a_simulation_epoch_in_the_future_falls_back_to_now() -> None:
    """The wall clock stepped back below the audit log's first event: the daemon starts
    all the same (simulated time from now), it does not refuse to supervise."""
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    clock = make_clock(simulation_config(), future)
    assert isinstance(clock, ScaledClock)
    assert clock.now_utc() < future

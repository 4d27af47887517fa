"""The sampler: both sides of every pump, side by side, all along the run.

Every ``period_s`` it reads each pump's state and true infused volume from the
simulator's control channel (which no wire fault touches) and the daemon's view of every
session (`status`), stamps them with ``time.monotonic()``, and samples the offset between
UTC and the monotonic clock (so audit stamps can be placed on the same line). The
daemon's view is read as this OS account (its auditor role); each read is an audited
`control.request.served` like any other.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from typing import Any

from pumpsim.control import ControlClient

from pumpd.cli.client import Client, ClientError
from soak.evidence import Sample
from soak.kinds import read_sim
from soak.world import World


class Sampler(threading.Thread):
    def __init__(self, world: World, units: dict[str, int], period_s: float = 0.15) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.world = world
        self.units = units
        self.period_s = period_s
        self.samples: list[Sample] = []
        self.offsets: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self._client: Client | None = None

    def _views(self) -> dict[str, dict[str, Any]] | None:
        if not self.world.up.is_set():
            return None
        try:
            if self._client is None:
                self._client = Client(str(self.world.stack.socket_path), timeout_s=5)
            views = self._client.call("status", {})
        except ClientError:
            if self._client is not None:
                self._client.close()
            self._client = None
            return None
        return {str(v["pump_id"]): v for v in views}

    def sample_sim(
        self, control: ControlClient, unit: int, views: dict[str, dict[str, Any]] | None, pump: str
    ) -> None:
        status = read_sim(control, unit)
        view = views.get(pump) if views is not None else None
        self.add(unit, status, view, views is not None)

    def add(
        self, unit: int, status: dict[str, Any], view: dict[str, Any] | None, answered: bool
    ) -> None:
        """One sample (also used by the nurse right before a reboot wipes the counters)."""
        sample = Sample(
            t_mono=time.monotonic(),
            unit=unit,
            pump_state=str(status["state"]),
            true_infused_ul=float(Fraction(str(status["true_infused_ul"]))),
            daemon_answered=answered and view is not None,
            session_id=None if view is None else view.get("session_id"),
            session_state=None if view is None else view.get("session_state"),
            alarm_codes=() if view is None else tuple(str(a["code"]) for a in view["alarms"]),
        )
        with self.world.lock:
            self.samples.append(sample)

    def run(self) -> None:
        host, port = self.world.stack.sim_control
        with ControlClient(host, port, timeout_s=10) as control:
            while not self.stop.is_set():
                began = time.monotonic()
                self.offsets.append((time.monotonic(), time.time() - time.monotonic()))
                views = self._views()
                self.world.note_rss()
                for pump, unit in self.units.items():
                    self.sample_sim(control, unit, views, pump)
                self.stop.wait(max(0.0, self.period_s - (time.monotonic() - began)))
        if self._client is not None:
            self._client.close()

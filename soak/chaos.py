"""The daemon's chaos: SIGKILL or SIGTERM at moments drawn from the seed, then a restart.

The schedule (how long each daemon lives, which signal, how long it stays down) comes
from the daemon's own random stream, drawn in order; where in the sessions a signal
lands depends on real timing, which is not replayed (docs/soak.md).
"""

from __future__ import annotations

import threading

from soak.plan import DaemonChaos
from soak.world import World


class Chaos(threading.Thread):
    def __init__(self, world: World, schedule: list[DaemonChaos]) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.world = world
        self.schedule = schedule
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for step in self.schedule:
                if self.stop.wait(step.after_s):
                    return
                self.world.stop_daemon(step.signal)
                if self.stop.wait(step.down_s):
                    self.world.start_daemon()
                    return
                self.world.start_daemon()
        except BaseException as exc:
            self.error = exc
            self.world.finished.set()

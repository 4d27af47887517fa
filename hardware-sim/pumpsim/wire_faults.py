"""The wire faults of one unit, as the byte bridges (pumpsim/bridge.py) and the DULCO line
(pumpsim/dulco.py) apply them: whole-unit switches (drop, latency, silence) and faults that
fire frame by frame (`FrameTrigger`: on every frame, with a probability, or for the next N).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pumpsim.faults import Fault, FaultRequest


@dataclass
class FrameTrigger:
    """A wire fault that fires frame by frame: on every frame, with p, or for the next N."""

    on: bool = False
    probability: float | None = None
    remaining: int | None = None
    direction: str = "reply"
    address: int | None = None
    fired: int = 0

    def set(self, request: FaultRequest) -> None:
        self.on = request.on
        self.probability = request.probability if request.on else None
        self.remaining = request.count if request.on else None
        self.direction = request.direction or "reply"
        self.address = request.address if request.on else None

    def take(
        self, rng: random.Random, direction: str = "reply", address: int | None = None
    ) -> bool:
        """Whether this frame (travelling in `direction`, carrying register `address`) is
        hit; counts a `count` fault down."""
        if not self.on or self.direction not in (direction, "both"):
            return False
        if self.address is not None and address != self.address:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.on = False
                self.remaining = None
        self.fired += 1
        return True

    def as_json(self) -> dict[str, object]:
        return {
            "on": self.on,
            "probability": self.probability,
            "remaining": self.remaining,
            "direction": self.direction,
            "address": self.address,
            "fired": self.fired,
        }


@dataclass
class WireFaults:
    """The wire faults of one unit; shared by the TCP proxy and the RTU line."""

    drop: bool = False
    latency_ms: int = 0
    latency_address: int | None = None
    frames_dropped: int = 0
    corruption: FrameTrigger = field(default_factory=FrameTrigger)
    truncate: FrameTrigger = field(default_factory=FrameTrigger)
    noise: FrameTrigger = field(default_factory=FrameTrigger)
    foreign: FrameTrigger = field(default_factory=FrameTrigger)
    reset: FrameTrigger = field(default_factory=FrameTrigger)
    half_open: FrameTrigger = field(default_factory=lambda: FrameTrigger(direction="request"))
    silent: bool = False
    frames_swallowed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def apply(self, request: FaultRequest) -> None:
        """Switch one checked wire fault on or off."""
        which = request.fault
        if which is Fault.DROP_LINK:
            self.drop = request.on
        elif which is Fault.LATENCY:
            self.latency_ms = request.latency_ms or 0
            self.latency_address = request.address
        elif which is Fault.SILENT_TCP:
            self.silent = request.on
        else:
            trigger = {
                Fault.CORRUPT_RTU: self.corruption,
                Fault.TRUNCATE_RTU: self.truncate,
                Fault.NOISE_RTU: self.noise,
                Fault.FOREIGN_FRAME_RTU: self.foreign,
                Fault.RESET_TCP: self.reset,
                Fault.HALF_OPEN_TCP: self.half_open,
            }[which]
            trigger.set(request)
            if which is Fault.HALF_OPEN_TCP:
                trigger.direction = "request"

    def take(
        self, trigger: FrameTrigger, direction: str = "reply", address: int | None = None
    ) -> bool:
        return trigger.take(self._rng, direction, address)

    def latency_s(self, address: int | None) -> float:
        """The delay of a reply frame carrying register `address` (None: not a write echo)."""
        if self.latency_address is not None and address != self.latency_address:
            return 0.0
        return self.latency_ms / 1000

    def noise_bytes(self) -> bytes:
        """What a second master's garbage looks like: 4 to 16 random bytes."""
        return self._rng.randbytes(self._rng.randint(4, 16))

    @property
    def corrupt(self) -> bool:
        """CRC corruption is on (a count fault switches itself off)."""
        return self.corruption.on

    @property
    def corrupt_remaining(self) -> int | None:
        return self.corruption.remaining

    @property
    def frames_corrupted(self) -> int:
        return self.corruption.fired

    def as_json(self) -> dict[str, object]:
        return {
            "drop_link": self.drop,
            "latency_ms": self.latency_ms,
            "latency_address": self.latency_address,
            "corrupt_rtu": self.corruption.on,
            "corrupt_probability": self.corruption.probability,
            "corrupt_remaining": self.corruption.remaining,
            "corrupt_direction": self.corruption.direction,
            "corrupt_address": self.corruption.address,
            "frames_dropped": self.frames_dropped,
            "frames_corrupted": self.corruption.fired,
            "truncate_rtu": self.truncate.as_json(),
            "noise_rtu": self.noise.as_json(),
            "foreign_frame_rtu": self.foreign.as_json(),
            "reset_tcp": self.reset.as_json(),
            "half_open_tcp": self.half_open.as_json(),
            "silent_tcp": self.silent,
            "frames_swallowed": self.frames_swallowed,
        }


WireFaultTable = dict[int, WireFaults]
"""Each unit's wire faults, by unit id."""

"""The prime's share of a New Era pump's one volume counter.

The pump counts a prime and an infusion in the same "infused" counter (``DIS``); the
contract reports them apart (`volume_primed_ul`, `volume_infused_ul`). The ledger holds
what the driver knows of primes, from the counter readings it is shown. It lives in the
driver: a restarted daemon starts with an empty ledger, so START clears the pump's counter
of a finished prime (``CLD INF``) before the run, and the pump then counts the infusion
alone. Only a counter holding nothing but primes is cleared: one that also holds earlier
infusions (a second session on the pump) would drop below the volume the controller took
as the session's start, which it rightly reads as a counter gone back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CounterReading:
    """One counter reading split into its parts, in µL."""

    infused_ul: int
    primed_ul: int
    priming: bool
    """A prime is running (the pump shows INFUSING, the contract PRIMING)."""


class PrimeLedger:
    def __init__(self) -> None:
        self._from_ul: Decimal | None = None
        self._primed_ul = 0
        self._offset_ul = Decimal(0)
        self.last_counter_ul = Decimal(0)

    @property
    def priming(self) -> bool:
        return self._from_ul is not None

    @property
    def holds_prime(self) -> bool:
        """The pump's counter still contains a finished prime."""
        return self._offset_ul > 0

    @property
    def holds_only_primes(self) -> bool:
        """The pump's counter holds finished primes and nothing else: clearing it leaves
        the reported infused volume where it was (0)."""
        return self.holds_prime and self.last_counter_ul == self._offset_ul

    def start(self) -> None:
        """A prime starts from the last counter reading."""
        self._from_ul = self.last_counter_ul

    def abandon(self) -> None:
        """The prime's RUN was refused: nothing moved."""
        self._from_ul = None

    def counter_cleared(self) -> None:
        """``CLD INF`` before a run: the counter no longer holds the prime."""
        self._offset_ul = Decimal(0)

    def forget(self) -> None:
        """Volumes cleared, or the pump lost power: its counter restarted at 0."""
        self._from_ul = None
        self._primed_ul = 0
        self._offset_ul = Decimal(0)

    def observe(self, counter_ul: Decimal, *, running: bool, paused: bool) -> CounterReading:
        """Split a counter reading; a prime that is neither running nor paused is over."""
        self.last_counter_ul = counter_ul
        priming_ul = Decimal(0)
        if self._from_ul is not None:
            priming_ul = max(Decimal(0), counter_ul - self._from_ul)
            if not (running or paused):
                self._primed_ul = int(priming_ul)
                self._offset_ul += priming_ul
                self._from_ul = None
                priming_ul = Decimal(0)
        infused = max(Decimal(0), counter_ul - self._offset_ul - priming_ul)
        return CounterReading(
            infused_ul=int(infused),
            primed_ul=int(priming_ul) if self._from_ul is not None else self._primed_ul,
            priming=self._from_ul is not None and running,
        )

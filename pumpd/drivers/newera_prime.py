"""The prime's share of a New Era pump's one volume counter.

The pump counts a prime and an infusion in the same "infused" counter (``DIS``); the
contract reports them apart (`volume_primed_ul`, `volume_infused_ul`). The ledger holds
what the driver knows of primes, from the counter readings it is shown. It lives in the
driver: a restarted daemon starts with an empty ledger, so START clears the pump's counter
of a finished prime (``CLD INF``) before the run, and the pump then counts the infusion
alone. Every run from a stopped pump starts from a cleared counter, so the pump's volume
(``VOL``, per run) is the contract's VTBI less what was infused before the run; what the
counter held of earlier infusions is carried by the ledger and reported on top of it, so
the reported volume never falls at a start (a second session on the pump).
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
        self._carried_ul = Decimal(0)
        self.last_counter_ul = Decimal(0)

    @property
    def priming(self) -> bool:
        return self._from_ul is not None

    @property
    def holds_prime(self) -> bool:
        """The pump's counter still contains a finished prime."""
        return self._offset_ul > 0

    @property
    def carried_ul(self) -> Decimal:
        """The infused volume counted before the pump's counter was last cleared at a
        start: the driver reports it on top of the counter, so the figure never falls."""
        return self._carried_ul

    @property
    def infused_ul(self) -> Decimal:
        """The infused volume the last reading reported (carried + counter − primes)."""
        return max(Decimal(0), self._carried_ul + self.last_counter_ul - self._offset_ul)

    def start(self) -> None:
        """A prime starts from the last counter reading."""
        self._from_ul = self.last_counter_ul

    def abandon(self) -> None:
        """The prime's RUN was refused: nothing moved."""
        self._from_ul = None

    def counter_cleared(self) -> None:
        """``CLD INF`` before a run: the counter no longer holds the prime, and what it
        held of infusions is carried, so the reported volume stays where it was."""
        self._carried_ul = self.infused_ul
        self._offset_ul = Decimal(0)
        self.last_counter_ul = Decimal(0)

    def forget(self) -> None:
        """Volumes cleared, or the pump lost power: its counter restarted at 0."""
        self._from_ul = None
        self._primed_ul = 0
        self._offset_ul = Decimal(0)
        self._carried_ul = Decimal(0)

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
        infused = max(Decimal(0), self._carried_ul + counter_ul - self._offset_ul - priming_ul)
        return CounterReading(
            infused_ul=int(infused),
            primed_ul=int(priming_ul) if self._from_ul is not None else self._primed_ul,
            priming=self._from_ul is not None and running,
        )

"""Who goes next on a shared line: a halt before any read, first come first served otherwise.

Sixteen pumps on one RS-485 line, or daisy-chained on one RS-232 port, take turns: one
request at a time. With a plain FIFO lock a STOP or PAUSE for one pump queued behind every
other pump's status read, so the halt reached the pump up to a whole queue later than it
could have. `LineLock` has two classes: a request made while halting (`halting()`) goes
out next, ahead of every queued ordinary request; within a class the order is arrival.

The request already on the wire is never interrupted (the line is half-duplex and a reply
is on its way), so a halt waits for at most that one request, plus the line's pacing.

The class is carried by a context variable, not a parameter: a driver marks its whole
halting command (`with halting():`), and every request it makes on the way — a state read
before the command, the command, the reads that confirm it — takes the halt's place in
the queue, while a heartbeat task started elsewhere keeps its own place.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import heapq
import itertools
from collections.abc import AsyncIterator, Iterator


class Urgency(enum.IntEnum):
    """Lower goes first."""

    HALT = 0
    ROUTINE = 1


PRIORITIZE_HALTS = True
"""Read when a line is opened. Only the benchmark sets it False, to measure the plain FIFO
line beside the prioritised one in the same run; nothing in the daemon changes it."""

_URGENCY: contextvars.ContextVar[Urgency] = contextvars.ContextVar(
    "line_urgency", default=Urgency.ROUTINE
)


def current_urgency() -> Urgency:
    return _URGENCY.get()


@contextlib.contextmanager
def halting() -> Iterator[None]:
    """Every line request made inside this block (in this task) goes ahead of routine ones."""
    token = _URGENCY.set(Urgency.HALT)
    try:
        yield
    finally:
        _URGENCY.reset(token)


def halting_if(is_halt: bool) -> contextlib.AbstractContextManager[None]:
    """`halting()` for a STOP or PAUSE, nothing for any other command: the one place the
    drivers decide which of their commands go ahead on the line."""
    return halting() if is_halt else contextlib.nullcontext()


class LineLock:
    """An asyncio lock that hands the line to the most urgent waiter, FIFO within urgency.

    Not reentrant. The line is handed over at release: the chosen waiter owns the lock
    from that moment, so a request made afterwards, however urgent, waits for it (the
    one request "on the wire" is never overtaken). A waiter that is cancelled before it
    runs gives the lock on to the next one.

    `prioritize=False` makes it a plain FIFO lock (the benchmark's comparison); None takes
    `PRIORITIZE_HALTS`.
    """

    def __init__(self, *, prioritize: bool | None = None) -> None:
        self.prioritize = PRIORITIZE_HALTS if prioritize is None else prioritize
        self._held = False
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    def locked(self) -> bool:
        return self._held

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    async def acquire(self, urgency: Urgency | None = None) -> None:
        """Wait for the line; `urgency` defaults to the caller's context (`halting()`)."""
        if urgency is None:
            urgency = current_urgency()
        if not self._held and not self._waiters:
            self._held = True
            return
        rank = int(urgency) if self.prioritize else 0
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Handed the lock in the same instant it was cancelled: pass it on.
                self.release()
            raise

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release of an unlocked LineLock")
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # stays held: ownership passes to that waiter
                return
        self._held = False

    @contextlib.asynccontextmanager
    async def hold(self, urgency: Urgency | None = None) -> AsyncIterator[None]:
        await self.acquire(urgency)
        try:
            yield
        finally:
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

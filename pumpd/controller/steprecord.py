"""A step's record: its events and the checkpoint of the state it leaves, written as one.

Recovery rebuilds a session from its newest checkpoint alone (pumpd/recovery.py). Were the
checkpoint written apart from the step's events, a crash between the two writes would
leave a step in the log that no checkpoint shows: a ``session.programmed`` with no
checkpoint is a session the restarted daemon never rebuilds (the nurse's double-checked
programming gone without a word, and a session in the log that never ends). So a step's
events and its checkpoint go to the writer as one group, committed in one transaction or
appended to the spool in one write (``AsyncAuditWriter.hand_over_together``): both are in the
log, or neither is (docs/controller.md, "Checkpoints").
"""

from __future__ import annotations

from collections.abc import Sequence

from pumpd.audit import NewEvent
from pumpd.session import Session

from .checkpoint import Checkpointer
from .events import EventBuilder
from .executor import CommandPath
from .observation import PumpObservation


class StepRecord:
    """Writes a step's events with the checkpoint they make due."""

    def __init__(
        self,
        events: EventBuilder,
        commands: CommandPath,
        pump: PumpObservation,
        checkpoints: Checkpointer,
    ) -> None:
        self._events = events
        self._commands = commands
        self._pump = pump
        self._checkpoints = checkpoints

    def checkpoint_of(self, s: Session | None) -> list[NewEvent]:
        """``s``'s checkpoint when one is due (``Checkpointer.due``), else nothing."""
        if s is None:
            return []
        acct = self._pump.ledger.account
        snapshot = self._checkpoints.due(s, acct)
        if snapshot is None:
            return []
        payload = self._checkpoints.payload(s, snapshot, acct, self._pump.status)
        return [self._events.daemon("session.checkpointed", payload, session=s)]

    def write(self, events: Sequence[NewEvent], s: Session | None) -> None:
        """Queue ``events`` and the checkpoint of the state ``s`` is left in, as one; the
        caller does not wait (the poll loop never waits for the store)."""
        self._commands.log([*events, *self.checkpoint_of(s)], together=True)

    async def write_durable(self, events: Sequence[NewEvent], s: Session | None) -> bool:
        """:meth:`write`, and wait at most the intent bound for it to be durable (committed,
        or in the spool during an outage), so a nurse is answered once her step would
        survive a crash. False: not durable yet; the group stays queued (or in the
        backlog), as one."""
        group = [*events, *self.checkpoint_of(s)]
        return await self._commands.durable(group, spool_will_do=True, together=True)

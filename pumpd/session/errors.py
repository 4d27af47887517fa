"""The session's errors: each is a type the controller and the control socket can tell apart.

A refused command and a command that does not exist in the current state are different
answers for a nurse ("not allowed, because ..." versus "not now; you can ...") and for the
audit log, so they are different types; neither ever changes the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from safety.verdicts import Verdict


class SessionError(Exception):
    """Base of every error the session raises on purpose."""


class InvalidInState(SessionError):
    """The command or device fact has no meaning in the current state."""

    def __init__(self, trigger: str, state: str, allowed: Iterable[str]) -> None:
        self.trigger = trigger
        self.state = state
        self.allowed = tuple(sorted(allowed))
        super().__init__(
            f"{trigger} is not possible in state {state}; "
            f"possible now: {', '.join(self.allowed) or 'nothing'}"
        )


class CommandRefused(SessionError):
    """A rule (usually the safety kernel's) refused the command; nothing changed.

    ``verdicts`` carry the machine codes for the audit log and one sentence each for the
    nurse; ``as_dict`` is what the control socket sends back.
    """

    def __init__(self, trigger: str, verdicts: Sequence[Verdict]) -> None:
        if not verdicts:
            raise ValueError("a refusal needs at least one verdict saying why")
        self.trigger = trigger
        self.verdicts = tuple(verdicts)
        super().__init__(f"{trigger} refused: " + " ".join(v.message for v in self.verdicts))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(v.code for v in self.verdicts)

    def as_dict(self) -> dict[str, object]:
        return {"trigger": self.trigger, "verdicts": [v.as_dict() for v in self.verdicts]}


class InvalidCommandInput(SessionError, ValueError):
    """An argument of the wrong type or shape: a caller bug, not a clinical refusal."""


class RestoreError(SessionError):
    """A snapshot that cannot be turned back into the session it came from."""


class ReentrantTrigger(SessionError):
    """A trigger fired from inside another one; the machine's callbacks never do this."""

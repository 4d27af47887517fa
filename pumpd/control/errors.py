"""The session's and controller's refusals as JSON-RPC errors (docs/control-socket.md).

A refusal by a rule carries the kernel's verdicts; a command impossible in the present
state says what is possible now. Anything not listed is a bug: ``internal_error``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import SQLAlchemyError

from pumpd.controller import (
    AlarmNotSeen,
    AuditUnavailable,
    NoSession,
    NothingToAcknowledge,
    PumpNotAnswering,
    SessionActive,
)
from pumpd.session import CommandRefused, InvalidCommandInput, InvalidInState
from pumpd.staff import StaffError, StaffExists, StaffInputError, UnknownStaff
from safety.units import InputError

from .rpc import Code, RpcError

_COMMAND_OF: dict[str, str] = {
    "program": "program",
    "confirm": "confirm",
    "request_prime": "prime",
    "request_start": "start",
    "pause": "pause",
    "resume": "resume",
    "adjust": "adjust",
    "confirm_adjust": "adjust_confirm",
    "cancel_adjust": "adjust_cancel",
    "stop": "stop",
    "acknowledge": "acknowledge",
    "record_vitals": "vitals",
    "note": "note",
    "observe": "observe",
    "discharge": "discharge",
    "abort": "abort",
}
"""The session's nurse triggers as the socket's command words (``session.<word>``).

Its device facts (``alarm``, ``start_confirmed`` …) are not commands anyone can give, so
they are left out of "possible now"; ``data.trigger`` and ``data.allowed`` keep the
session's own names for programs.
"""


_PUMPCTL_WORD: dict[str, str] = {"acknowledge": "ack"}
"""Where pumpctl's command differs from the socket's word for a trigger."""
_STEPS_OF_ADJUST = frozenset({"confirm_adjust", "cancel_adjust"})
"""Steps ``pumpctl adjust`` takes itself (after asking): no command of their own to name."""


def pumpctl_commands(triggers: Iterable[str]) -> list[str]:
    """The nurse triggers as the pumpctl commands that give them ("possible now: ack …"),
    since the sentence is read at pumpctl, where ``acknowledge`` is not a command."""
    return sorted(
        {
            _PUMPCTL_WORD.get(t, _COMMAND_OF[t])
            for t in triggers
            if t in _COMMAND_OF and t not in _STEPS_OF_ADJUST
        }
    )


def command_word(trigger: str) -> str:
    """The word a nurse knows for a session trigger (``request_start`` → ``start``)."""
    return _COMMAND_OF.get(trigger, trigger)


def as_rpc_error(exc: Exception) -> RpcError | None:
    """The answer for a known refusal, or None for an unexpected exception."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, CommandRefused):
        return RpcError(
            Code.REFUSED,
            f"{command_word(exc.trigger)} refused: " + " ".join(v.message for v in exc.verdicts),
            trigger=exc.trigger,
            verdicts=[v.as_dict() for v in exc.verdicts],
        )
    if isinstance(exc, InvalidInState):
        possible = pumpctl_commands(exc.allowed)
        return RpcError(
            Code.INVALID_STATE,
            f"{command_word(exc.trigger)} is not possible while the session is {exc.state}; "
            f"possible now: {', '.join(possible) or 'nothing'}",
            trigger=exc.trigger,
            state=exc.state,
            allowed=list(exc.allowed),
        )
    if isinstance(exc, InvalidCommandInput | InputError):
        return RpcError(Code.INVALID_PARAMS, str(exc))
    if isinstance(exc, SessionActive | NothingToAcknowledge | AlarmNotSeen):
        return RpcError(Code.INVALID_STATE, str(exc))
    if isinstance(exc, NoSession):
        return RpcError(Code.NO_SESSION, str(exc) or "the pump has no open session")
    if isinstance(exc, AuditUnavailable):
        return RpcError(Code.AUDIT_UNAVAILABLE, str(exc) or "the audit record could not be made")
    if isinstance(exc, PumpNotAnswering):
        return RpcError(Code.PUMP_NOT_ANSWERING, str(exc))
    if isinstance(exc, StaffInputError | StaffExists | UnknownStaff):
        return RpcError(Code.INVALID_PARAMS, str(exc))
    if isinstance(exc, StaffError):
        return RpcError(Code.LOGIN_REQUIRED, str(exc))
    if isinstance(exc, SQLAlchemyError):  # a read of the staff registry or a course
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1] or ["no answer"]
        return RpcError(
            Code.AUDIT_UNAVAILABLE,
            f"the audit database does not answer ({first[0][:160]}); try again when it is back",
        )
    return None

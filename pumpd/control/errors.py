"""The session's and controller's refusals as JSON-RPC errors (docs/control-socket.md).

A refusal by a rule carries the kernel's verdicts; a command impossible in the present
state says what is possible now. Anything not listed is a bug: ``internal_error``.
"""

from __future__ import annotations

from pumpd.controller import AuditUnavailable, NoSession, PumpNotAnswering, SessionActive
from pumpd.session import CommandRefused, InvalidCommandInput, InvalidInState
from safety.units import InputError

from .rpc import Code, RpcError
from .staff import StaffError, StaffExists, StaffInputError, UnknownStaff


def as_rpc_error(exc: Exception) -> RpcError | None:
    """The answer for a known refusal, or None for an unexpected exception."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, CommandRefused):
        return RpcError(
            Code.REFUSED,
            str(exc),
            trigger=exc.trigger,
            verdicts=[v.as_dict() for v in exc.verdicts],
        )
    if isinstance(exc, InvalidInState):
        return RpcError(
            Code.INVALID_STATE,
            str(exc),
            trigger=exc.trigger,
            state=exc.state,
            allowed=list(exc.allowed),
        )
    if isinstance(exc, InvalidCommandInput | InputError):
        return RpcError(Code.INVALID_PARAMS, str(exc))
    if isinstance(exc, SessionActive):
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
    return None

"""What every handler shares: the call as authorized, the service objects, the audit actor.

``Service`` holds the daemon's context, the staff registry, the login tokens and the
recorder; ``Call`` is one authorized request (caller, acting person, validated params).
``check_pin`` is the one place a staff PIN is checked at the socket, so every wrong PIN
and every lock is audited the same way for a login and for a witness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pumpd.audit import Actor, NewEvent
from pumpd.controller import Controller
from pumpd.protocols import LoadedProtocol
from pumpd.staff import PinRefused, StaffLocked, StaffMember, StaffRegistry

from . import params
from .context import ControlContext
from .identity import Acting, Caller
from .record import Recorder
from .rpc import Code, RpcError
from .tokens import LoginTokens

CLINICAL = frozenset({"nurse"})
READERS = frozenset({"nurse", "auditor", "admin"})
ADMIN = frozenset({"admin"})
ANYONE: frozenset[str] = frozenset()
"""Marker: the method needs no role (``whoami``, ``staff.logout``)."""


@dataclass
class Call:
    """One authorized request as the handler sees it."""

    caller: Caller
    acting: Acting
    role: str | None
    """The role that allowed the request (None for methods open to anyone)."""
    params: Any
    token: str | None = None
    note: str | None = None
    """Extra words for the audit record (a witness, a pause reason)."""
    actor: Actor = field(init=False)
    """Who acts, made once here: the acting person with the role used (auditor when none)
    at the peer's uid. Every record of the request and every layer below it take this value
    as it is (the controller writes it into the session's events)."""

    def __post_init__(self) -> None:
        self.actor = self.acting.actor(self.role or "auditor", self.caller.uid)


Handler = Callable[["Service", Call], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    roles: frozenset[str]
    params: type[params.Params]
    handler: Handler
    auth: Literal["token", "account", "lenient"] = "token"
    """How a staff token in ``auth`` is used: ``token`` — a bad one is refused;
    ``account`` — ignored, the OS account acts (``staff.login``: a stale token must not
    stop a new login); ``lenient`` — used when valid, else ignored (``staff.logout``)."""


@dataclass
class Service:
    ctx: ControlContext
    registry: StaffRegistry
    tokens: LoginTokens
    recorder: Recorder
    programmed_from_uid: dict[str, int] = field(default_factory=dict)
    """session id → uid of the account that programmed it (for the double-check)."""
    override_from_uid: dict[str, int] = field(default_factory=dict)
    """session id → uid of the account that gave the latest override reason awaiting
    approval (an adjustment's or a start's; an order's is ``programmed_from_uid``)."""

    def controller(self, pump: str) -> Controller:
        ctl = self.ctx.controllers().get(pump)
        if ctl is None and pump in self.ctx.pumps:
            # Configured, but its controller is not there yet: after a start the daemon is
            # still connecting to the pump (it retries) or recovering its session.
            why = self.ctx.unsupervised().get(pump)
            if why is not None:
                raise RpcError(
                    Code.PUMP_NOT_ANSWERING,
                    f"pump {pump!r} is configured but pumpd does not supervise it: {why}",
                    pump=pump,
                    configured=True,
                )
            raise RpcError(
                Code.PUMP_NOT_ANSWERING,
                f"pump {pump!r} is configured but not connected yet: pumpd has not taken it "
                "over since it started (still connecting or recovering its session); try "
                "again shortly, and see the daemon's log if it lasts",
                pump=pump,
                configured=True,
            )
        if ctl is None:
            known = ", ".join(sorted(self.ctx.pumps or self.ctx.controllers())) or "none"
            raise RpcError(Code.NO_SUCH_PUMP, f"no pump {pump!r} (known: {known})", pump=pump)
        return ctl

    def protocol(self, protocol_id: str, version: int | None) -> LoadedProtocol:
        try:
            return self.ctx.library.get(protocol_id, version)
        except LookupError as exc:
            raise RpcError(Code.INVALID_PARAMS, str(exc), param="protocol") from None

    def record(self, call: Call, event_type: str, payload: dict[str, Any]) -> None:
        self.recorder.submit(NewEvent(event_type, payload, call.actor))

    async def check_pin(self, call: Call, staff_id: str, pin: str) -> StaffMember:
        """The registry's member for this id and PIN, or ``login_required`` (audited)."""
        uid = call.caller.uid
        try:
            return await self.registry.verify(staff_id, pin)
        except StaffLocked as exc:
            message = exc.sentence(self.ctx.timezone)
            raise RpcError(Code.LOGIN_REQUIRED, message, reason="locked") from None
        except PinRefused as exc:
            if exc.failures is not None:
                self.record(
                    call,
                    "staff.pin.refused",
                    {"staff_id": exc.staff_id, "uid": uid, "failures": exc.failures},
                )
            if exc.locked_until is not None:
                self.record(
                    call,
                    "staff.locked",
                    {
                        "staff_id": exc.staff_id,
                        "failures": exc.failures,
                        "locked_until": exc.locked_until,
                    },
                )
            raise RpcError(Code.LOGIN_REQUIRED, str(exc), reason="pin_refused") from None

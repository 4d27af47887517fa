"""One request, start to end: parse, who acts, may they, validate, run, answer, record.

Order matters and is the same for every method:

1. parse the line (``rpc.py``); a malformed line or an unknown method is answered and
   counted; only the first per connection is audited (``access.denied``, ``malformed``),
   so a flood cannot fill the log;
2. the acting person: the OS account, or the staff member of a valid token (``auth``);
   a bad token is ``login_required`` (audited ``access.denied``);
3. the roles: no allowed role is ``forbidden`` (audited ``access.denied``);
4. the params (strict models), then the handler;
5. every authorized request that can change something, and every request that fails,
   is audited as ``control.request.served`` with its outcome code; answered reads
   (``status``, ``alarms.list`` …) are tallied on the connection and audited once for it
   (``control.view.closed`` when it ends, ``control.view.opened`` as soon as it asks for
   the same read again, i.e. is a live view such as ``pumpctl watch``): a view open all
   morning is two events, not one a second.

Audit records are submitted without waiting (``record.py``): no answer, and no stop,
waits on the database. The controller writes its own intents durably before it commands
a pump, so that rule does not depend on this record.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

from pumpd.audit import Actor, NewEvent
from pumpd.clinictime import iso_utc

from .errors import as_rpc_error
from .identity import Acting, Caller, os_acting, staff_acting
from .methods import METHODS
from .params import validate
from .rpc import Code, Request, RpcError, error_line, parse_request, result_line
from .service import Call, Service
from .tokens import TokenProblem

log = structlog.get_logger("pumpd.control")

ROLE_ORDER = ("nurse", "admin", "auditor")
"""Which role is recorded when several allow a method (the most specific first)."""


@dataclass
class Peer:
    """One connection's caller, its malformed-request count and the reads answered on it."""

    caller: Caller
    malformed: int = 0
    opened_at: dt.datetime | None = None
    reads: Counter[str] = field(default_factory=Counter)
    pumps: set[str] = field(default_factory=set)
    all_pumps: bool = False
    reader: Actor | None = None
    """Who read (the first read's acting person), for the view's record."""
    reader_roles: tuple[str, ...] = ()
    view_opened: bool = False


class Dispatcher:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.served = 0
        self.denied = 0
        self.malformed = 0

    async def handle(self, peer: Peer, line: bytes) -> bytes:
        try:
            req = parse_request(line)
        except RpcError as bad:
            self.malformed_line(peer, "(malformed)", "malformed")
            return error_line(bad.request_id, bad)
        method = METHODS.get(req.method)
        if method is None:
            self.malformed_line(peer, req.method, "unknown_method")
            err = RpcError(Code.METHOD_NOT_FOUND, f"no method {req.method[:80]!r}")
            return error_line(req.id, err)
        params = dict(req.params)
        auth = params.pop("auth", None)
        try:
            acting, token = self._acting(peer.caller, auth, method.auth)
        except RpcError as bad_auth:
            return error_line(req.id, bad_auth)
        except TokenProblem as problem:
            self._denied(peer.caller, os_acting(peer.caller), req.method, problem.reason_code)
            if problem.login is not None:
                self.svc.recorder.submit(
                    NewEvent(
                        "staff.login.ended",
                        {
                            "staff_id": problem.login.staff_id,
                            "uid": problem.login.uid,
                            "reason_code": "idle_timeout",
                        },
                        Actor.daemon(),
                    )
                )
            err = RpcError(Code.LOGIN_REQUIRED, str(problem), reason=problem.reason_code)
            return error_line(req.id, err)
        allowed = [r for r in ROLE_ORDER if r in method.roles and r in acting.roles]
        if method.roles and not allowed:
            self._denied(peer.caller, acting, req.method, "forbidden")
            have = ", ".join(sorted(acting.roles)) or "none"
            need = " or ".join(r for r in ROLE_ORDER if r in method.roles)
            err = RpcError(
                Code.FORBIDDEN,
                f"{acting.name} (roles: {have}) may not call {req.method}; it needs {need}",
            )
            return error_line(req.id, err)
        role = allowed[0] if allowed else next((r for r in ROLE_ORDER if r in acting.roles), None)
        call = Call(caller=peer.caller, acting=acting, role=role, params=None, token=token)
        return await self._run(req, call, params, peer)

    async def _run(self, req: Request, call: Call, params: dict[str, Any], peer: Peer) -> bytes:
        method = METHODS[req.method]
        try:
            call.params = validate(method.params, params)
            result = await method.handler(self.svc, call)
        except Exception as exc:
            err = as_rpc_error(exc)
            if err is None:
                log.exception("control request failed", method=req.method, uid=call.caller.uid)
                err = RpcError(Code.INTERNAL_ERROR, f"internal error in {req.method}; it is logged")
            self._served(call, req.method, err.code.kind, err.message, note=call.note)
            _log_served(call, req.method, params, err.code.kind, err.message)
            return error_line(req.id, err)
        if req.method in _READS:
            self._read(peer, call, req.method, params)
        else:
            self._served(call, req.method, "ok", call.note)
        _log_served(call, req.method, params, "ok", None)
        return result_line(req.id, result)

    def _acting(self, caller: Caller, auth: object, mode: str) -> tuple[Acting, str | None]:
        if auth is None or mode == "account":
            return os_acting(caller), None
        if not isinstance(auth, dict) or set(auth) != {"token"}:
            raise RpcError(Code.INVALID_PARAMS, "auth: must be {token}", param="auth")
        try:
            login = self.svc.tokens.use(auth["token"], caller.uid)
        except TokenProblem:
            if mode == "lenient":
                return os_acting(caller), None
            raise
        return staff_acting(caller, login.staff_id, login.role), login.token

    # -- records --------------------------------------------------------------------

    def _served(
        self, call: Call, method: str, outcome: str, message: str | None, note: str | None = None
    ) -> None:
        self.served += 1
        payload: dict[str, Any] = {
            "method": method,
            "uid": call.caller.uid,
            "roles": sorted(call.acting.roles),
            "outcome_code": outcome,
        }
        if message:
            payload["message"] = message
        if note and note != message:
            payload["note"] = note
        self.svc.recorder.submit(NewEvent("control.request.served", payload, call.actor))

    def _read(self, peer: Peer, call: Call, method: str, params: dict[str, Any]) -> None:
        """Tally an answered read on its connection. A read asked again on it (a refresh)
        makes the connection a live view, recorded as opened once (``control.view.opened``);
        a command that reads two different things once each is not a view."""
        self.served += 1
        if peer.reader is None:
            peer.reader = call.actor
            peer.reader_roles = tuple(sorted(call.acting.roles))
        peer.reads[method] += 1
        pump = params.get("pump")
        if isinstance(pump, str):
            peer.pumps.add(pump[:80])
        elif method in _ALL_PUMPS:
            peer.all_pumps = True
        if peer.reads[method] == 2 and not peer.view_opened:
            peer.view_opened = True
            self.svc.recorder.submit(NewEvent("control.view.opened", self._view(peer), peer.reader))

    def connection_closed(self, peer: Peer, end_code: str) -> None:
        """The connection is over: its reads, if any, as one record (``control.view.closed``)."""
        if peer.reader is None or not peer.reads:
            return
        payload = self._view(peer)
        payload["closed_at"] = iso_utc(audit_now())
        payload["end_code"] = end_code
        self.svc.recorder.submit(NewEvent("control.view.closed", payload, peer.reader))

    def _view(self, peer: Peer) -> dict[str, Any]:
        opened = peer.opened_at or audit_now()
        return {
            "uid": peer.caller.uid,
            "roles": list(peer.reader_roles),
            "opened_at": iso_utc(opened),
            "reads": dict(sorted(peer.reads.items())),
            "pumps": sorted(peer.pumps),
            "all_pumps": peer.all_pumps,
        }

    def _denied(self, caller: Caller, acting: Acting, method: str, reason: str) -> None:
        self.denied += 1
        log.warning("control request denied", method=method[:120], uid=caller.uid, reason=reason)
        self.svc.recorder.submit(
            NewEvent(
                "access.denied",
                {"method": method[:120] or "(none)", "uid": caller.uid, "reason_code": reason},
                _denied_actor(caller, acting),
            )
        )

    def malformed_line(self, peer: Peer, method: str, reason: str) -> None:
        self.malformed += 1
        peer.malformed += 1
        if peer.malformed == 1:
            self._denied(peer.caller, os_acting(peer.caller), method, reason)


_READS = frozenset(
    {"whoami", "pumps.list", "status", "alarms.list", "protocols.list", "session.checklist"}
)
"""Requests that change nothing: logged at debug (a ``watch`` asks once a second) and
audited per connection, not per request."""
_ALL_PUMPS = frozenset({"pumps.list", "status", "alarms.list"})
"""Reads that cover every pump unless a ``pump`` is named."""


def _log_served(
    call: Call, method: str, params: dict[str, Any], outcome: str, message: str | None
) -> None:
    """One log line per request that can change something, with its pump (the daemon's
    log processor adds the pump's session), so the journal tells what nurses did too."""
    fields: dict[str, Any] = {
        "method": method,
        "outcome": outcome,
        "by": call.acting.name,
        "uid": call.caller.uid,
    }
    pump = params.get("pump")
    if isinstance(pump, str):
        fields["pump"] = pump[:80]
    if message and outcome != "ok":
        fields["reason"] = message[:300]
    if method in _READS or method == "session.plan":
        log.debug("control request", **fields)
    elif outcome == "ok":
        log.info("control request", **fields)
    else:
        log.warning("control request refused", **fields)


def audit_now() -> dt.datetime:
    """The audit log's own time (its ``occurred_at``): real UTC, also in a simulation whose
    session clock runs faster, so a view's opened/closed times line up with its events."""
    return dt.datetime.now(dt.UTC)


def _denied_actor(caller: Caller, acting: Acting) -> Actor:
    """The person when they hold some role; else the daemon records the refusal (the
    payload's uid names the caller), because the log knows no 'no role' actor."""
    role = next((r for r in ROLE_ORDER if r in acting.roles), None)
    if role is None:
        return Actor.daemon()
    return acting.actor(role, caller.uid)

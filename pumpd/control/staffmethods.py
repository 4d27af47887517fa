"""Handlers for the staff registry (admin), staff login/logout, and configuration reload.

A login is asked for by an OS account with the nurse or admin role and names a staff
member whose role that account also holds (a login narrows an account to a person; it
never adds a role). Every change is an audit event (``staff.*``).
"""

from __future__ import annotations

from typing import Any

from pumpd.staff import StaffError, StaffExists, StaffInputError, UnknownStaff

from .params import StaffAddParams, StaffIdParams, StaffLoginParams, StaffPinParams
from .rpc import Code, RpcError
from .service import Call, Service


def _staff_error(exc: StaffError, param: str) -> RpcError:
    if isinstance(exc, StaffInputError | StaffExists | UnknownStaff):
        return RpcError(Code.INVALID_PARAMS, str(exc), param=param)
    return RpcError(Code.LOGIN_REQUIRED, str(exc))


async def staff_login(svc: Service, call: Call) -> Any:
    params: StaffLoginParams = call.params
    member = await svc.check_pin(call, params.staff_id, params.pin)
    if member.role not in call.caller.roles:
        raise RpcError(
            Code.FORBIDDEN,
            f"staff {member.staff_id} has role {member.role}, which this account "
            f"({call.caller.user}) does not have",
        )
    login = svc.tokens.issue(
        staff_id=member.staff_id, name=member.name, role=member.role, uid=call.caller.uid
    )
    svc.record(call, "staff.login.granted", {"staff_id": member.staff_id, "uid": call.caller.uid})
    return {
        "token": login.token,
        "staff_id": member.staff_id,
        "name": member.name,
        "role": member.role,
        "idle_timeout_s": svc.tokens.idle_timeout_s,
    }


async def staff_logout(svc: Service, call: Call) -> Any:
    if call.token is None:
        return {"ended": False}
    login = svc.tokens.end(call.token)
    if login is not None:
        svc.record(
            call,
            "staff.login.ended",
            {"staff_id": login.staff_id, "uid": login.uid, "reason_code": "logout"},
        )
    return {"ended": login is not None}


async def staff_list(svc: Service, call: Call) -> Any:
    return [m.as_dict() for m in await svc.registry.list()]


async def staff_add(svc: Service, call: Call) -> Any:
    params: StaffAddParams = call.params
    try:
        member = await svc.registry.add(params.staff_id, params.name, params.role, params.pin)
    except StaffError as exc:
        raise _staff_error(exc, "pin" if "PIN" in str(exc) else "staff_id") from None
    svc.record(
        call,
        "staff.registered",
        {"staff_id": member.staff_id, "name": member.name, "role": member.role},
    )
    return {}


def _logins_ended(svc: Service, call: Call, staff_id: str, reason_code: str) -> None:
    for login in svc.tokens.end_staff(staff_id):
        svc.record(
            call,
            "staff.login.ended",
            {"staff_id": login.staff_id, "uid": login.uid, "reason_code": reason_code},
        )


async def staff_set_pin(svc: Service, call: Call) -> Any:
    params: StaffPinParams = call.params
    try:
        await svc.registry.set_pin(params.staff_id, params.pin)
    except StaffError as exc:
        raise _staff_error(exc, "pin" if "PIN" in str(exc) else "staff_id") from None
    svc.record(call, "staff.changed", {"staff_id": params.staff_id, "change": "pin_set"})
    _logins_ended(svc, call, params.staff_id, "pin_changed")
    return {}


async def _set_enabled(svc: Service, call: Call, enabled: bool) -> Any:
    params: StaffIdParams = call.params
    try:
        await svc.registry.set_enabled(params.staff_id, enabled)
    except StaffError as exc:
        raise _staff_error(exc, "staff_id") from None
    change = "enabled" if enabled else "disabled"
    svc.record(call, "staff.changed", {"staff_id": params.staff_id, "change": change})
    if not enabled:
        _logins_ended(svc, call, params.staff_id, "disabled")
    return {}


async def staff_disable(svc: Service, call: Call) -> Any:
    return await _set_enabled(svc, call, False)


async def staff_enable(svc: Service, call: Call) -> Any:
    return await _set_enabled(svc, call, True)


async def config_reload(svc: Service, call: Call) -> Any:
    if svc.ctx.reload is None:
        raise RpcError(Code.INVALID_STATE, "this daemon was started without a reloadable config")
    result = await svc.ctx.reload()
    svc.tokens.idle_timeout_s = svc.ctx.staff_idle_timeout_s
    svc.registry.max_failures = svc.ctx.staff_max_failures
    svc.registry.lockout_s = svc.ctx.staff_lockout_s
    return result

"""The method table: method → roles allowed → parameter model → handler.

The one place that says who may call what (docs/control-socket.md, docs/roles.md):
nurse — everything clinical; auditor — read-only; admin — configuration reload, protocol
library, staff registry. No role implies another, and there is no superuser.
"""

from __future__ import annotations

from . import params
from .clinical import (
    alarms_list,
    checklist,
    protocols_list,
    pumps_list,
    session_abort,
    session_acknowledge,
    session_adjust,
    session_adjust_cancel,
    session_adjust_confirm,
    session_approve,
    session_confirm,
    session_discharge,
    session_end,
    session_note,
    session_observe,
    session_pause,
    session_plan,
    session_prime,
    session_program,
    session_resume,
    session_start,
    session_stop,
    session_vitals,
    status,
    whoami,
)
from .service import ADMIN, ANYONE, CLINICAL, READERS, Method
from .staffmethods import (
    config_reload,
    staff_add,
    staff_disable,
    staff_enable,
    staff_list,
    staff_login,
    staff_logout,
    staff_set_pin,
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("whoami", ANYONE, params.NoParams, whoami),
        Method("pumps.list", READERS, params.NoParams, pumps_list),
        Method("status", READERS, params.StatusParams, status),
        Method("alarms.list", READERS, params.NoParams, alarms_list),
        Method("protocols.list", READERS, params.NoParams, protocols_list),
        Method("session.checklist", READERS, params.PumpParams, checklist),
        Method("session.plan", CLINICAL, params.ProgramParams, session_plan),
        Method("session.program", CLINICAL, params.ProgramParams, session_program),
        Method("session.confirm", CLINICAL, params.ConfirmParams, session_confirm),
        Method("session.prime", CLINICAL, params.PrimeParams, session_prime),
        Method("session.start", CLINICAL, params.StartParams, session_start),
        Method("session.approve", CLINICAL, params.ApproveParams, session_approve),
        Method("session.pause", CLINICAL, params.PauseParams, session_pause),
        Method("session.resume", CLINICAL, params.ResumeParams, session_resume),
        Method("session.end", CLINICAL, params.ReasonParams, session_end),
        Method("session.adjust", CLINICAL, params.AdjustParams, session_adjust),
        Method("session.adjust_confirm", CLINICAL, params.PumpParams, session_adjust_confirm),
        Method("session.adjust_cancel", CLINICAL, params.PumpParams, session_adjust_cancel),
        Method("session.stop", CLINICAL, params.StopParams, session_stop),
        Method("session.acknowledge", CLINICAL, params.AckParams, session_acknowledge),
        Method("session.vitals", CLINICAL, params.VitalsParams, session_vitals),
        Method("session.note", CLINICAL, params.NoteParams, session_note),
        Method("session.observe", CLINICAL, params.PumpParams, session_observe),
        Method("session.discharge", CLINICAL, params.DischargeParams, session_discharge),
        Method("session.abort", CLINICAL, params.ReasonParams, session_abort),
        Method(
            "staff.login",
            frozenset({"nurse", "admin"}),
            params.StaffLoginParams,
            staff_login,
            auth="account",
        ),
        Method("staff.logout", ANYONE, params.NoParams, staff_logout, auth="lenient"),
        Method("staff.list", ADMIN, params.NoParams, staff_list),
        Method("staff.add", ADMIN, params.StaffAddParams, staff_add),
        Method("staff.set_pin", ADMIN, params.StaffPinParams, staff_set_pin),
        Method("staff.disable", ADMIN, params.StaffIdParams, staff_disable),
        Method("staff.enable", ADMIN, params.StaffIdParams, staff_enable),
        Method("config.reload", ADMIN, params.NoParams, config_reload),
    )
}

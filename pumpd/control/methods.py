"""The method table: method → roles allowed → parameter model → handler.

The one place that says who may call what (docs/control-socket.md, docs/roles.md):
nurse — everything clinical; auditor — read-only; admin — configuration reload, protocol
library, staff registry. No role implies another, and there is no superuser.
"""

from __future__ import annotations

from . import params as p
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
        Method("whoami", ANYONE, p.NoParams, whoami),
        Method("pumps.list", READERS, p.NoParams, pumps_list),
        Method("status", READERS, p.StatusParams, status),
        Method("alarms.list", READERS, p.NoParams, alarms_list),
        Method("protocols.list", READERS, p.NoParams, protocols_list),
        Method("session.checklist", READERS, p.PumpParams, checklist),
        Method("session.plan", CLINICAL, p.ProgramParams, session_plan),
        Method("session.program", CLINICAL, p.ProgramParams, session_program),
        Method("session.confirm", CLINICAL, p.ConfirmParams, session_confirm),
        Method("session.prime", CLINICAL, p.PrimeParams, session_prime),
        Method("session.start", CLINICAL, p.StartParams, session_start),
        Method("session.approve", CLINICAL, p.ApproveParams, session_approve),
        Method("session.pause", CLINICAL, p.PauseParams, session_pause),
        Method("session.resume", CLINICAL, p.ResumeParams, session_resume),
        Method("session.end", CLINICAL, p.ReasonParams, session_end),
        Method("session.adjust", CLINICAL, p.AdjustParams, session_adjust),
        Method("session.adjust_confirm", CLINICAL, p.PumpParams, session_adjust_confirm),
        Method("session.adjust_cancel", CLINICAL, p.PumpParams, session_adjust_cancel),
        Method("session.stop", CLINICAL, p.ReasonParams, session_stop),
        Method("session.acknowledge", CLINICAL, p.AckParams, session_acknowledge),
        Method("session.vitals", CLINICAL, p.VitalsParams, session_vitals),
        Method("session.note", CLINICAL, p.NoteParams, session_note),
        Method("session.observe", CLINICAL, p.PumpParams, session_observe),
        Method("session.discharge", CLINICAL, p.DischargeParams, session_discharge),
        Method("session.abort", CLINICAL, p.ReasonParams, session_abort),
        Method(
            "staff.login",
            frozenset({"nurse", "admin"}),
            p.StaffLoginParams,
            staff_login,
            auth="account",
        ),
        Method("staff.logout", ANYONE, p.NoParams, staff_logout, auth="lenient"),
        Method("staff.list", ADMIN, p.NoParams, staff_list),
        Method("staff.add", ADMIN, p.StaffAddParams, staff_add),
        Method("staff.set_pin", ADMIN, p.StaffPinParams, staff_set_pin),
        Method("staff.disable", ADMIN, p.StaffIdParams, staff_disable),
        Method("staff.enable", ADMIN, p.StaffIdParams, staff_enable),
        Method("config.reload", ADMIN, p.NoParams, config_reload),
    )
}

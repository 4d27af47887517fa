"""From the driver's vocabulary to the kernel's, and from codes to words a nurse reads.

``safety`` imports nothing of ``pumpd``, so the controller translates each driver status
into the kernel's small ``PumpSnapshot``. An alarm bit the kernel has no name for becomes
SYSTEM_FAULT: an unnamed alarm is still an alarm and must stop the pump.
"""

from __future__ import annotations

from decimal import Decimal

from pumpd.drivers import AlarmFlag, PumpState, PumpStatus, WarningFlag
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.runon import VOLUME_DUE_RULE

MODE_OF: dict[PumpState, PumpMode] = {
    PumpState.IDLE: PumpMode.IDLE,
    PumpState.PRIMING: PumpMode.PRIMING,
    PumpState.INFUSING: PumpMode.INFUSING,
    PumpState.PAUSED: PumpMode.PAUSED,
    PumpState.KVO: PumpMode.KVO,
    PumpState.ALARM: PumpMode.ALARM,
}


def _alarms(flags: AlarmFlag) -> PumpAlarm:
    out = PumpAlarm.NONE
    for member in AlarmFlag:
        if member is AlarmFlag.NONE or member not in flags:
            continue
        name = member.name or ""
        out |= PumpAlarm[name] if name in PumpAlarm.__members__ else PumpAlarm.SYSTEM_FAULT
    return out


def _warnings(flags: WarningFlag) -> PumpWarning:
    out = PumpWarning.NONE
    for member in (WarningFlag.LOW_BATTERY, WarningFlag.VTBI_COMPLETE):
        if member in flags:
            out |= PumpWarning[member.name or ""]
    return out


def to_snapshot(status: PumpStatus) -> PumpSnapshot:
    return PumpSnapshot(
        mode=MODE_OF[status.state],
        alarms=_alarms(status.alarms),
        warnings=_warnings(status.warnings),
        rate_actual_ml_h=status.rate_actual_ml_h,
        volume_infused_ul=status.volume_infused_ul,
        volume_primed_ul=status.volume_primed_ul,
        uptime_s=status.uptime_s,
        last_cmd_seq=status.last_cmd_seq,
        switch_on_count=status.switch_on_count,
        resets_seen=status.resets_seen,
    )


# What a nurse calls each condition; the kernel's own sentence follows in the message.
_TITLES: tuple[tuple[str, str], ...] = (
    ("tick.pump.alarm.occlusion_downstream", "Downstream occlusion"),
    ("tick.pump.alarm.occlusion_upstream", "Upstream occlusion"),
    ("tick.pump.alarm.air_in_line", "Air in line"),
    ("tick.pump.alarm.door_open", "Pump door open"),
    ("tick.pump.alarm.system_fault", "Pump system fault"),
    ("tick.pump.alarm.comm_loss", "Pump lost contact with pumpd and stopped itself"),
    ("tick.pump.alarm.battery_depleted", "Pump battery empty"),
    ("tick.pump.alarm_mode", "Pump alarm"),
    ("tick.pump.battery_low", "Pump battery low"),
    ("tick.comm.lost", "No answer from the pump"),
    ("tick.comm.volume_due", "Pump not answering when its volume fell due"),
    ("tick.pump.delivering_unexpectedly", "Pump delivering unexpectedly"),
    ("tick.pump.flow_while_stopped", "Flow while stopped"),
    ("tick.pump.not_delivering", "Pump not delivering"),
    ("tick.pump.rebooted", "Pump restarted"),
    ("tick.pump.counter", "Pump volume counter wrong"),
    ("tick.vtbi", "Volume limit"),
    ("tick.rate.mismatch", "Pump rate differs from the prescription"),
    ("tick.volume.over_infusion", "Over-infusion"),
    ("tick.volume.under_infusion", "Under-infusion"),
    ("tick.pause.too_long", "Pause too long"),
    ("tick.vitals.stop", "Vital signs outside the stop band"),
    ("tick.vitals.pause", "Vital signs outside the pause band"),
    ("tick.duration", "Infusion running too long"),
    ("pump.vtbi_ignored", "Pump did not stop at its volume limit"),
    ("pump.orphan_delivery", "Pump delivering without a session"),
    ("pump.state_lost", "Pump lost its state"),
    ("audit.write_failed", "Audit log unavailable"),
    ("controller.prime.too_long", "Priming did not end"),
    ("controller.bookkeeping", "pumpd bookkeeping error"),
    ("command.", "Pump command problem"),
)


def title_of(code: str) -> str:
    for prefix, title in _TITLES:
        if code.startswith(prefix):
            return title
    return "Infusion alarm"


def ml_text(volume_ul: int) -> str:
    """23400 → "23.4", 100000 → "100": one decimal, none when it is zero."""
    text = f"{Decimal(volume_ul) / 1000:.1f}"
    return text[:-2] if text.endswith(".0") else text


def alarm_message(
    code: str, pump_id: str, effect: str, delivered_ul: int, vtbi_ul: int, detail: str
) -> str:
    """ "Downstream occlusion on chair-2: infusion stopped at 23.4 of 100 mL. <detail>".

    A pump that does not answer when its volume falls due is not known to have stopped:
    its head gives the volume at its last answer instead of an effect."""
    head = (
        f"{title_of(code)} on {pump_id}: infusion {effect} at "
        f"{ml_text(delivered_ul)} of {ml_text(vtbi_ul)} mL."
    )
    if code == VOLUME_DUE_RULE:
        head = (
            f"{title_of(code)} on {pump_id}: {ml_text(delivered_ul)} of "
            f"{ml_text(vtbi_ul)} mL at its last answer."
        )
    # The kernel's own ending; the head says it already.
    kernel_ending = f"; the infusion is {effect}."
    if detail.endswith(kernel_ending):
        detail = detail[: -len(kernel_ending)] + "."
    return f"{head} {detail}".strip()[:500]

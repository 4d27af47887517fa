"""Clinical commands on one pump's session. Every decision is the daemon's (its kernel).

pumpctl only shows what will happen and asks before the commands that commit a nurse to
something: ``program`` and ``adjust`` show the daemon's plan first, ``prime`` asks that the
line is not connected to the patient, ``discharge`` walks the checklist item by item.
``--yes``, ``--line-disconnected`` and ``--confirm-all`` say so for scripts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from pumpd.cli import client as rpc
from pumpd.cli.live.common import (
    Target,
    ask,
    call,
    call_on,
    connect,
    fail,
    pass_target,
    read_pin,
)

EXIT_NOT_CONFIRMED = rpc.EXIT_OTHER


if TYPE_CHECKING:
    from rich.console import Console

# rich, and the render module built on it, are imported by the commands that print plans
# and verdicts, not at import: every other pumpctl command (status --json above all) runs
# without loading rich.


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _echo_result(pump: str, result: Any, what: str) -> None:
    state = result.get("state") if isinstance(result, dict) else None
    click.echo(f"{pump}: {what}" + (f"; session {state}" if state else ""))


def _ml(volume_ul: object) -> str:
    return f"{volume_ul / 1000:.1f}" if isinstance(volume_ul, int) else "?"


def _echo_with_patient(pump: str, result: Any, what: str, after: str = "") -> None:
    """``chair-2 (P-0043): stopped at 8.0 of 100 mL; session STOPPED``: the patient named,
    so a wrong chair number is noticed at once."""
    if not isinstance(result, dict) or result.get("patient_ref") is None:
        _echo_result(pump, result, what)
        return
    vtbi = result.get("vtbi_ul")
    total = f"{vtbi / 1000:g}" if isinstance(vtbi, int) else "?"
    text = f"{what} {_ml(result.get('delivered_ul'))} of {total} mL{after}"
    _echo_result(f"{pump} ({result['patient_ref']})", result, text)


def _order_params(
    pump: str,
    patient: str,
    weight: str,
    protocol: str,
    version: int | None,
    dose: str | None,
    duration: str | None,
    override_reason: str | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pump": pump,
        "patient_ref": patient,
        "weight": weight,
        "protocol": protocol,
    }
    optional = {
        "version": version,
        "dose": dose,
        "duration": duration,
        "override_reason": override_reason,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


@click.command(help="Program a session: shows the daemon's plan and asks before it is recorded.")
@click.argument("pump")
@click.option("--patient", required=True, help="Patient reference (no names).")
@click.option("--weight", required=True, help="Body weight with unit: 82kg, 181lb.")
@click.option("--protocol", "protocol_id", required=True, help="Protocol id.")
@click.option("--version", type=click.IntRange(min=1), help="Protocol version (default latest).")
@click.option("--dose", help="Prescribed dose, default the protocol's: 0.5mg/kg.")
@click.option("--duration", help="Infusion duration, default the protocol's: 40min.")
@click.option(
    "--override-reason",
    help="Reason for overriding soft limits; a second nurse approves it at the double-check "
    "(confirm --approve-override).",
)
@click.option("--yes", is_flag=True, help="Do not ask; record the plan as shown.")
@pass_target
def program(
    target: Target,
    pump: str,
    patient: str,
    weight: str,
    protocol_id: str,
    version: int | None,
    dose: str | None,
    duration: str | None,
    override_reason: str | None,
    yes: bool,
) -> None:
    params = _order_params(
        pump, patient, weight, protocol_id, version, dose, duration, override_reason
    )
    from pumpd.cli.live import render

    console = _console()
    with connect(target) as c:
        preview = call_on(c, "session.plan", params)
        console.print(render.plan_view(preview.get("plan", {}), preview.get("verdicts")))
        # A plan the kernel refuses is not offered for confirmation: the daemon is asked
        # anyway, so its refusal is the answer (exit 3) and is in the audit log.
        refused = bool(preview.get("refused"))
        if not refused and not ask(f"Program {pump} for patient {patient} with this plan?", yes):
            fail(EXIT_NOT_CONFIRMED, "not programmed: the plan was not confirmed")
        result = call_on(c, "session.program", params)
    click.echo(f"{pump}: programmed, session {result.get('session_id')}")
    _awaiting(pump, result.get("awaiting_approval"))


def _awaiting(pump: str, waiting: Any) -> None:
    """Say what now waits for a second nurse, and the command that approves it."""
    if not isinstance(waiting, dict):
        return
    from pumpd.cli.live import render

    for line in render.awaiting_lines(waiting):
        _console().print(line)
    how = (
        f"pumpctl confirm {pump} --weight … --approve-override"
        if waiting.get("what") == "order"
        else f"pumpctl approve {pump}"
    )
    click.echo(f"{pump}: a second nurse must approve this override: {how}")


def _shown_approval(c: rpc.Client, pump: str) -> dict[str, Any] | None:
    """Show what awaits approval on ``pump`` (read from the daemon) and return it."""
    from pumpd.cli.live import render

    views = call_on(c, "status", {"pump": pump})
    waiting = next((v.get("awaiting_approval") for v in views if v.get("awaiting_approval")), None)
    for line in render.awaiting_lines(waiting):
        _console().print(line)
    return waiting if isinstance(waiting, dict) else None


def _codes(waiting: dict[str, Any] | None) -> list[str]:
    return [str(v.get("code")) for v in (waiting or {}).get("verdicts") or []]


@click.command(help="The independent double-check: the second person re-enters the weight.")
@click.argument("pump")
@click.option("--weight", required=True, help="Body weight, typed again independently: 82kg.")
@click.option("--witness", "witness_id", help="Staff id of the second person at this terminal.")
@click.option("--pin-stdin", is_flag=True, help="Read the witness PIN from one line of stdin.")
@click.option(
    "--approve-override",
    is_flag=True,
    help="Also approve the order's soft-limit override (each verdict is listed first).",
)
@pass_target
def confirm(
    target: Target,
    pump: str,
    weight: str,
    witness_id: str | None,
    pin_stdin: bool,
    approve_override: bool,
) -> None:
    params: dict[str, Any] = {"pump": pump, "weight": weight}
    if witness_id is not None:
        pin = read_pin(f"PIN of {witness_id}", pin_stdin)
        params["witness"] = {"staff_id": witness_id, "pin": pin}
    elif pin_stdin:
        fail(rpc.EXIT_USAGE, "--pin-stdin needs --witness ID")
    with connect(target) as c:
        if approve_override:
            waiting = _shown_approval(c, pump)
            params["approve_override"] = True
            params["shown"] = _codes(waiting) if waiting and waiting.get("what") == "order" else []
        result = call_on(c, "session.confirm", params)
    if approve_override:
        by = result.get("override_approved_by")
        click.echo(f"{pump}: override approved by {by}")
    _echo_result(pump, result, "double-check recorded")


@click.command(
    help="A second nurse approves the soft-limit override that holds back an adjustment or "
    "a start. Shows what is approved (each verdict with value and limit); the daemon "
    "refuses if that changed meanwhile."
)
@click.argument("pump")
@click.option("--witness", "witness_id", help="Staff id of the second person at this terminal.")
@click.option("--pin-stdin", is_flag=True, help="Read the witness PIN from one line of stdin.")
@click.option("--yes", is_flag=True, help="Do not ask; approve what is shown.")
@pass_target
def approve(target: Target, pump: str, witness_id: str | None, pin_stdin: bool, yes: bool) -> None:
    params: dict[str, Any] = {"pump": pump}
    if pin_stdin and witness_id is None:
        fail(rpc.EXIT_USAGE, "--pin-stdin needs --witness ID")
    with connect(target) as c:
        waiting = _shown_approval(c, pump)
        if waiting is None:
            fail(rpc.EXIT_REFUSED, f"nothing on {pump} awaits a second nurse's approval")
        if waiting.get("what") == "order":
            fail(
                rpc.EXIT_REFUSED,
                f"the order on {pump} is approved at the double-check: "
                f"pumpctl confirm {pump} --weight … --approve-override",
            )
        if witness_id is not None:
            pin = read_pin(f"PIN of {witness_id}", pin_stdin)
            params["witness"] = {"staff_id": witness_id, "pin": pin}
        params["shown"] = _codes(waiting)
        result = call_on(c, "session.approve", params)
    _echo_result(pump, result, f"override approved by {result.get('approved_by')}")


@click.command(help="Prime the line. Asks that the line is NOT connected to the patient.")
@click.argument("pump")
@click.option(
    "--line-disconnected", is_flag=True, help="Say for a script that the line is disconnected."
)
@pass_target
def prime(target: Target, pump: str, line_disconnected: bool) -> None:
    if not ask(f"Is the line of {pump} DISCONNECTED from the patient?", line_disconnected):
        fail(EXIT_NOT_CONFIRMED, "not primed: the line was not confirmed disconnected")
    result = call(target, "session.prime", {"pump": pump, "line_disconnected": True})
    _echo_result(pump, result, "priming started")


@click.command(help="Start the infusion (the kernel's start checks decide).")
@click.argument("pump")
@click.option(
    "--override-reason",
    help="Reason for starting despite a soft start check (a low battery); a second nurse "
    "approves it (pumpctl approve) unless the protocol accepts the reason alone.",
)
@click.option(
    "--primed-by-hand",
    is_flag=True,
    help="The line was primed by hand (for a pump that cannot prime, e.g. the DULCO flex).",
)
@pass_target
def start(target: Target, pump: str, override_reason: str | None, primed_by_hand: bool) -> None:
    params: dict[str, Any] = {"pump": pump}
    if override_reason is not None:
        params["override_reason"] = override_reason
    if primed_by_hand:
        params["primed_by_hand"] = True
    result = call(target, "session.start", params)
    if result.get("awaiting_approval"):
        _echo_result(pump, result, "start held, nothing sent to the pump")
        _awaiting(pump, result.get("awaiting_approval"))
        return
    _echo_result(pump, result, "started")


@click.command(help="Pause the infusion.")
@click.argument("pump")
@click.option("--reason", help="Why, in words.")
@pass_target
def pause(target: Target, pump: str, reason: str | None) -> None:
    params: dict[str, Any] = {"pump": pump}
    if reason:
        params["reason"] = reason
    _echo_with_patient(pump, call(target, "session.pause", params), "paused at")


@click.command(
    help="Resume a paused infusion, or continue an interrupted one: after a pump alarm "
    "(occlusion, air in line, door open) cleared at the pump and acknowledged, or after "
    "your own stop. Continuing needs --reason; the kernel decides."
)
@click.argument("pump")
@click.option("--reason", help="Why the infusion can go on, in words (needed to continue).")
@pass_target
def resume(target: Target, pump: str, reason: str | None) -> None:
    params: dict[str, Any] = {"pump": pump}
    if reason:
        params["reason"] = reason
    result = call(target, "session.resume", params)
    continued = result.get("continued") if isinstance(result, dict) else None
    if isinstance(continued, dict):
        left = _ml(continued.get("remaining_ul"))
        _echo_with_patient(pump, result, "continued at", f" ({left} mL to go)")
    else:
        _echo_with_patient(pump, result, "resumed at")


@click.command(help="Change duration or dose: shows the daemon's new plan, asks, then applies.")
@click.argument("pump")
@click.option("--duration", help="New total duration: 60min.")
@click.option("--dose", help="New dose: 0.4mg/kg.")
@click.option("--reason", required=True, help="Why, in words.")
@click.option(
    "--override-reason",
    help="Reason for overriding soft limits of the new plan; a second nurse approves it "
    "(pumpctl approve) before anything changes at the pump.",
)
@click.option("--yes", is_flag=True, help="Do not ask; apply the proposal.")
@pass_target
def adjust(
    target: Target,
    pump: str,
    duration: str | None,
    dose: str | None,
    reason: str,
    override_reason: str | None,
    yes: bool,
) -> None:
    if duration is None and dose is None:
        fail(rpc.EXIT_USAGE, "adjust needs --duration or --dose")
    params: dict[str, Any] = {"pump": pump, "reason": reason}
    if override_reason is not None:
        params["override_reason"] = override_reason
    if duration is not None:
        params["duration"] = duration
    if dose is not None:
        params["dose"] = dose
    from pumpd.cli.live import render

    with connect(target) as c:
        proposal = call_on(c, "session.adjust", params)
        plan = proposal.get("plan", {})
        _console().print(render.plan_view(plan, proposal.get("verdicts")))
        if not ask(f"Apply this new plan on {pump}?", yes):
            call_on(c, "session.adjust_cancel", {"pump": pump})
            fail(EXIT_NOT_CONFIRMED, "not adjusted: the proposal was cancelled")
        if proposal.get("awaiting_approval"):
            click.echo(f"{pump}: proposal kept; nothing changes at the pump before approval")
            _awaiting(pump, proposal.get("awaiting_approval"))
            return
        result = call_on(c, "session.adjust_confirm", {"pump": pump})
    _echo_result(pump, result, "adjusted")


@click.command(help="Stop the infusion.")
@click.argument("pump")
@click.option("--reason", required=True, help="Why, in words.")
@pass_target
def stop(target: Target, pump: str, reason: str) -> None:
    _echo_with_patient(
        pump, call(target, "session.stop", {"pump": pump, "reason": reason}), "stopped at"
    )


@click.command(help="End an interrupted infusion instead of continuing it: the observation begins.")
@click.argument("pump")
@click.option("--reason", required=True, help="Why it is not continued, in words.")
@pass_target
def end(target: Target, pump: str, reason: str) -> None:
    _echo_with_patient(
        pump, call(target, "session.end", {"pump": pump, "reason": reason}), "ended at"
    )


@click.command(
    help="Acknowledge the pump's alarms (refused while the pump delivers). Shows the "
    "alarms first and acknowledges exactly those: one that comes in meanwhile refuses it."
)
@click.argument("pump")
@click.option("--note", help="What was found and done.")
@pass_target
def ack(target: Target, pump: str, note: str | None) -> None:
    with connect(target) as c:
        views = call_on(c, "status", {"pump": pump})
        shown = [a for v in views for a in v.get("alarms", [])]
        for a in shown:
            click.echo(f"{pump}: [{a['priority']}] {a['message']}")
        params: dict[str, Any] = {"pump": pump, "alarms": [a["code"] for a in shown]}
        if note:
            params["note"] = note
        _echo_result(pump, call_on(c, "session.acknowledge", params), "alarms acknowledged")


# ASCII digits only, as for every quantity (safety/units.py): \d and int() also take other
# scripts' digits, and int() takes "7_8" as 78.
_BP = re.compile(r"^\s*([0-9]{2,3})\s*/\s*([0-9]{2,3})\s*$")


class _Count(click.ParamType[int]):
    """A whole number typed with the digits 0-9 and nothing else (no sign, no "_")."""

    name = "integer"

    def __init__(self, max_value: int) -> None:
        self.max_value = max_value

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]{1,4}", text, re.ASCII):
            self.fail(f"{value!r} is not a whole number written with the digits 0-9", param, ctx)
        number = int(text)
        if number > self.max_value:
            self.fail(f"{number} is more than {self.max_value}", param, ctx)
        return number


@click.command(help="Record vital signs: --bp 132/84 --hr 78 --spo2 97 [--rr 14].")
@click.argument("pump")
@click.option("--bp", help="Blood pressure, systolic/diastolic mmHg: 132/84.")
@click.option("--hr", type=_Count(400), help="Heart rate, beats/min.")
@click.option("--spo2", type=_Count(100), help="SpO2, %.")
@click.option("--rr", type=_Count(200), help="Respiratory rate, breaths/min.")
@pass_target
def vitals(
    target: Target, pump: str, bp: str | None, hr: int | None, spo2: int | None, rr: int | None
) -> None:
    if bp is not None:
        typed = _BP.match(bp)
        if typed is None:
            fail(rpc.EXIT_USAGE, f"--bp {bp!r} is not systolic/diastolic such as 132/84")
        bp = f"{typed[1]}/{typed[2]}"  # "132 / 84" is sent as the daemon reads it: 132/84
    given = {"bp": bp, "hr": hr, "spo2": spo2, "rr": rr}
    params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if not params:
        fail(rpc.EXIT_USAGE, "vitals needs at least one of --bp, --hr, --spo2, --rr")
    params["pump"] = pump
    result = call(target, "session.vitals", params)
    _echo_result(pump, result, "vitals recorded")
    from pumpd.cli.live import render

    for line in render.verdict_lines(result.get("verdicts") or []):
        _console().print(line)


@click.command(help="Add a clinical note to the session's record.")
@click.argument("pump")
@click.argument("text")
@pass_target
def note(target: Target, pump: str, text: str) -> None:
    call(target, "session.note", {"pump": pump, "text": text})
    click.echo(f"{pump}: note recorded")


@click.command(help="Begin the observation after an early stop.")
@click.argument("pump")
@pass_target
def observe(target: Target, pump: str) -> None:
    _echo_result(pump, call(target, "session.observe", {"pump": pump}), "observation started")


@click.command(help="Abandon a session before any start was sent.")
@click.argument("pump")
@click.option("--reason", required=True, help="Why, in words.")
@pass_target
def abort(target: Target, pump: str, reason: str) -> None:
    _echo_result(pump, call(target, "session.abort", {"pump": pump, "reason": reason}), "aborted")


@click.command(help="Discharge: walks the protocol's checklist, one item at a time.")
@click.argument("pump")
@click.option("--confirm-all", is_flag=True, help="Confirm every item (scripts).")
@pass_target
def discharge(target: Target, pump: str, confirm_all: bool) -> None:
    with connect(target) as c:
        # The facts first (observation time, vitals): nobody answers questions to be told
        # afterwards that 23 minutes remain. A refusal exits 3 naming what is missing.
        call_on(c, "session.discharge", {"pump": pump, "confirmed": [], "gates_only": True})
        checklist = call_on(c, "session.checklist", {"pump": pump})
        confirmed: list[str] = []
        for item in checklist.get("items", []):
            text = str(item.get("text", item.get("id")))
            if item.get("computed"):
                click.echo(f"  [x] {text} (computed from the recorded vital signs)")
                continue
            if confirm_all:
                click.echo(f"  [x] {text}")
            elif not ask(f"  {text}?", False):
                fail(EXIT_NOT_CONFIRMED, f"not discharged: {text!r} was not confirmed")
            confirmed.append(str(item.get("id")))
        result = call_on(c, "session.discharge", {"pump": pump, "confirmed": confirmed})
    _echo_result(pump, result, "discharged")


COMMANDS = (
    program,
    confirm,
    approve,
    prime,
    start,
    pause,
    resume,
    adjust,
    stop,
    end,
    ack,
    vitals,
    note,
    observe,
    abort,
    discharge,
)

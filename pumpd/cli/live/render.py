"""Rich views of what the daemon answers: pumps, a pump's status, alarms, plans, staff.

Pure functions from the wire's dicts (``docs/control-socket.md``) to rich renderables;
nothing here talks to the daemon, so ``status``, ``watch`` and ``watch --once`` show the
same thing. Missing fields are shown as "-" rather than guessed: the daemon is the truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pumpd.cli.live.capabilities import capability_text, reading_rows
from pumpd.cli.live.text import clock as clock
from pumpd.cli.live.text import dash as dash
from pumpd.cli.live.text import duration as duration
from pumpd.cli.live.text import local_minute as local_minute
from pumpd.cli.live.text import ml as ml
from pumpd.cli.live.text import number as number
from pumpd.cli.live.text import seconds_until as seconds_until

_PRIORITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}
_SEVERITY_STYLE = {"hard": "bold red", "soft": "yellow", "note": "dim"}


def _message(item: object) -> str:
    if isinstance(item, Mapping):
        text = item.get("message") or item.get("text") or item.get("code") or ""
        code = item.get("code")
        return f"{text} ({code})" if code and code != text else str(text)
    return str(item)


def _priority(item: object) -> str:
    return str(item.get("priority", "")).lower() if isinstance(item, Mapping) else ""


def pumps_table(pumps: Sequence[Mapping[str, Any]]) -> Table:
    """What a nurse scans first comes first; a narrow terminal folds a cell, never cuts it
    to "INF…"."""
    table = Table(title="Pumps")
    columns = ("pump", "answers", "pump state", "session", "transport", "address", "unit")
    for column in columns:
        table.add_column(column, overflow="fold")
    for p in pumps:
        reachable = p.get("reachable")
        session: str | Text = dash(p.get("session_state"))
        if p.get("supervised") is False:
            # A configured pump pumpd does not supervise: say so and why, never "-".
            session = Text(f"NOT SUPERVISED: {dash(p.get('not_supervised_reason'))}", "bold red")
        table.add_row(
            dash(p.get("pump_id")),
            Text("yes", "green") if reachable else Text("NO", "bold red"),
            dash(p.get("pump_state")),
            session,
            dash(p.get("transport")),
            dash(p.get("address")),
            dash(p.get("unit")),
        )
    return table


def pumps_view(pumps: Sequence[Mapping[str, Any]]) -> Group:
    """The pumps table, then what each pump can do and report (a line each, folded)."""
    lines = [
        Text.assemble(
            (f"{dash(p.get('pump_id'))}: ", "bold"), capability_text(p.get("capabilities"))
        )
        for p in pumps
    ]
    return Group(pumps_table(pumps), Text("Capabilities", "italic"), *lines)


def alarm_lines(items: Iterable[object], label: str) -> list[Text]:
    lines = []
    for item in items:
        priority = _priority(item)
        style = _PRIORITY_STYLE.get(priority, "yellow")
        head = f"{label} {priority.upper()}".strip()
        lines.append(Text.assemble((head, style), " ", _message(item)))
    return lines


BAR_WIDTH = 30


def volume_bar(delivered: object, vtbi: object) -> Text:
    """``[■■■■■□□□…] 32.319 of 100.000 mL (32 %)``: plain characters, so it reads the same
    on a terminal, in a log and in a test."""
    figures = f"{ml(delivered)} of {ml(vtbi)} mL"
    if not isinstance(delivered, int) or not isinstance(vtbi, int) or vtbi <= 0:
        return Text(figures)
    fraction = max(0.0, min(1.0, delivered / vtbi))
    filled = round(fraction * BAR_WIDTH)
    return Text.assemble(
        "[",
        ("■" * filled, "green"),
        ("□" * (BAR_WIDTH - filled), "dim"),
        f"] {figures} ({100 * delivered / vtbi:.0f} %)",
    )


def pump_view(view: Mapping[str, Any]) -> Panel:
    """One pump as a nurse needs it: state, progress, dose, rates, time, alarms, vitals."""
    pump_id = dash(view.get("pump_id"))
    session_state = view.get("session_state")
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="dim", no_wrap=True)
    figures.add_column()
    reachable = view.get("reachable", True)
    pump_state = Text(dash(view.get("pump_state")))
    if not reachable:
        pump_state = Text("NOT ANSWERING", "bold red")
    figures.add_row("pump", pump_state)
    for label, reading in reading_rows(view):
        figures.add_row(label, reading)
    figures.add_row("session", Text(dash(session_state), "bold"))
    if view.get("session_id"):
        figures.add_row("session id", dash(view.get("session_id")))
        figures.add_row(
            "patient / protocol",
            f"{dash(view.get('patient_ref'))} / {dash(view.get('protocol_id'))}",
        )
        delivered, vtbi = view.get("delivered_ul"), view.get("vtbi_ul")
        figures.add_row("infused", volume_bar(delivered, vtbi))
        figures.add_row("expected (independent)", f"{ml(view.get('expected_ul'))} mL")
        drug = dash(view.get("drug"))
        figures.add_row(
            "dose delivered",
            f"{number(view.get('delivered_mg'), 2)} of {number(view.get('prescribed_mg'), 2)} mg"
            f" {drug} ({number(view.get('concentration_mg_ml'), 3)} mg/mL)",
        )
        figures.add_row(
            "flow | dose rate",
            f"{number(view.get('rate_ml_h'))} mL/h | {number(view.get('dose_rate_mg_h'), 3)} mg/h",
        )
        figures.add_row("time remaining", duration(view.get("remaining_s")))
        ended = view.get("delivery_ended")
        if isinstance(ended, Mapping):
            causes = ", ".join(ended.get("interrupted_by") or []) or "-"
            since = clock(ended.get("observation_started_at"), view.get("timezone"))
            figures.add_row(
                "delivery ended",
                Text(
                    f"OBSERVATION since {since}: ended by {causes} (rule {ended.get('rule')})",
                    "bold",
                ),
            )
        for label, row in _countdowns(view):
            figures.add_row(label, row)
    backlog = view.get("audit_backlog")
    if backlog:
        figures.add_row("audit backlog", Text(f"{backlog} event(s) not yet written", "bold red"))
    parts: list[RenderableType] = [figures]
    parts.extend(Text(f"AUDIT: {notice}", "bold red") for notice in view.get("audit_notices") or [])

    parts.extend(awaiting_lines(view.get("awaiting_approval")))
    parts.extend(alarm_lines(view.get("alarms") or [], "ALARM"))
    parts.extend(alarm_lines(view.get("reminders") or [], "REMINDER"))
    title = f"[bold]{pump_id}[/]"
    if view.get("simulated"):
        title += " [magenta](SIMULATION)[/]"
    border = "red" if view.get("alarms") else ("green" if session_state == "INFUSING" else "blue")
    return Panel(Group(*parts), title=title, border_style=border, expand=False)


PAUSE_WARN_S = 5 * 60
"""A pause's auto-stop closer than this is shown in red."""


def _countdowns(view: Mapping[str, Any]) -> list[tuple[str, Text]]:
    """Pause auto-stop, vitals due and earliest discharge: time left (one duration format)
    and the moment in the clinic's zone, both from the daemon's one answer."""
    zone, as_of = view.get("timezone"), view.get("as_of")
    rows: list[tuple[str, Text]] = []
    stop_at = view.get("pause_auto_stop_at")
    left = seconds_until(stop_at, as_of)
    if left is not None:
        text = f"in {duration(max(0, left))} (at {clock(stop_at, zone)}) unless resumed"
        rows.append(("pause auto-stop", Text(text, "bold red" if left < PAUSE_WARN_S else "")))
    due_at = view.get("vitals_due_at")
    due = view.get("vitals_due_in_s")
    if due is None:
        due = seconds_until(due_at, as_of)
    if due is not None:
        overdue = isinstance(due, int | float) and due < 0
        text = f"overdue by {duration(-due)}" if overdue else f"in {duration(due)}"
        if due_at:
            text += f" ({'since' if overdue else 'at'} {clock(due_at, zone)})"
        rows.append(("vitals due", Text(text, "bold red" if overdue else "")))
    discharge_at = view.get("earliest_discharge_at")
    left = seconds_until(discharge_at, as_of)
    if left is not None:
        when = local_minute(discharge_at, zone)
        if left > 0:
            shown = Text(f"in {duration(left)} (not before {when})")
        else:
            shown = Text(f"now (observation time over since {when})", "green")
        rows.append(("earliest discharge", shown))
    return rows


def status_views(views: Sequence[Mapping[str, Any]]) -> RenderableType:
    if not views:
        return Text("no pumps configured")
    return Group(*(pump_view(v) for v in views))


_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}


def by_priority(alarms: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Highest priority first (IEC 60601-1-8: high, medium, low); the daemon's order within."""
    return sorted(alarms, key=lambda a: _PRIORITY_RANK.get(_priority(a), len(_PRIORITY_RANK)))


def alarms_table(alarms: Sequence[Mapping[str, Any]]) -> RenderableType:
    """One alarm per paragraph: priority, pump, the sentence, then code and source.

    Not a table: at a narrow terminal a table squeezes the sentence into a column of a few
    letters or drops it; a paragraph wraps and loses nothing.
    """
    if not alarms:
        return Text("No alarms.", "green")
    lines: list[RenderableType] = [Text(f"Alarms ({len(alarms)})", "bold")]
    for a in alarms:
        priority = _priority(a)
        lines.append(
            Text.assemble(
                (priority.upper() or "-", _PRIORITY_STYLE.get(priority, "")),
                (f" {dash(a.get('pump_id'))}", "bold"),
                f": {dash(a.get('message'))} ",
                (f"({dash(a.get('code'))}, from {dash(a.get('source'))})", "dim"),
            )
        )
    return Group(*lines)


_WAITING_FOR = {
    "order": "the order",
    "adjustment": "the adjustment",
    "start": "the start",
}


def awaiting_lines(waiting: Mapping[str, Any] | None) -> list[Text]:
    """What a second person's approval would approve: what it holds back, who gave the
    reason and why, and each soft verdict with its value, limit and unit."""
    if not waiting:
        return []
    what = _WAITING_FOR.get(str(waiting.get("what")), dash(waiting.get("what")))
    lines = [
        Text.assemble(
            ("AWAITING APPROVAL", "bold yellow"),
            f" of {what}: override by {dash(waiting.get('requested_by'))}, reason "
            f'"{dash(waiting.get("reason"))}"',
        )
    ]
    for v in waiting.get("verdicts") or []:
        figures = ""
        if v.get("value") is not None and v.get("limit") is not None:
            unit = v.get("unit") or ""
            figures = f": {v['value']} {unit} (limit {v['limit']} {unit})"
        lines.append(Text(f"  - {dash(v.get('code'))}{figures}; {dash(v.get('message'))}"))
    return lines


def verdict_lines(verdicts: Iterable[Mapping[str, Any]]) -> list[Text]:
    lines = []
    for v in verdicts:
        severity = str(v.get("severity", "")).lower()
        lines.append(
            Text.assemble(
                (severity.upper(), _SEVERITY_STYLE.get(severity, "")),
                f" {dash(v.get('message'))} ({dash(v.get('code'))})",
            )
        )
    return lines


_PLAN_ROWS: tuple[tuple[str, str, str], ...] = (
    ("patient weight", "weight_kg", "kg"),
    ("dosing weight", "dosing_weight_kg", "kg"),
    ("dose", "dose_mg_per_kg", "mg/kg"),
    ("total dose", "dose_mg", "mg"),
    ("flow rate", "rate_ml_h", "mL/h"),
    ("dose rate", "dose_rate_mg_kg_h", "mg/kg/h"),
    ("volume (VTBI)", "volume_ml", "mL"),
    ("concentration", "concentration_mg_per_ml", "mg/mL"),
    ("duration", "duration_min", "min"),
    ("expected duration at pump rate", "expected_duration_min", "min"),
    ("prepare", "container_drug_mg", "mg"),
    ("in", "container_volume_ml", "mL"),
    ("priming volume", "priming_volume_ml", "mL"),
    ("dose reaching the patient", "dose_to_patient_mg", "mg"),
    ("KVO after the end", "kvo_rate_ml_h", "mL/h"),
)


def plan_view(plan: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]] | None) -> Group:
    """A plan as the daemon computed it (``session.plan``/``program``/``adjust``)."""
    table = Table(title=f"Plan {dash(plan.get('protocol'))}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, key, unit in _PLAN_ROWS:
        if plan.get(key) is not None:
            table.add_row(label, f"{plan[key]} {unit}")
    if plan.get("vtbi_ul") is not None:
        table.add_row("VTBI on the wire", f"{plan['vtbi_ul']} µL")
    parts: list[RenderableType] = [table]
    all_verdicts = list(verdicts if verdicts is not None else plan.get("verdicts") or [])
    parts.extend(verdict_lines(all_verdicts))
    override = plan.get("override")
    if plan.get("refused"):
        parts.append(Text("REFUSED: a hard limit is violated; this order cannot be given.", "red"))
    elif isinstance(override, Mapping) and override.get("required"):
        who = " and a second person" if override.get("second_person") else ""
        codes = ", ".join(str(c) for c in override.get("codes") or [])
        parts.append(Text(f"NEEDS OVERRIDE: a reason{who}, covering {codes}.", "yellow"))
    return Group(*parts)


def staff_table(staff: Sequence[Mapping[str, Any]], zone_name: object = None) -> Table:
    table = Table(title="Staff registry")
    for column in ("staff id", "name", "role", "enabled", "locked until"):
        table.add_column(column)
    for s in staff:
        table.add_row(
            dash(s.get("staff_id")),
            dash(s.get("name")),
            dash(s.get("role")),
            "yes" if s.get("enabled") else Text("no", "red"),
            clock(s.get("locked_until"), zone_name, date=True) if s.get("locked_until") else "-",
        )
    return table


def whoami_view(me: Mapping[str, Any]) -> Table:
    table = Table(show_header=False, title="Who am I (as pumpd sees it)")
    table.add_column("field", style="dim")
    table.add_column("value")
    table.add_row("OS user", f"{dash(me.get('user'))} (uid {dash(me.get('uid'))})")
    table.add_row("groups", ", ".join(str(g) for g in me.get("groups") or []) or "-")
    source = me.get("groups_source")
    table.add_row("groups from", _GROUPS_SOURCE.get(str(source), dash(source)))
    table.add_row("roles", _names(me.get("roles")))
    table.add_row("acting person", dash(me.get("acting")))
    table.add_row("acting roles", _names(me.get("acting_roles")))
    if me.get("timezone"):
        table.add_row("clinic time zone", dash(me.get("timezone")))
    if me.get("simulated"):
        table.add_row("pumpd", Text("SIMULATION mode", "magenta"))
    return table


_GROUPS_SOURCE = {
    "so_peergroups": "the connecting process (SO_PEERGROUPS)",
    "userdb": "the user database",
}


def _names(values: object) -> str:
    """A list of roles as text; an empty one says "none" (no role is not a missing field)."""
    if not isinstance(values, list):
        return "-"
    return ", ".join(str(v) for v in values) or "none"

"""``pumpaudit sessions``, ``show`` and ``patient``: sessions folded from their events."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pumpd.audit import SessionSummary, iter_sessions, patient_course, session_timeline
from pumpd.cli import timeline
from pumpd.cli.audit.events import _event_json, _json_array
from pumpd.cli.audit.group import _connection, _json, _since, _site, _until, _UsageFailure, main
from pumpd.cli.audit.listing import _lines


def _session_cells(s: SessionSummary) -> list[str]:
    return [
        s.session_id,
        s.patient_ref or "",
        s.protocol,
        _mg(s.prescribed_dose_mg),
        "" if s.delivered_volume_ul is None else f"{s.delivered_volume_ul / 1000:.3f}",
        _mg(s.delivered_dose_mg),
        (s.started_at or "-")[:19],
        (s.ended_at or "-")[:19],
        s.outcome + (" SIM" if s.simulated else ""),
        str(sum(s.alarms.values())),
        str(len(s.overrides)),
        ",".join(sorted(s.nurses)),
    ]


_SESSION_HEAD = [
    "session",
    "patient",
    "protocol",
    "presc mg",
    "deliv mL",
    "deliv mg",
    "start",
    "end",
    "outcome",
    "alarms",
    "overr",
    "nurses",
]
_SESSION_W = [14, 12, 26, 9, 9, 9, 19, 19, 14, 6, 5, 0]
"""Wide enough for the shipped protocol ids with their version and "programmed SIM"."""


def _mg(value: Any) -> str:
    return "" if value is None else format(value, "f")


@main.command("sessions")
@_site
@_since
@_until
@click.option("--patient", help="only this pseudonymous patient reference")
@_json
@click.pass_context
def sessions_cmd(
    ctx: click.Context, since: str | None, until: str | None, patient: str | None, as_json: bool
) -> None:
    """One line per session (by time first programmed), derived from its events."""
    with _connection(ctx) as conn:
        sessions = iter_sessions(conn, since=since, until=until, patient=patient)
        if as_json:
            _json_array((s.as_json() for s in sessions), sys.stdout)
            return
        _lines(_SESSION_HEAD, (_session_cells(s) for s in sessions), _SESSION_W)


@main.command("show")
@_site
@click.argument("session_id")
@click.option(
    "--checkpoints",
    is_flag=True,
    help="also list the recovery snapshots (session.checkpointed), summarised",
)
@_json
@click.pass_context
def show_cmd(ctx: click.Context, session_id: str, checkpoints: bool, as_json: bool) -> None:
    """One session: its summary and the timeline of its events, one line each."""
    with _connection(ctx) as conn:
        summary, events = session_timeline(conn, session_id)
    if not events:
        raise _UsageFailure(f"no events for session {session_id!r}")
    if as_json:
        click.echo(
            json.dumps(
                {"session": summary.as_json(), "events": [_event_json(e) for e in events]},
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"session {session_id}")
    fields = summary.as_json()
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        click.echo(f"  {key.ljust(width)}  {text}")
    click.echo("")
    shown = [e for e in events if checkpoints or e.event_type != timeline.CHECKPOINT]
    _lines(
        ["seq", "time (UTC)", "event", "actor", "details"],
        (
            [str(e.seq), e.occurred_at, e.event_type, e.actor_name, timeline.details(e)]
            for e in shown
        ),
        widths=[6, 27, 24, 14, 0],
    )
    hidden = len(events) - len(shown)
    if hidden:
        click.echo(
            f"({hidden} {timeline.CHECKPOINT} events, the recovery snapshots, not listed:"
            " --checkpoints lists them, --json prints everything)"
        )


@main.command("patient")
@_site
@click.argument("patient_ref")
@_json
@click.pass_context
def patient_cmd(ctx: click.Context, patient_ref: str, as_json: bool) -> None:
    """A patient's course: every session, its number in the series, the cumulative dose."""
    with _connection(ctx) as conn:
        course = patient_course(conn, patient_ref)
        if as_json:
            _json_array((c.as_json() for c in course), sys.stdout)
            return
        _lines(
            ["#", "date", "session", "protocol", "presc mg", "deliv mg", "cumul mg", "outcome"],
            (
                [
                    str(c.number),
                    (c.summary.programmed_at or "")[:10],
                    c.summary.session_id,
                    c.summary.protocol,
                    _mg(c.summary.prescribed_dose_mg),
                    _mg(c.summary.delivered_dose_mg),
                    _mg(c.cumulative_dose_mg),
                    c.summary.outcome,
                ]
                for c in course
            ),
            widths=[3, 10, 14, 26, 9, 9, 9, 0],
        )

"""``pumpaudit events`` and ``export``: the events themselves, streamed as lines, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, TextIO

import click

from pumpd.audit import (
    COLUMNS,
    EventFilter,
    EventRecord,
    SessionSummary,
    iter_events,
    iter_sessions,
)
from pumpd.cli.audit.group import _connection, _json, _since, _site, _until, _UsageFailure, main
from pumpd.cli.audit.listing import _lines


def _event_json(e: EventRecord) -> dict[str, Any]:
    d = asdict(e)
    d["payload"] = json.loads(e.payload)
    return d


def _json_array(items: Iterable[dict[str, Any]], stream: TextIO) -> None:
    stream.write("[")
    first = True
    for item in items:
        stream.write("\n" if first else ",\n")
        stream.write(json.dumps(item, ensure_ascii=False))
        first = False
    stream.write("\n]\n" if not first else "]\n")


def _filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--session", help="session id"),
            click.option("--pump", help="pump id"),
            click.option("--patient", help="pseudonymous patient reference"),
            click.option("--actor", help="actor user name"),
            click.option("--type", "event_type", help="event type, or a prefix like alarm.*"),
            _since,
            _until,
        ]
    ):
        f = opt(f)
    return f


@main.command("events")
@_site
@_filter_options
@_json
@click.pass_context
def events_cmd(ctx: click.Context, /, as_json: bool, **filters: Any) -> None:
    """Events in order, filtered."""
    with _connection(ctx) as conn:
        events = iter_events(conn, EventFilter(**filters))
        if as_json:
            _json_array((_event_json(e) for e in events), sys.stdout)
            return
        _lines(
            ["seq", "time (UTC)", "type", "actor", "pump", "session", "patient", "payload"],
            (
                [
                    str(e.seq),
                    e.occurred_at,
                    e.event_type,
                    e.actor_name,
                    e.pump_id or "",
                    e.session_id or "",
                    e.patient_ref or "",
                    e.payload + (" [SIMULATED]" if e.simulated else ""),
                ]
                for e in events
            ),
            widths=[7, 27, 24, 14, 10, 14, 12, 0],
        )


@main.command("export")
@_site
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--what",
    type=click.Choice(["events", "sessions"]),
    default="events",
    show_default=True,
    help="every column of every event, or one flat row per session",
)
@_filter_options
@click.pass_context
def export_cmd(ctx: click.Context, /, fmt: str, what: str, **filters: Any) -> None:
    """Every column of every (filtered) event, or one row per session, streamed to stdout."""
    if what == "sessions":
        _export_sessions(ctx, fmt, filters)
        return
    with _connection(ctx) as conn:
        events = iter_events(conn, EventFilter(**filters))
        out = sys.stdout
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for e in events:
                writer.writerow(astuple_for_csv(e))
        elif fmt == "json":
            _json_array((_event_json(e) for e in events), out)
        else:
            for e in events:
                out.write(json.dumps(_event_json(e), ensure_ascii=False) + "\n")


SESSION_COLUMNS = (
    "session_id",
    "patient_ref",
    "pump_id",
    "protocol",
    "prescribed_dose_mg",
    "rate_ml_h",
    "planned_volume_ul",
    "programmed_at",
    "started_at",
    "ended_at",
    "outcome",
    "delivered_volume_ul",
    "delivered_dose_mg",
    "alarms",
    "alarms_by_code",
    "overrides",
    "override_reasons",
    "nurses",
    "simulated",
)
"""One flat row per session: lists and counts become one cell each (``code=n;code=n``)."""


def session_row(s: SessionSummary) -> dict[str, Any]:
    data = s.as_json()
    data["alarms_by_code"] = ";".join(f"{k}={v}" for k, v in data["alarms_by_code"].items())
    data["override_reasons"] = ";".join(
        f"{o['reason_code']} ({o['approved_by']})" for o in s.overrides
    )
    data["overrides"] = len(s.overrides)
    data["nurses"] = ";".join(data["nurses"])
    return {c: data[c] for c in SESSION_COLUMNS}


def _export_sessions(ctx: click.Context, fmt: str, filters: dict[str, Any]) -> None:
    options = {"session": "--session", "pump": "--pump", "actor": "--actor", "event_type": "--type"}
    unsupported = [flag for key, flag in options.items() if filters.get(key) is not None]
    if unsupported:
        raise _UsageFailure(
            "--what sessions takes --patient, --since and --until only, "
            f"not {', '.join(unsupported)}"
        )
    with _connection(ctx) as conn:
        sessions = iter_sessions(
            conn, since=filters["since"], until=filters["until"], patient=filters["patient"]
        )
        out = sys.stdout
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(SESSION_COLUMNS)
            for s in sessions:
                row = session_row(s)
                writer.writerow([_csv_cell(row[c]) for c in SESSION_COLUMNS])
        elif fmt == "json":
            _json_array((s.as_json() for s in sessions), out)
        else:
            for s in sessions:
                out.write(json.dumps(s.as_json(), ensure_ascii=False) + "\n")


def astuple_for_csv(e: EventRecord) -> list[Any]:
    """Columns in table order; the payload stays its exact stored (hashed) text."""
    d = asdict(e)
    return [_csv_cell(d[c]) for c in COLUMNS]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

"""``pumpaudit``: the auditors' tool. Read-only; every read command also speaks ``--json``.

Exit status: 0 done (``verify``: chain intact), 1 ``verify`` found a break, 2 bad usage or
input, 3 the database cannot be opened or is at a schema this tool does not know.
Lists are streamed row by row (human lines or a JSON array written as it goes), so an
export of millions of events runs in constant memory.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import migrate
from pumpd.audit.chain import COLUMNS, EventRecord, Hasher, load_key
from pumpd.audit.checkpoint import parse_checkpoint
from pumpd.audit.errors import AuditError
from pumpd.audit.queries import (
    EventFilter,
    QueryInputError,
    SessionSummary,
    build_report,
    iter_events,
    iter_sessions,
    parse_time,
    patient_course,
    session_timeline,
)
from pumpd.audit.verify import verify
from pumpd.cli import timeline
from pumpd.db import DatabaseUrlError, make_engine, url_from_env

EXIT_BROKEN = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3


class _UsageFailure(click.ClickException):
    exit_code = EXIT_USAGE


class _DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


@contextmanager
def _connection(ctx: click.Context) -> Iterator[Connection]:
    engine: Engine = ctx.obj["engine"]()
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc.__class__.__name__}: {exc}") from exc
    except QueryInputError as exc:
        raise _UsageFailure(str(exc)) from exc
    finally:
        engine.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database",
    envvar="PUMPD_DATABASE",
    metavar="URL",
    help="sqlite:///PATH, a file path, or postgresql://... (default: $PUMPD_DATABASE)",
)
@click.pass_context
def main(ctx: click.Context, database: str | None) -> None:
    """Read and verify the pumpd audit log."""

    def open_engine() -> Engine:
        try:
            engine = make_engine(url_from_env(database), read_only=True)
        except DatabaseUrlError as exc:
            raise _UsageFailure(str(exc)) from exc
        try:
            migrate.require_current(engine)
        except (AuditError, SQLAlchemyError) as exc:
            engine.dispose()
            raise _DatabaseFailure(f"cannot use this database: {exc}") from exc
        return engine

    ctx.obj = {"engine": open_engine}


def _time_option(name: str, help_text: str) -> Callable[[Any], Any]:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_time(value)
        except QueryInputError as exc:
            raise click.BadParameter(str(exc)) from exc

    return click.option(name, callback=convert, metavar="TIME", help=help_text)


_since = _time_option("--since", "from this UTC time (ISO 8601; a date means 00:00 UTC)")
_until = _time_option("--until", "before this UTC time (exclusive)")
_json = click.option("--json", "as_json", is_flag=True, help="machine-readable JSON output")


# -- verify -----------------------------------------------------------------------------


@main.command("verify")
@click.option("--checkpoint", metavar="SEQ:HASH", help="a head witnessed outside the database")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HMAC key of a keyed chain",
)
@_json
@click.pass_context
def verify_cmd(
    ctx: click.Context, checkpoint: str | None, key_file: Path | None, as_json: bool
) -> None:
    """Recompute the chain; exit 1 naming the first bad sequence number."""
    try:
        witnessed = parse_checkpoint(checkpoint) if checkpoint else None
        hasher = Hasher(load_key(key_file) if key_file else None)
    except AuditError as exc:
        raise _UsageFailure(str(exc)) from exc
    engine: Engine = ctx.obj["engine"]()
    try:
        result = verify(engine, hasher, witnessed)
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc}") from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "head": str(result.head),
                    "keyed": result.keyed,
                    "problem": asdict(result.problem) if result.problem else None,
                }
            )
        )
    elif result.problem is None:
        click.echo(
            f"OK: {result.checked} events, chain intact "
            f"({'keyed' if result.keyed else 'unkeyed'}); head {result.head}"
        )
    else:
        p = result.problem
        click.echo(f"BROKEN at seq {p.seq}: {p.kind}: {p.detail}", err=True)
        click.echo(f"{result.checked} events before it verified; last good head {result.head}")
    if result.problem is not None:
        ctx.exit(EXIT_BROKEN)


# -- events and export ------------------------------------------------------------------


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl"]),
    default="jsonl",
    show_default=True,
)
@_filter_options
@click.pass_context
def export_cmd(ctx: click.Context, /, fmt: str, **filters: Any) -> None:
    """Every column of every (filtered) event, streamed to stdout."""
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


def _lines(headers: list[str], rows: Iterable[list[str]], widths: list[int]) -> None:
    """A streamed listing with minimum column widths: rich tables need every row first.

    Cells are padded, never cut: an auditor must not see a shortened id or protocol.
    """

    def fmt(cells: list[str]) -> str:
        parts = []
        for cell, width in zip(cells, widths, strict=True):
            parts.append(cell.ljust(width))
        return " ".join(parts).rstrip()

    click.echo(fmt(headers))
    click.echo(fmt(["-" * (w or 8) for w in widths]))
    count = 0
    for row in rows:
        click.echo(fmt(row))
        count += 1
    click.echo(f"({count} rows)")


# -- sessions, show, patient, report -------------------------------------------------------


def _session_cells(s: SessionSummary) -> list[str]:
    return [
        s.session_id,
        s.patient_ref or "",
        s.protocol,
        _mg(s.prescribed_dose_mg),
        "" if s.delivered_volume_ul is None else f"{s.delivered_volume_ul / 1000:.3f}",
        _mg(s.delivered_dose_mg),
        (s.started_at or s.programmed_at or "")[:19],
        (s.ended_at or "")[:19],
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


@main.command("report")
@_since
@_until
@_json
@click.pass_context
def report_cmd(ctx: click.Context, since: str | None, until: str | None, as_json: bool) -> None:
    """Sessions, alarms by type, overrides with reasons and activity per nurse for a period."""
    with _connection(ctx) as conn:
        report = build_report(conn, since, until)
    data = report.as_json()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    console = _out()
    console.print(f"Period: {since or 'start'} .. {until or 'now'}")
    console.print(
        f"Sessions: {data['sessions']} {data['sessions_by_outcome']}; "
        f"delivered {data['delivered_dose_mg']} mg"
    )
    alarms = Table("alarm code", "count", title="alarms")
    for code, n in data["alarms_by_code"].items():
        alarms.add_row(code, str(n))
    console.print(alarms)
    overrides = Table(
        "seq", "time", "session", "reason by", "second person", "verdicts", "reason",
        title="overrides",
    )  # fmt: skip
    for o in data["overrides"]:
        overrides.add_row(
            str(o["seq"]),
            o["occurred_at"],
            o["session_id"] or "",
            o["approved_by"],
            o.get("witness") or "-",
            ", ".join(o.get("verdict_codes") or []),
            f"{o['reason_code']}: {o['reason']}",
        )
    console.print(overrides)
    nurses = Table("nurse", "activity", title="per nurse")
    for nurse, counts in data["per_nurse"].items():
        nurses.add_row(nurse, ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(nurses)


if __name__ == "__main__":
    main()

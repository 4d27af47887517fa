"""``pumpaudit``: the auditors' tool. Read-only; every read command also speaks ``--json``.

Exit status: 0 done (``verify``: chain intact), 1 ``verify`` found a break, 2 bad usage or
input, 3 the database cannot be opened or is at a schema this tool does not know, 4 ``fhir
--post``: the FHIR server could not be reached or refused the bundle.
Lists are streamed row by row (human lines or a JSON array written as it goes), so an
export of millions of events runs in constant memory.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import migrate
from pumpd.audit.chain import COLUMNS, EventRecord, Hasher, load_key
from pumpd.audit.checkpoint import parse_checkpoint
from pumpd.audit.errors import AuditError
from pumpd.audit.heads import read_heads
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
from pumpd.central import migrate as central_migrate
from pumpd.central.verify import UnknownSite, central_findings, check_site, narrow_to_site
from pumpd.cli import timeline
from pumpd.db import DatabaseUrlError, make_engine, url_from_env
from pumpd.report.localtime import UnknownTimeZone, clinic_zone
from pumpd.report.record import (
    PATIENT_SYSTEM,
    NoSuchSession,
    SessionRecord,
    dosing_weights,
    gather,
    open_library,
    record_json,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXIT_BROKEN = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_POST = 4


class _UsageFailure(click.ClickException):
    exit_code = EXIT_USAGE


class _DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


class _PostFailure(click.ClickException):
    exit_code = EXIT_POST


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
@click.option(
    "--site",
    metavar="SITE",
    help="at a central store: the site whose log to read (docs/central.md)",
)
@click.pass_context
def main(ctx: click.Context, database: str | None, site: str | None) -> None:
    """Read and verify the pumpd audit log (a site's, or one site's at a central store)."""

    def open_engine() -> Engine:
        try:
            engine = make_engine(url_from_env(database), read_only=True)
        except DatabaseUrlError as exc:
            raise _UsageFailure(str(exc)) from exc
        chosen = ctx.obj["site"]
        try:
            if chosen is None:
                migrate.require_current(engine)
            else:
                _central_scope(engine, chosen)
        except (AuditError, SQLAlchemyError) as exc:
            engine.dispose()
            raise _DatabaseFailure(f"cannot use this database: {exc}") from exc
        except UnknownSite as exc:
            engine.dispose()
            raise _UsageFailure(str(exc)) from exc
        return engine

    ctx.obj = {"engine": open_engine, "site": site}


def _central_scope(engine: Engine, site: str) -> None:
    """A central store's views, narrowed to ``site`` (every connection of ``engine``)."""
    narrow_to_site(engine, site)  # before the first connection: it applies at connect
    central_migrate.require_current(engine)
    with engine.connect() as conn:
        check_site(conn, site)


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


def _set_site(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().obj["site"] = value


_site = click.option(
    "--site",
    metavar="SITE",
    expose_value=False,
    callback=_set_site,
    help="at a central store: the site whose log to read (as pumpaudit --site)",
)


# -- verify -----------------------------------------------------------------------------


@main.command("verify")
@_site
@click.option("--checkpoint", metavar="SEQ:HASH", help="a head witnessed outside the database")
@click.option(
    "--key-file",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="HMAC key of a keyed chain (repeat it for the keys before a rotation)",
)
@click.option(
    "--checkpoints",
    "checkpoints_file",
    type=click.File("r", encoding="utf-8", errors="replace"),
    help="published heads: the daemon's log lines, e.g. from `journalctl -u pumpd -o cat` "
    "(- reads standard input)",
)
@click.option("--journal", is_flag=True, help="read the published heads from journald (journalctl)")
@click.option("--since", "journal_since", metavar="WHEN", help="with --journal: from this time on")
@click.option(
    "--unit", default="pumpd", show_default=True, help="with --journal: the daemon's unit"
)
@_json
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    checkpoint: str | None,
    key_files: tuple[Path, ...],
    checkpoints_file: TextIO | None,
    journal: bool,
    journal_since: str | None,
    unit: str,
    as_json: bool,
) -> None:
    """Recompute the chain and compare it with published heads; exit 1 naming the first
    bad sequence number."""
    if checkpoints_file is not None and journal:
        raise _UsageFailure("give --checkpoints FILE or --journal, not both")
    if journal_since is not None and not journal:
        raise _UsageFailure("--since goes with --journal")
    try:
        witnessed = parse_checkpoint(checkpoint) if checkpoint else None
        hashers = [Hasher(load_key(path)) for path in key_files] or [Hasher(None)]
        if checkpoints_file is not None:
            heads = read_heads(checkpoints_file)
        elif journal:
            heads = read_heads(_journal_lines(unit, journal_since))
        else:
            heads = []
    except AuditError as exc:
        raise _UsageFailure(str(exc)) from exc
    engine: Engine = ctx.obj["engine"]()
    try:
        result = verify(engine, hashers, witnessed, heads)
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc}") from exc
    finally:
        engine.dispose()
    published = len(heads)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "head": str(result.head),
                    "keyed": result.keyed,
                    "key_ids": list(result.key_ids),
                    "heads_published": published,
                    "heads_checked": result.heads_checked,
                    "heads_unauthenticated": result.heads_unauthenticated,
                    "problem": asdict(result.problem) if result.problem else None,
                }
            )
        )
    elif result.problem is None:
        keys = f"keyed: {', '.join(result.key_ids)}" if result.keyed else "unkeyed"
        click.echo(f"OK: {result.checked} events, chain intact ({keys}); head {result.head}")
        if checkpoints_file is not None or journal:
            unauth = result.heads_unauthenticated
            click.echo(
                f"matches all {result.heads_checked} published heads"
                + (f" ({unauth} without a MAC that could be checked)" if unauth else "")
            )
    else:
        p = result.problem
        click.echo(f"BROKEN at seq {p.seq}: {p.kind}: {p.detail}", err=True)
        click.echo(f"{result.checked} events before it verified; last good head {result.head}")
    if ctx.obj["site"] is not None and _central_findings(ctx, ctx.obj["site"]):
        ctx.exit(EXIT_BROKEN)
    if result.problem is not None:
        ctx.exit(EXIT_BROKEN)


def _central_findings(ctx: click.Context, site: str) -> bool:
    """What the centre recorded about ``site`` (conflicts, forked heads); True if any."""
    engine: Engine = ctx.obj["engine"]()
    try:
        findings = central_findings(engine, site)
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc}") from exc
    finally:
        engine.dispose()
    for f in findings:
        click.echo(f"BROKEN at seq {f.seq} (site {site}): {f.kind}: {f.detail}", err=True)
    return bool(findings)


def _journal_lines(unit: str, since: str | None) -> list[str]:
    """The unit's log lines as the daemon wrote them (``journalctl -o cat``)."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise _UsageFailure(
            "journalctl is not installed here: export the daemon's log on its machine "
            "(journalctl -u pumpd -o cat > heads.log) and pass --checkpoints heads.log"
        )
    command = [journalctl, "--unit", unit, "--output", "cat", "--no-pager", "--quiet"]
    if since is not None:
        command += ["--since", since]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _UsageFailure(f"journalctl failed: {exc}") from exc
    if done.returncode != 0:
        raise _UsageFailure(
            f"journalctl failed (exit {done.returncode}): {done.stderr.strip()[:300]}"
        )
    return done.stdout.splitlines()


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


_timezone = click.option(
    "--timezone",
    "zone_name",
    metavar="ZONE",
    help="clinic time zone for the times people read (IANA name; default: the system's)",
)
_protocols = click.option(
    "--protocols",
    "protocols_dir",
    metavar="DIR",
    help="protocol library for the bands and limits (default: $PUMPD_PROTOCOLS or the shipped one)",
)
_key_file = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HMAC key of a keyed chain, to verify it for the record",
)
_pdf = click.option(
    "--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path), help="write a PDF here"
)
_png = click.option(
    "--png",
    "png_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="write one PNG per page into this directory",
)


def _zone(name: str | None) -> tzinfo:
    try:
        return clinic_zone(name)
    except UnknownTimeZone as exc:
        raise _UsageFailure(str(exc)) from exc


def _hasher(key_file: Path | None) -> Hasher:
    try:
        return Hasher(load_key(key_file) if key_file else None)
    except AuditError as exc:
        raise _UsageFailure(str(exc)) from exc


def _gather(
    ctx: click.Context, session_id: str, key_file: Path | None, protocols_dir: str | None
) -> SessionRecord:
    hasher = _hasher(key_file)
    library, problem = open_library(protocols_dir)
    if problem is not None:
        click.echo(f"warning: protocol library not used: {problem}", err=True)
    engine: Engine = ctx.obj["engine"]()
    try:
        return gather(engine, session_id, hasher=hasher, library=library, now=datetime.now(UTC))
    except NoSuchSession as exc:
        raise _UsageFailure(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()


def _check_outputs(pdf_path: Path | None, png_dir: Path | None) -> None:
    if pdf_path is not None and not pdf_path.parent.is_dir():
        raise _UsageFailure(f"--pdf: directory {str(pdf_path.parent)!r} does not exist")
    if png_dir is not None and png_dir.exists() and not png_dir.is_dir():
        raise _UsageFailure(f"--png: {str(png_dir)!r} is not a directory")


def _write_pages(
    pages: list[Figure], pdf_path: Path | None, png_dir: Path | None, title: str, stem: str
) -> None:
    from pumpd.report import document  # matplotlib: loaded only when a picture is drawn

    try:
        if pdf_path is not None:
            document.write_pdf(pages, pdf_path, title, datetime.now(UTC))
            click.echo(f"wrote {pdf_path} ({len(pages)} pages)")
        if png_dir is not None:
            for path in document.write_pngs(pages, png_dir, stem):
                click.echo(f"wrote {path}")
    except OSError as exc:
        raise _UsageFailure(f"cannot write the report: {exc}") from exc


@main.command("report")
@_site
@click.argument("session_id", required=False)
@_since
@_until
@_pdf
@_png
@_timezone
@_protocols
@_key_file
@_json
@click.pass_context
def report_cmd(
    ctx: click.Context,
    session_id: str | None,
    since: str | None,
    until: str | None,
    pdf_path: Path | None,
    png_dir: Path | None,
    zone_name: str | None,
    protocols_dir: str | None,
    key_file: Path | None,
    as_json: bool,
) -> None:
    """A period (sessions, alarms, overrides, activity per nurse), or one SESSION: its plan,
    plots of volume, flow and vitals, people, timeline and the chain (--pdf, --png)."""
    if session_id is None:
        if pdf_path is not None or png_dir is not None:
            raise _UsageFailure(
                "--pdf and --png draw one session: pumpaudit report SESSION --pdf FILE"
            )
        _period_report(ctx, since, until, as_json)
        return
    if since is not None or until is not None:
        raise _UsageFailure("--since and --until select a period; a session report takes neither")
    zone = _zone(zone_name)
    _check_outputs(pdf_path, png_dir)
    record = _gather(ctx, session_id, key_file, protocols_dir)
    from pumpd.report import document

    if pdf_path is not None or png_dir is not None:
        pages = document.session_pages(record, zone)
        _write_pages(pages, pdf_path, png_dir, f"Session report {session_id}", session_id)
        return
    if as_json:
        click.echo(json.dumps(record_json(record), ensure_ascii=False))
        return
    for line in document.header_lines(record, zone):
        click.echo(line)
    click.echo("")
    for line in document.list_lines(record, zone):
        click.echo(line)


def _period_report(ctx: click.Context, since: str | None, until: str | None, as_json: bool) -> None:
    with _connection(ctx) as conn:
        report = build_report(conn, since, until)
    data = report.as_json()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    console = _out()
    console.print(f"Period: {since or 'start'} .. {until or 'now'} (UTC)")
    outcomes = Table("outcome", "sessions", title="sessions")
    for outcome, n in data["sessions_by_outcome"].items():
        outcomes.add_row(outcome, str(n))
    outcomes.add_row("all", str(data["sessions"]), style="bold")
    console.print(outcomes)
    console.print(f"Delivered in these sessions: {data['delivered_dose_mg']} mg")
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


# -- course -------------------------------------------------------------------------------


@main.command("course")
@_site
@click.argument("patient_ref")
@_pdf
@_png
@_timezone
@_protocols
@_json
@click.pass_context
def course_cmd(
    ctx: click.Context,
    patient_ref: str,
    pdf_path: Path | None,
    png_dir: Path | None,
    zone_name: str | None,
    protocols_dir: str | None,
    as_json: bool,
) -> None:
    """A patient's series: each session's mg/kg and the cumulative against the course limits."""
    zone = _zone(zone_name)
    _check_outputs(pdf_path, png_dir)
    with _connection(ctx) as conn:
        entries = list(patient_course(conn, patient_ref))
        weights = dosing_weights(conn, patient_ref)
    if not entries:
        raise _UsageFailure(f"no sessions for patient {patient_ref!r}")
    from pumpd.report import document

    rows = document.course_rows(entries, weights)
    if pdf_path is not None or png_dir is not None:
        library, problem = open_library(protocols_dir)
        if problem is not None:
            click.echo(f"warning: protocol library not used: {problem}", err=True)
        pages = document.course_pages(patient_ref, rows, library, zone, datetime.now(UTC))
        _write_pages(pages, pdf_path, png_dir, f"Course of {patient_ref}", f"course-{patient_ref}")
        return
    if as_json:
        _json_array(
            (
                {
                    **r.entry.as_json(),
                    "weight_kg": None if r.weight_kg is None else format(r.weight_kg, "f"),
                    "delivered_mg_per_kg": format(r.mg_per_kg, "f"),
                    "cumulative_mg_per_kg": format(r.cumulative_mg_per_kg, "f"),
                }
                for r in rows
            ),
            sys.stdout,
        )
        return
    _lines(
        ["#", "session", "protocol", "kg", "deliv mg", "mg/kg", "cumul mg/kg", "outcome"],
        (
            [
                str(r.entry.number),
                r.entry.summary.session_id,
                r.entry.summary.protocol,
                _mg(r.weight_kg),
                _mg(r.entry.summary.delivered_dose_mg),
                _mg(r.mg_per_kg),
                _mg(r.cumulative_mg_per_kg),
                r.entry.summary.outcome,
            ]
            for r in rows
        ),
        widths=[3, 14, 26, 6, 9, 7, 11, 0],
    )


# -- FHIR ---------------------------------------------------------------------------------


@main.command("fhir")
@_site
@click.argument("session_id")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write the Bundle here (default: standard output)")  # fmt: skip
@click.option("--post", "post_url", metavar="URL",
              help="POST the transaction Bundle to this FHIR server base URL")  # fmt: skip
@click.option(
    "--patient-system",
    default=PATIENT_SYSTEM,
    show_default=True,
    metavar="URI",
    help="identifier system of the patient reference in the clinic's EHR",
)
@_protocols
@_key_file
@click.pass_context
def fhir_cmd(
    ctx: click.Context,
    session_id: str,
    out_path: Path | None,
    post_url: str | None,
    patient_system: str,
    protocols_dir: str | None,
    key_file: Path | None,
) -> None:
    """The session as a FHIR R4 transaction Bundle: MedicationAdministration, vital-signs
    Observations, the Device and a Provenance with the audit chain's head."""
    if out_path is not None and not out_path.parent.is_dir():
        raise _UsageFailure(f"--out: directory {str(out_path.parent)!r} does not exist")
    if post_url is not None and urlsplit(post_url).scheme not in ("http", "https"):
        raise _UsageFailure(f"--post needs an http:// or https:// URL, not {post_url!r}")
    record = _gather(ctx, session_id, key_file, protocols_dir)
    from pumpd.report import fhir  # the FHIR models: loaded only for this command

    try:
        made = fhir.bundle(record, datetime.now(UTC), patient_system)
    except ValueError as exc:  # pydantic's ValidationError: the mapping made an invalid resource
        raise _DatabaseFailure(f"cannot map session {session_id} to FHIR: {exc}") from exc
    text = made.json()
    if out_path is not None:
        partial = out_path.with_name(out_path.name + ".partial")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(out_path)
        except OSError as exc:
            raise _UsageFailure(f"cannot write {out_path}: {exc}") from exc
        entries = len(made.bundle.entry or [])
        click.echo(f"wrote {out_path} (FHIR R4 transaction Bundle, {entries} entries)", err=True)
    elif post_url is None:
        click.echo(text, nl=False)
    if post_url is not None:
        try:
            answer = fhir.post(made, post_url)
        except fhir.FhirPostError as exc:
            raise _PostFailure(str(exc)) from exc
        where = f", Location {answer.location}" if answer.location else ""
        click.echo(f"posted to {post_url}: HTTP {answer.status}{where}", err=True)


if __name__ == "__main__":
    main()

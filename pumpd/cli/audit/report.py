"""``pumpaudit report``: one session's record (PDF, PNG pages or JSON), or a period's summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import AuditError, Hasher, build_report, load_key
from pumpd.cli.audit.group import (
    _connection,
    _DatabaseFailure,
    _json,
    _out,
    _since,
    _site,
    _until,
    _UsageFailure,
    main,
)
from pumpd.controller import CheckpointUnreadable
from pumpd.report.localtime import UnknownTimeZone, clinic_zone
from pumpd.report.model import SessionRecord
from pumpd.report.record import NoSuchSession, gather, open_library
from pumpd.report.record_json import record_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    except CheckpointUnreadable as exc:
        raise _UsageFailure(f"the log holds an unreadable checkpoint: {exc}") from exc
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

"""``pumpaudit course``: one patient's course of sessions, as a record."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from pumpd.audit import patient_course
from pumpd.cli.audit.events import _json_array
from pumpd.cli.audit.group import _connection, _json, _site, _UsageFailure, main
from pumpd.cli.audit.listing import _lines
from pumpd.cli.audit.report import (
    _check_outputs,
    _pdf,
    _png,
    _protocols,
    _timezone,
    _write_pages,
    _zone,
)
from pumpd.cli.audit.sessions import _mg
from pumpd.report.record import dosing_weights, open_library


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

"""The session report and the course report as pages: A4 figures, saved as PDF or PNG.

Page 1: the plan, the people, the chain's verification, the volume and flow-rate plots.
Page 2: vital signs against the protocol's bands, alarms, pauses and notes.
Then the event timeline (as many pages as it needs). Text is set in the figures
themselves, in DejaVu fonts embedded as TrueType, so the PDF's text can be searched and
copied. Times a person reads are the clinic's local time with the zone's name.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from pumpd.audit import CourseEntry
from pumpd.cli import timeline
from pumpd.protocols import Library
from pumpd.report import plots
from pumpd.report.localtime import local_text, parse_utc, zone_label
from pumpd.report.model import SessionRecord

MONO = "DejaVu Sans Mono"
TEXT_PT = 7.5
LINE = 0.0128
"""One text line as a fraction of the A4 page height at TEXT_PT."""
WRAP = 112
TIMELINE_LINES = 70


def _writer(fig: Figure, top: float, size: float = TEXT_PT) -> Iterator[float]:
    y = top
    while True:
        yield y
        y -= LINE * size / TEXT_PT


def _lines(fig: Figure, lines: Sequence[str], top: float, *, size: float = TEXT_PT) -> float:
    """Monospaced lines from ``top`` down; returns the next free height."""
    pos = _writer(fig, top, size)
    y = top
    for line in lines:
        for part in textwrap.wrap(line, WRAP, subsequent_indent="    ") or [""]:
            y = next(pos)
            fig.text(0.06, y, part, family=MONO, fontsize=size, va="top")
    return y - LINE


def _local(moment: datetime | None, zone: tzinfo) -> str:
    return "-" if moment is None else local_text(moment, zone)


def _mg(value: Decimal | None) -> str:
    return "-" if value is None else f"{value} mg"


def _ml(ul: int | None) -> str:
    return "-" if ul is None else f"{Decimal(ul) / 1000:.3f} mL"


def header_lines(record: SessionRecord, zone: tzinfo) -> list[str]:
    p = record.plan
    sim = "  SIMULATED" if record.simulated else ""
    if record.clock_scale != 1:
        sim += f" (time x{record.clock_scale}: times are the audit's wall-clock times)"
    text = record.summary.programmed_at
    programmed = None if text is None else parse_utc(text)
    chain = record.chain
    verdict = (
        f"intact, {chain.checked} events ({'keyed' if chain.keyed else 'unkeyed'})"
        if chain.ok
        else f"BROKEN at {chain.problem}"
    )
    lines = [
        f"Session {record.session_id}   patient {record.patient_ref}   pump {record.device.pump_id}"
        f"{sim}",
        f"Outcome: {record.outcome}   programmed {_local(programmed, zone)}",
        f"Started {_local(record.started_at, zone)}   ended {_local(record.ended_at, zone)}",
        "",
        "PLAN",
        f"  protocol   {p.protocol}   sha256 {p.protocol_sha256}",
        f"             {record.protocol_note}",
        f"  drug       {p.drug} {p.concentration_mg_ml} mg/mL",
        f"  weight     {p.weight_kg} kg ({p.weight_basis})   dose {p.dose_mg_kg} mg/kg = "
        f"{p.prescribed_dose_mg} mg",
        f"  rate       {p.rate_ml_h} mL/h   VTBI {_ml(p.volume_ul)}   duration "
        f"{p.duration_s // 60} min {p.duration_s % 60} s",
        f"  delivered  {_ml(record.delivered_volume_ul)} = {_mg(record.delivered_dose_mg)}",
    ]
    if record.end_reason is not None:
        lines.insert(3, f"Ended: {record.end_reason}")
    if p.order_ref:
        lines.append(f"  order      {p.order_ref}")
    lines += ["", "PEOPLE"]
    lines += [f"  {r.role:<34} {r.name:<22} {_local(r.at, zone)}" for r in record.people] or [
        "  (none recorded)"
    ]
    lines += [
        "",
        "AUDIT CHAIN at the time of this report",
        f"  verification  {verdict}",
        f"  head          {chain.head_seq}:{chain.head_hash}",
        f"  report made   {_local(record.generated_at, zone)}",
    ]
    return lines


def session_pages(record: SessionRecord, zone: tzinfo) -> list[Figure]:
    pages = [_first_page(record, zone), _vitals_page(record, zone)]
    pages += _timeline_pages(record, zone)
    total = len(pages)
    for number, page in enumerate(pages, start=1):
        page.text(0.94, 0.015, f"{record.session_id}  page {number} of {total}",
                  ha="right", fontsize=7, color="0.4")  # fmt: skip
    return pages


def _title(fig: Figure, text: str) -> None:
    fig.text(0.06, 0.975, text, fontsize=13, weight="bold", va="top")


def _first_page(record: SessionRecord, zone: tzinfo) -> Figure:
    fig = plots.new_page()
    _title(fig, f"Infusion session report: {record.plan.drug}")
    _lines(fig, header_lines(record, zone), 0.945)
    grid = fig.add_gridspec(2, 1, left=0.1, right=0.95, bottom=0.05, top=0.585,
                            height_ratios=[3, 2], hspace=0.45)  # fmt: skip
    plots.draw_volume(fig.add_subplot(grid[0]), record, zone)
    plots.draw_rate(fig.add_subplot(grid[1]), record, zone)
    return fig


def _vitals_page(record: SessionRecord, zone: tzinfo) -> Figure:
    fig = plots.new_page()
    _title(fig, "Vital signs, alarms, pauses and notes")
    fig.text(0.06, 0.945, f"Shaded: outside the protocol's pause band (orange) and stop band "
             f"(red); dotted green: the start band. {record.protocol_note}",
             fontsize=7, va="top", wrap=True)  # fmt: skip
    grid = fig.add_gridspec(2, 2, left=0.1, right=0.96, bottom=0.56, top=0.885,
                            hspace=0.45, wspace=0.3)  # fmt: skip
    panels = []
    for i, (field, key, label) in enumerate(plots.VITAL_PANELS):
        panels.append(fig.add_subplot(grid[i // 2, i % 2]))
        plots.draw_vital(panels[-1], record, zone, field, key, label)
    handles: dict[str, Any] = {}
    for ax in panels:  # one legend for the page: the bands mean the same on every panel
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            name = "reading" if text.endswith(")") else text
            handles.setdefault(name, handle)
    fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=4,
               fontsize=7, bbox_to_anchor=(0.5, 0.925), frameon=False)  # fmt: skip
    _lines(fig, list_lines(record, zone), 0.5)
    return fig


def list_lines(record: SessionRecord, zone: tzinfo) -> list[str]:
    lines = ["VITAL SIGNS"]
    lines += [
        f"  {_local(v.at, zone)}  BP {v.systolic_mmhg or '-'}/{v.diastolic_mmhg or '-'}  "
        f"HR {v.heart_rate_bpm or '-'}  SpO2 {v.spo2_percent or '-'}  "
        f"RR {v.respiratory_rate_per_min or '-'}  ({v.source}, {v.recorded_by})"
        for v in record.vitals
    ] or ["  (none recorded)"]
    lines += ["", "ALARMS"]
    for a in record.alarms:
        ack = (
            f"acknowledged {_local(a.acknowledged_at, zone)} by {a.acknowledged_by}"
            + (f": {a.note}" if a.note else "")
            if a.acknowledged_at
            else "not acknowledged"
        )
        lines.append(f"  {_local(a.raised_at, zone)}  [{a.priority}] {a.code}: {a.message}; {ack}")
    if not record.alarms:
        lines.append("  (none)")
    lines += ["", "PAUSES"]
    for pause in record.pauses:
        lines.append(
            f"  {_local(pause.at, zone)}  {pause.reason or pause.reason_code} "
            f"({pause.reason_code}) at {_ml(pause.delivered_volume_ul)}; "
            f"resumed {_local(pause.resumed_at, zone)}"
        )
    if not record.pauses:
        lines.append("  (none)")
    lines += ["", "NOTES"]
    lines += [f"  {_local(n.at, zone)}  {n.author}: {n.text}" for n in record.notes] or ["  (none)"]
    return lines


def _timeline_pages(record: SessionRecord, zone: tzinfo) -> list[Figure]:
    rows = [
        f"{e.seq:>6}  {local_text(parse_utc(e.occurred_at), zone)}  {e.event_type:<24} "
        f"{e.actor_name:<16} {timeline.details(e)}"
        for e in record.events
        if e.event_type != timeline.CHECKPOINT
    ]
    hidden = sum(1 for e in record.events if e.event_type == timeline.CHECKPOINT)
    rows.append(f"({hidden} {timeline.CHECKPOINT} events, the recovery snapshots, not listed)")
    wrapped: list[str] = []
    for row in rows:
        wrapped += textwrap.wrap(row, WRAP, subsequent_indent=" " * 8) or [""]
    pages: list[Figure] = []
    for start in range(0, len(wrapped), TIMELINE_LINES):
        fig = plots.new_page()
        _title(fig, f"Event timeline ({zone_label(zone)})")
        _lines(fig, wrapped[start : start + TIMELINE_LINES], 0.945)
        pages.append(fig)
    return pages


def write_pdf(pages: Sequence[Figure], path: Path, title: str, when: datetime) -> None:
    """All pages into one PDF, written by matplotlib; replaced only once complete."""
    partial = path.with_name(path.name + ".partial")
    with PdfPages(
        partial,
        metadata={"Title": title, "Creator": "pumpaudit (pumpd)", "CreationDate": when},
    ) as pdf:
        for page in pages:
            pdf.savefig(page)
    partial.replace(path)


def write_pngs(pages: Sequence[Figure], directory: Path, stem: str, dpi: int = 110) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for number, page in enumerate(pages, start=1):
        target = directory / f"{stem}-page{number}.png"
        page.savefig(target, dpi=dpi, facecolor="white")
        written.append(target)
    return written


# -- the course ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CourseRow:
    entry: CourseEntry
    weight_kg: Decimal | None
    mg_per_kg: Decimal
    cumulative_mg_per_kg: Decimal


def course_rows(entries: Sequence[CourseEntry], weights: dict[str, Decimal]) -> list[CourseRow]:
    """Each session's delivered mg/kg (by its own dosing weight) and the running total."""
    rows: list[CourseRow] = []
    total = Decimal(0)
    for entry in entries:
        weight = weights.get(entry.summary.session_id)
        delivered = entry.summary.delivered_dose_mg or Decimal(0)
        per_kg = (delivered / weight).quantize(Decimal("0.001")) if weight else Decimal(0)
        total += per_kg
        rows.append(CourseRow(entry, weight, per_kg, total))
    return rows


def course_pages(
    patient_ref: str,
    rows: Sequence[CourseRow],
    library: Library | None,
    zone: tzinfo,
    now: datetime,
) -> list[Figure]:
    fig = plots.new_page()
    _title(fig, f"Treatment course of patient {patient_ref}")
    limit = per_session = None
    planned: int | None = None
    rules_text = "course limits: protocol not available"
    last = rows[-1].entry.summary if rows else None
    if library is not None and last is not None and last.protocol_id is not None:
        loaded = library.entries.get((last.protocol_id, int(last.protocol_version or 0)))
        if loaded is not None:
            course = loaded.protocol.course
            limit = course.max_cumulative_dose_mg_per_kg_in_window
            per_session = loaded.protocol.limits.dose_mg_per_kg.hard_max
            planned = course.planned_series
            rules_text = (
                f"course limits of {last.protocol}: at most {course.max_sessions_in_window} "
                f"sessions and {limit} mg/kg in {course.window_days} days, at least "
                f"{course.min_interval_h} h apart; planned series {course.planned_series}"
            )
    lines = [rules_text, f"report made {local_text(now, zone)}", ""]
    lines.append(
        f"{'#':>2}  {'date':<10} {'session':<16} {'protocol':<26} {'weight':>7} "
        f"{'mg':>8} {'mg/kg':>7} {'cumul':>7}  outcome"
    )
    for row in rows:
        s = row.entry.summary
        day = local_text(parse_utc(s.programmed_at), zone)[:10] if s.programmed_at else "-"
        lines.append(
            f"{row.entry.number:>2}  {day:<10} {s.session_id:<16} {s.protocol:<26} "
            f"{row.weight_kg or '-':>7} {s.delivered_dose_mg or '-':>8} {row.mg_per_kg:>7} "
            f"{row.cumulative_mg_per_kg:>7}  {s.outcome}{' SIM' if s.simulated else ''}"
        )
    below = _lines(fig, lines, 0.945)
    grid = fig.add_gridspec(
        2, 1, left=0.1, right=0.95, bottom=0.08, top=max(0.3, min(0.62, below - 0.04)), hspace=0.5
    )
    plots.course_axes(
        fig.add_subplot(grid[0]),
        fig.add_subplot(grid[1]),
        [f"#{r.entry.number} {r.entry.summary.session_id}" for r in rows],
        [r.mg_per_kg for r in rows],
        [r.cumulative_mg_per_kg for r in rows],
        limit,
        per_session,
        planned,
    )
    return [fig]

"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No pyplot and no global figure state: each function returns a new ``Figure`` that the
caller saves (PDF page, PNG). Lines, spans and axes carry labels (``pump volume``,
``expected volume``, ``pauses the infusion``...) so that what a figure shows can be read
back from the figure's own objects, which is how the tests check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pumpd.report.localtime import zone_label
from pumpd.report.model import Mark, SessionRecord, VitalsSet

matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType in the PDF: its text can be searched
matplotlib.rcParams["font.family"] = "DejaVu Sans"

A4_PORTRAIT = (8.27, 11.69)
MARK_STYLE: dict[str, tuple[str, str, str]] = {
    # kind: (colour, line style, legend text)
    "command": ("0.55", ":", "pump command"),
    "pause": ("tab:orange", "-", "pause"),
    "resume": ("tab:green", "-", "resume"),
    "adjust": ("tab:purple", "-", "adjustment"),
    "alarm": ("tab:red", "-", "alarm"),
    "note": ("tab:blue", "--", "note"),
    "stop": ("black", "-", "stop"),
    "complete": ("tab:green", "--", "completed"),
}
PAUSE_SPAN = "paused"
BAND_PAUSE = "pauses the infusion"
BAND_STOP = "stops the infusion"
START_LIMIT = "start allowed within"


def time_axis(ax: Axes, zone: tzinfo, span: timedelta, ticks: int = 8) -> None:
    """Clinic local time on the x axis, its zone in the label."""
    fmt = "%H:%M:%S" if span < timedelta(minutes=10) else "%H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=zone))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=zone, maxticks=ticks))  # type: ignore[no-untyped-call]
    ax.set_xlabel(f"time ({zone_label(zone)})")


def _span(record: SessionRecord) -> tuple[datetime, datetime]:
    start = record.first_at
    end = record.ended_at or record.last_at
    if record.volumes:
        end = max(end, record.volumes[-1].at)
    pad = max((end - start) * 0.03, timedelta(seconds=1))
    short = timedelta(minutes=1) - (end - start)
    if short > timedelta(0):  # a session of seconds (aborted): at least a minute is shown
        pad += short / 2
    return start - pad, end + pad


def _ml(ul: int) -> float:
    return ul / 1000


def draw_volume(ax: Axes, record: SessionRecord, zone: tzinfo) -> None:
    """Pump volume and independent expected volume against time, the plan and the marks."""
    pump = [(v.at, _ml(v.pump_ul)) for v in record.volumes if v.pump_ul is not None]
    expected = [(v.at, _ml(v.expected_ul)) for v in record.volumes if v.expected_ul is not None]
    if pump:
        ax.plot(*zip(*pump, strict=True), color="tab:blue", marker=".", lw=1.6,
                label="pump volume")  # fmt: skip
    if expected:
        ax.plot(*zip(*expected, strict=True), color="tab:orange", marker="x", ms=4, lw=1.0,
                ls="--", label="expected volume")  # fmt: skip
    vtbi = _ml(record.vtbi_ul)
    ax.axhline(vtbi, color="0.3", lw=0.8, ls="-.", label=f"VTBI {vtbi:g} mL")
    end = record.planned_end()
    if record.started_at is not None and end is not None:
        ax.plot([record.started_at, end], [0, vtbi], color="0.3", lw=0.8, ls=":",  # type: ignore[arg-type]
                label=f"plan {record.plan.rate_ml_h} mL/h without pause")  # fmt: skip
    data_legend = ax.legend(fontsize=7, loc="upper left")
    _marks(ax, record.marks)
    ax.set_ylabel("volume (mL)")
    ax.set_ylim(0, vtbi * 1.12)
    ax.set_title("Volume: pump and independent expected, against the plan", fontsize=10)
    mark_lines = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("mark:")]
    shown = [ln for ln in mark_lines if not str(ln.get_label()).startswith("_")]
    if shown:
        ax.legend(handles=shown, fontsize=7, loc="lower right", title="marks", title_fontsize=7)
        ax.add_artist(data_legend)
    ax.grid(alpha=0.3)
    lo, hi = _span(record)
    ax.set_xlim(lo, hi)  # type: ignore[arg-type]
    time_axis(ax, zone, hi - lo)


def _marks(ax: Axes, marks: Sequence[Mark]) -> None:
    shown: set[str] = set()
    for mark in marks:
        colour, style, legend = MARK_STYLE[mark.kind]
        ax.axvline(
            mark.at,  # type: ignore[arg-type]
            color=colour,
            ls=style,
            lw=1.8 if mark.kind == "alarm" else 1.0,
            zorder=4 if mark.kind == "alarm" else 2,  # an alarm is never hidden by its pause
            label=legend if mark.kind not in shown else "_" + legend,
            gid=f"mark:{mark.kind}:{mark.seq}",
        )
        shown.add(mark.kind)


def draw_rate(ax: Axes, record: SessionRecord, zone: tzinfo) -> None:
    """The rate the pump confirmed for each command, as steps, with the paused spans."""
    lo, hi = _span(record)
    if record.rates:
        times = [r.at for r in record.rates] + [hi]
        rates = [float(r.rate_ml_h) for r in record.rates]
        rates.append(rates[-1])
        ax.step(times, rates, where="post", color="tab:blue", lw=1.4, label="pump rate")  # type: ignore[arg-type]
    ax.axhline(float(record.plan.rate_ml_h), color="0.3", lw=0.8, ls="-.",
               label=f"planned {record.plan.rate_ml_h} mL/h")  # fmt: skip
    labelled = False
    for pause in record.pauses:
        until = pause.resumed_at or record.ended_at or hi
        ax.axvspan(pause.at, until, color="tab:orange", alpha=0.2,  # type: ignore[arg-type]
                   label=PAUSE_SPAN if not labelled else "_" + PAUSE_SPAN)  # fmt: skip
        labelled = True
    top = max([float(r.rate_ml_h) for r in record.rates] + [float(record.plan.rate_ml_h)])
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("flow rate (mL/h)")
    ax.set_title("Flow rate", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    ax.set_xlim(lo, hi)  # type: ignore[arg-type]
    time_axis(ax, zone, hi - lo)


VITAL_PANELS: tuple[tuple[str, str, str], ...] = (
    # (VitalsSet field, band key in the protocol, axis label)
    ("systolic_mmhg", "systolic_mmhg", "systolic BP (mmHg)"),
    ("diastolic_mmhg", "diastolic_mmhg", "diastolic BP (mmHg)"),
    ("heart_rate_bpm", "heart_rate_bpm", "heart rate (/min)"),
    ("spo2_percent", "spo2_percent", "SpO₂ (%)"),
)


def _limit(band: object, key: str) -> int | None:
    value = getattr(band, key, None)
    return None if value is None else int(value)


def draw_vital(
    ax: Axes, record: SessionRecord, zone: tzinfo, field: str, band_key: str, label: str
) -> None:
    """One measure against time, with the protocol's pause and stop bands shaded."""
    points = [(v.at, getattr(v, field)) for v in record.vitals if getattr(v, field) is not None]
    values: list[float] = [float(y) for _, y in points]
    if points:
        ax.plot([t for t, _ in points], values, marker="o", color="tab:blue", lw=1.2,  # type: ignore[arg-type]
                label=label)  # fmt: skip
    limits: list[float] = []
    rules = record.protocol.protocol.vitals if record.protocol is not None else None
    bands: dict[str, dict[str, int | None]] = {}
    if rules is not None:
        for name in ("refuse_start", "pause", "stop"):
            band = getattr(rules, name)
            bands[name] = {
                "min": _limit(band, f"{band_key}_min"),
                "max": _limit(band, f"{band_key}_max"),
            }
            limits += [float(x) for x in bands[name].values() if x is not None]
    everything = values + limits or [0.0, 100.0]
    low, high = min(everything), max(everything)
    margin = max((high - low) * 0.15, 3.0)
    y0, y1 = low - margin, high + margin
    if band_key == "spo2_percent":
        y1 = min(y1, 100.5)
    if bands:
        _shade(ax, bands, y0, y1)
    ax.set_ylim(y0, y1)
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    lo, hi = _span(record)
    ax.set_xlim(lo, hi)  # type: ignore[arg-type]
    time_axis(ax, zone, hi - lo, ticks=5)
    ax.tick_params(labelsize=7)


def _shade(ax: Axes, bands: dict[str, dict[str, int | None]], y0: float, y1: float) -> None:
    pause, stop, start = bands["pause"], bands["stop"], bands["refuse_start"]
    seen: set[str] = set()

    def span(a: float, b: float, colour: str, text: str) -> None:
        if b > a:
            ax.axhspan(a, b, color=colour, alpha=0.22, lw=0,
                       label=text if text not in seen else "_" + text)  # fmt: skip
            seen.add(text)

    if pause["max"] is not None:
        top = float(stop["max"]) if stop["max"] is not None else y1
        span(float(pause["max"]), top, "tab:orange", BAND_PAUSE)
    if stop["max"] is not None:
        span(float(stop["max"]), y1, "tab:red", BAND_STOP)
    if pause["min"] is not None:
        bottom = float(stop["min"]) if stop["min"] is not None else y0
        span(bottom, float(pause["min"]), "tab:orange", BAND_PAUSE)
    if stop["min"] is not None:
        span(y0, float(stop["min"]), "tab:red", BAND_STOP)
    for side in ("min", "max"):
        limit = start[side]
        if limit is not None:
            text = START_LIMIT if START_LIMIT not in seen else "_" + START_LIMIT
            ax.axhline(float(limit), color="tab:green", ls=":", lw=1.0, label=text)
            seen.add(START_LIMIT)


def vitals_of(record: SessionRecord) -> Sequence[VitalsSet]:
    return record.vitals


def course_axes(
    ax_session: Axes,
    ax_total: Axes,
    labels: Sequence[str],
    mg_per_kg: Sequence[Decimal],
    cumulative: Sequence[Decimal],
    limit_mg_per_kg: Decimal | None,
    per_session_max: Decimal | None,
    planned_series: int | None = None,
) -> None:
    """Each session's mg/kg as bars and the running total against the course limit, on as
    many slots as the planned series has, so a course is seen against its plan."""
    xs = list(range(1, len(labels) + 1))
    slots = max(len(xs), planned_series or 0)
    ax_session.bar(xs, [float(v) for v in mg_per_kg], color="tab:blue", label="mg/kg delivered")
    if per_session_max is not None:
        ax_session.axhline(float(per_session_max), color="tab:red", ls="--", lw=1.0,
                           label=f"protocol maximum {per_session_max} mg/kg")  # fmt: skip
    ax_session.set_ylabel("dose (mg/kg)")
    ax_session.set_title("Each session's delivered dose", fontsize=10)
    ax_session.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    ax_session.set_xlim(0.4, slots + 0.6)
    ax_session.legend(fontsize=7)
    ax_session.grid(alpha=0.3, axis="y")
    ax_total.plot(xs, [float(v) for v in cumulative], marker="o", color="tab:blue",
                  label="cumulative mg/kg")  # fmt: skip
    if limit_mg_per_kg is not None:
        ax_total.axhline(float(limit_mg_per_kg), color="tab:red", ls="--", lw=1.0,
                         label=f"course limit {limit_mg_per_kg} mg/kg in the window")  # fmt: skip
    ax_total.set_ylabel("cumulative dose (mg/kg)")
    ax_total.set_title("Cumulative dose of the course", fontsize=10)
    ax_total.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    ax_total.set_ylim(bottom=0)
    ax_total.set_xlim(0.4, slots + 0.6)
    ax_total.legend(fontsize=7)
    ax_total.grid(alpha=0.3)


def new_page() -> Figure:
    return Figure(figsize=A4_PORTRAIT)

"""The session report of a real session: the figures' own data, the PDF's text, the CLI.

The session is recorded once by the real stack (conftest.py). The figures are checked
through what their objects hold (line data, axis labels, shaded spans, mark positions), the
PDF through the text pypdf extracts from it; pixels are never compared.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from pypdf import PdfReader

from pumpd.audit import EventFilter, Hasher, iter_events, verify
from pumpd.db import make_engine
from pumpd.report import document, plots
from pumpd.report.model import SessionRecord
from pumpd.report.record import gather, open_library

from .conftest import ABORTED_PATIENT, RecordedSession

# The first test of a run waits for the shared recording of a real session (simulator,
# daemon, pumpctl): a minute alone, several on a loaded 2-core machine; its setup counts
# toward the per-test timeout.
pytestmark = pytest.mark.timeout(600)

BIN = Path(sys.executable).parent
BERLIN = ZoneInfo("Europe/Berlin")


def pumpaudit(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pumpaudit"), "--database", database, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(recorded: RecordedSession, database: str | None = None) -> SessionRecord:
    engine = make_engine(database or recorded.database, read_only=True)
    try:
        library, problem = open_library(None)
        assert problem is None, problem
        return gather(engine, recorded.session_id, library=library, now=datetime.now(UTC))
    finally:
        engine.dispose()


def head_of(database: str) -> str:
    """The chain head as `pumpaudit verify` computes it (the same function, in-process)."""
    engine = make_engine(database, read_only=True)
    try:
        result = verify(engine, Hasher())
    finally:
        engine.dispose()
    assert result.ok, result.problem
    return str(result.head)


def events(recorded: RecordedSession, kind: str) -> list[dict[str, Any]]:
    """The session's events of one type, as `pumpaudit events --json` gives them."""
    engine = make_engine(recorded.database, read_only=True)
    try:
        with engine.connect() as conn:
            flt = EventFilter(session=recorded.session_id, event_type=kind)
            return [{**asdict(e), "payload": json.loads(e.payload)} for e in iter_events(conn, flt)]
    finally:
        engine.dispose()


def axes_by_ylabel(fig: Figure) -> dict[str, Axes]:
    return {ax.get_ylabel(): ax for ax in fig.axes}


def line(ax: Axes, label: str) -> Line2D:
    [found] = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_the_volume_plot_holds_the_logged_volumes_and_marks(recorded: RecordedSession) -> None:
    record = load(recorded)
    fig = document.session_pages(record, BERLIN)[0]
    axes = axes_by_ylabel(fig)
    volume = axes["volume (mL)"]
    assert volume.get_xlabel() == "time (Europe/Berlin)"

    checkpoints = [
        e["payload"]["accounting"]
        for e in events(recorded, "session.checkpointed")
        if "expected_ul" in e["payload"].get("accounting", {})
    ]
    expected = line(volume, "expected volume")
    assert list(expected.get_ydata()) == pytest.approx(  # type: ignore[arg-type]
        [a["expected_ul"] / 1000 for a in checkpoints]
    )
    pump = line(volume, "pump volume")
    [completed] = events(recorded, "infusion.completed")
    assert pump.get_ydata()[-1] == pytest.approx(  # type: ignore[index]
        completed["payload"]["delivered_volume_ul"] / 1000
    )
    paused = events(recorded, "session.paused")
    assert len(paused) == 2  # the nurse's pause and the kernel's, for the vitals
    for p in paused:
        assert p["payload"]["delivered_volume_ul"] / 1000 in list(pump.get_ydata())  # type: ignore[arg-type]
    vtbi = line(volume, "VTBI 100 mL")
    assert list(vtbi.get_ydata()) == [100.0, 100.0]  # type: ignore[arg-type]
    plan = line(volume, "plan 150 mL/h without pause")
    assert list(plan.get_ydata()) == [0, 100.0]  # type: ignore[arg-type]

    marks = {str(ln.get_gid()): ln for ln in volume.get_lines() if ln.get_gid()}
    [alarm] = events(recorded, "alarm.raised")
    alarm_mark = marks[f"mark:alarm:{alarm['seq']}"]
    assert alarm_mark.get_xdata()[0] == at(alarm["occurred_at"])  # type: ignore[index]
    for p in paused:
        assert f"mark:pause:{p['seq']}" in marks
    [note] = events(recorded, "note.recorded")
    assert f"mark:note:{note['seq']}" in marks
    assert any(g.startswith("mark:command:") for g in marks)

    rate = axes["flow rate (mL/h)"]
    steps = line(rate, "pump rate")
    assert {150.0, 0.0} <= set(steps.get_ydata())  # type: ignore[arg-type]
    spans = [p for p in rate.patches if p.get_label().lstrip("_") == plots.PAUSE_SPAN]
    assert len(spans) == 2


def _band(ax: Axes, label: str) -> list[tuple[float, float]]:
    found = []
    for patch in ax.patches:
        if isinstance(patch, Patch) and patch.get_label().lstrip("_") == label:
            ys = [y for _, y in patch.get_path().transformed(patch.get_patch_transform()).vertices]  # type: ignore[attr-defined]
            found.append((round(min(ys), 6), round(max(ys), 6)))
    return found


def test_the_vitals_plots_hold_the_readings_and_the_protocols_bands(
    recorded: RecordedSession,
) -> None:
    record = load(recorded)
    fig = document.session_pages(record, BERLIN)[1]
    axes = axes_by_ylabel(fig)
    recorded_sets = [e["payload"] for e in events(recorded, "vitals.recorded")]
    systolic = axes["systolic BP (mmHg)"]
    assert list(line(systolic, "systolic BP (mmHg)").get_ydata()) == [  # type: ignore[arg-type]
        v["systolic_mmhg"] for v in recorded_sets
    ]
    assert 176 in [v["systolic_mmhg"] for v in recorded_sets]
    # ketamine-trd-standard: pause above 170, stop above 180, start allowed up to 140.
    _, high = systolic.get_ylim()
    assert _band(systolic, plots.BAND_PAUSE) == [(170, 180)]
    assert _band(systolic, plots.BAND_STOP) == [(180, round(high, 6))]
    start = [ln for ln in systolic.get_lines() if ln.get_label() == plots.START_LIMIT]
    assert [list(ln.get_ydata()) for ln in start] == [[140, 140]]  # type: ignore[arg-type]

    heart = axes["heart rate (/min)"]
    assert list(line(heart, "heart rate (/min)").get_ydata()) == [  # type: ignore[arg-type]
        v["heart_rate_bpm"] for v in recorded_sets
    ]
    hr_low, _ = heart.get_ylim()
    assert sorted(_band(heart, plots.BAND_PAUSE)) == [(40, 45), (120, 130)]
    assert (round(hr_low, 6), 40) in _band(heart, plots.BAND_STOP)
    spo2 = axes["SpO₂ (%)"]
    assert list(line(spo2, "SpO₂ (%)").get_ydata()) == [  # type: ignore[arg-type]
        v["spo2_percent"] for v in recorded_sets
    ]
    assert _band(spo2, plots.BAND_PAUSE) == [(90, 92)]


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def test_report_pdf_and_png_through_the_cli(recorded: RecordedSession, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pngs = tmp_path / "pages"
    result = pumpaudit(
        recorded.database, "report", recorded.session_id,
        "--pdf", str(pdf), "--png", str(pngs), "--timezone", "Europe/Berlin",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {pdf}" in result.stdout
    reader = PdfReader(pdf)
    assert len(reader.pages) >= 3
    text = pdf_text(pdf)
    [programmed] = events(recorded, "session.programmed")
    plan = programmed["payload"]
    for expected in (
        recorded.session_id,
        recorded.patient_ref,
        "ketamine-trd-standard@1",
        plan["protocol_sha256"],
        "82 kg (actual)",
        "0.5 mg/kg = 41 mg",
        "150 mL/h",
        "VTBI 100.000 mL",
        "sha256 matches the record",
        "double-checked",
        "discharged",
        "acknowledged alarm",
        "tick.vitals.pause.systolic_mmhg.above_max",
        "patient asked for a break",
        "mild dissociation, patient comfortable",
        "BP 176/98",
        "intact",
        head_of(recorded.database),
        "time (Europe/Berlin)",
        "Event timeline",
        "infusion.completed",
    ):
        assert expected in text, expected
    for person in {programmed["actor_name"], *json.loads(
        pumpaudit(recorded.database, "sessions", "--json").stdout
    )[0]["nurses"]}:  # fmt: skip
        assert person in text
    started = datetime.fromisoformat(events(recorded, "session.started")[0]["occurred_at"])
    assert started.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S %Z") in text
    pages = sorted(pngs.glob("*.png"))
    assert len(pages) == len(reader.pages)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pages)
    assert pdf.with_name("report.pdf.partial").exists() is False


def test_report_without_pictures_prints_text_and_json(recorded: RecordedSession) -> None:
    text = pumpaudit(recorded.database, "report", recorded.session_id, "--timezone", "UTC")
    assert text.returncode == 0, text.stderr
    assert "ketamine-trd-standard@1" in text.stdout
    assert f"head          {head_of(recorded.database)}" in text.stdout
    data = json.loads(pumpaudit(recorded.database, "report", recorded.session_id, "--json").stdout)
    assert data["chain"]["ok"] is True
    assert data["chain"]["head"] == head_of(recorded.database)
    assert [v["systolic_mmhg"] for v in data["vitals"]] == [128, 131, 176, 138, 122]
    assert data["plan"]["weight_kg"] == "82"


def test_a_broken_chain_is_stated_in_the_report(recorded: RecordedSession, tmp_path: Path) -> None:
    copy = tmp_path / "audit.db"
    shutil.copy(recorded.workdir / "audit.db", copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE audit_event SET host = 'elsewhere' WHERE seq = 5")
    result = pumpaudit(f"sqlite:///{copy}", "report", recorded.session_id)
    assert result.returncode == 0, result.stderr
    assert "verification  BROKEN at seq 5: changed" in result.stdout
    record = load(recorded, f"sqlite:///{copy}")
    assert record.chain.ok is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "S-nosuch", "--pdf", "{tmp}/a.pdf"], "no events for session 'S-nosuch'"),
        (["report", "{sid}", "--pdf", "{tmp}/missing/a.pdf"], "does not exist"),
        (["report", "{sid}", "--pdf", "{tmp}/a.pdf", "--timezone", "Mars/Olympus"],
         "unknown time zone"),
        (["report", "--pdf", "{tmp}/a.pdf"], "--pdf and --png draw one session"),
        (["report", "{sid}", "--since", "2026-01-01"], "a session report takes neither"),
        (["course", "P-NOBODY", "--pdf", "{tmp}/a.pdf"], "no sessions for patient"),
        (["fhir", "S-nosuch", "--out", "{tmp}/a.json"], "no events for session"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_writes_nothing(
    recorded: RecordedSession, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path, sid=recorded.session_id) for a in args]
    result = pumpaudit(recorded.database, *argv)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_course_pdf_holds_each_sessions_mg_per_kg(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    pdf = tmp_path / "course.pdf"
    result = pumpaudit(recorded.database, "course", recorded.patient_ref, "--pdf", str(pdf))
    assert result.returncode == 0, result.stderr
    text = pdf_text(pdf)
    assert recorded.patient_ref in text
    assert recorded.session_id in text
    assert "4.5 mg/kg in 21 days" in text  # the protocol's course limit
    listed = json.loads(
        pumpaudit(recorded.database, "course", recorded.patient_ref, "--json").stdout
    )
    assert [row["delivered_mg_per_kg"] for row in listed] == ["0.500"]  # 41.000 mg / 82 kg

    engine = make_engine(recorded.database, read_only=True)
    try:
        from pumpd.audit import patient_course
        from pumpd.report.record import dosing_weights

        with engine.connect() as conn:
            rows = document.course_rows(
                list(patient_course(conn, recorded.patient_ref)),
                dosing_weights(conn, recorded.patient_ref),
            )
    finally:
        engine.dispose()
    library, _ = open_library(None)
    [fig] = document.course_pages(recorded.patient_ref, rows, library, BERLIN, datetime.now(UTC))
    axes = axes_by_ylabel(fig)
    bars = axes["dose (mg/kg)"].patches
    assert [round(b.get_height(), 3) for b in bars] == [0.5]  # type: ignore[attr-defined]
    total = axes["cumulative dose (mg/kg)"]
    assert list(line(total, "cumulative mg/kg").get_ydata()) == [0.5]  # type: ignore[arg-type]
    limit = line(total, "course limit 4.5 mg/kg in the window")
    assert list(limit.get_ydata()) == [4.5, 4.5]  # type: ignore[arg-type]
    assert rows[0].mg_per_kg == Decimal("0.500")


def test_period_report_prints_tables_not_dicts(recorded: RecordedSession) -> None:
    result = pumpaudit(recorded.database, "report")
    assert result.returncode == 0, result.stderr
    assert "{" not in result.stdout
    assert "completed" in result.stdout
    assert "aborted" in result.stdout
    data = json.loads(pumpaudit(recorded.database, "report", "--json").stdout)
    assert data["sessions_by_outcome"] == {"aborted": 1, "completed": 1}


def test_sessions_show_a_dash_for_no_start_and_aborted(recorded: RecordedSession) -> None:
    result = pumpaudit(recorded.database, "sessions")
    assert result.returncode == 0, result.stderr
    [row] = [ln for ln in result.stdout.splitlines() if ln.startswith(recorded.aborted_session_id)]
    cells = row.split()
    assert ABORTED_PATIENT in cells
    assert cells[6:9] == ["-", cells[7], "aborted"]  # start "-", end the abort's time
    assert cells[7].startswith("20")
    [done] = [ln for ln in result.stdout.splitlines() if ln.startswith(recorded.session_id)]
    assert "completed" in done.split()


def test_export_sessions_as_csv_gives_one_flat_row_each(recorded: RecordedSession) -> None:
    result = pumpaudit(recorded.database, "export", "--what", "sessions", "--format", "csv")
    assert result.returncode == 0, result.stderr
    import csv

    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["session_id"] for r in rows] == [recorded.session_id, recorded.aborted_session_id]
    done, aborted = rows
    assert done["outcome"] == "completed"
    assert done["alarms_by_code"] == "tick.vitals.pause.systolic_mmhg.above_max=1"
    assert done["delivered_volume_ul"] == "100000"
    assert aborted["outcome"] == "aborted"
    assert aborted["started_at"] == ""
    assert all(len(r) == len(rows[0]) for r in rows)
    refused = pumpaudit(recorded.database, "export", "--what", "sessions", "--type", "alarm.*")
    assert refused.returncode == 2
    assert "--type" in refused.stderr


def test_an_aborted_session_reports_who_and_why(recorded: RecordedSession) -> None:
    result = pumpaudit(recorded.database, "report", recorded.aborted_session_id)
    assert result.returncode == 0, result.stderr
    assert "Outcome: aborted" in result.stdout
    assert "Ended: patient declined today (abort)" in result.stdout
    assert "Started -" in result.stdout
    [aborted_by] = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("aborted ")]
    assert ABORTED_PATIENT not in aborted_by  # a person, not the patient
    assert "delivered  0.000 mL = 0.000 mg" in result.stdout


def test_without_the_protocol_file_the_bands_are_not_drawn(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    library = tmp_path / "protocols"
    library.mkdir()
    result = pumpaudit(
        recorded.database, "report", recorded.session_id, "--protocols", str(library),
        "--png", str(tmp_path / "pages"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning: protocol library not used" in result.stderr
    engine = make_engine(recorded.database, read_only=True)
    try:
        record = gather(engine, recorded.session_id, library=None, now=datetime.now(UTC))
    finally:
        engine.dispose()
    assert record.protocol is None
    assert "bands not drawn" in record.protocol_note
    page = document.session_pages(record, BERLIN)[1]
    systolic = axes_by_ylabel(page)["systolic BP (mmHg)"]
    assert _band(systolic, plots.BAND_PAUSE) == []
    assert list(line(systolic, "systolic BP (mmHg)").get_ydata()) == [128, 131, 176, 138, 122]  # type: ignore[arg-type]

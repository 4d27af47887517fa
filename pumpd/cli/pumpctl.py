"""``pumpctl``: the nurse's command line. Planning works without a daemon.

Thin on purpose: parsing is :mod:`safety.units`, the decision is :mod:`safety.plan`, the
library is :mod:`pumpd.protocols`; this module only turns them into text and exit codes.
The live commands (status, program, start, ...) are in :mod:`pumpd.cli.live` and talk to
a running pumpd over its control socket (``docs/pumpctl.md``).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from pumpd.cli.client import default_socket_path
from pumpd.cli.live import reads, session, staff
from pumpd.cli.live.common import Target

if TYPE_CHECKING:
    from pumpd.protocols import Library, LoadedProtocol
    from safety.plan import Plan
    from safety.protocol import Band

# The protocol library, the kernel and rich are imported by the offline commands only, when
# they run: the live commands start faster without them (pumpctl runs once per nurse command).
ENV_VAR = "PUMPD_PROTOCOLS"  # pumpd.protocols.ENV_VAR; tests/cli checks they agree

EXIT_OK = 0
EXIT_LIBRARY = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3

_EXIT_HELP = (
    "\b\nExit codes:\n"
    "  0  the plan is acceptable (soft verdicts still need an override before a start)\n"
    "  1  the protocol library cannot be read (a file is invalid or changed after release)\n"
    "  2  bad input (no unit, unknown unit, NaN, zero, unknown protocol, missing height/sex)\n"
    "  3  refused: a hard limit is violated; no override is possible"
)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _library(path: str | None) -> Library:
    from pumpd.protocols import ProtocolFileError, load_library

    try:
        return load_library(path)
    except ProtocolFileError as exc:
        _fail(EXIT_LIBRARY, str(exc))


def _entry(library: Library, protocol_id: str, version: int | None) -> LoadedProtocol:
    from pumpd.protocols import UnknownProtocol

    try:
        return library.get(protocol_id, version)
    except UnknownProtocol as exc:
        _fail(EXIT_BAD_INPUT, str(exc))


_library_option = click.option(
    "--library",
    "library_path",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help=f"Protocol directory (default: ${ENV_VAR}, else the repository's protocols/).",
)


_MAIN_HELP = (
    "Plan, run and watch ketamine infusions with pumpd.\n\n"
    "plan and protocols work offline; every other command talks to pumpd over its control "
    "socket.\n\n"
    "\b\nExit codes of the live commands:\n"
    "  0  done\n"
    "  1  other failure (not confirmed at the prompt, pump not answering, a bug)\n"
    "  2  bad usage (unknown pump, malformed value, missing option)\n"
    "  3  refused by a safety rule or the session's state (the kernel's reason is printed)\n"
    "  4  not authorized (role, staff login, PIN, socket permission)\n"
    "  5  pumpd unreachable"
)


@click.group(help=_MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    default=default_socket_path,
    show_default="$PUMPD_SOCKET or /run/pumpd/pumpd.sock",
    help="pumpd's control socket.",
)
@click.pass_context
def main(ctx: click.Context, socket_path: str) -> None:
    """The pumpctl command group: offline planning plus the live commands."""
    ctx.obj = Target(socket_path=socket_path)


for _command in (
    reads.pumps,
    reads.status,
    reads.watch,
    reads.alarms,
    reads.whoami,
    reads.checklist,
    *session.COMMANDS,
    *staff.COMMANDS,
):
    main.add_command(_command)


@main.command(
    help="Compute an infusion plan from a protocol and the patient, with its verdicts.\n\n"
    "Weight, height, dose and duration need explicit units: 80kg or 176lb, 180cm, "
    "0.5mg/kg (or 0.35mg/kg/h for a rate protocol), 40min or 4h.\n\n" + _EXIT_HELP,
)
@click.option("--protocol", "protocol_id", required=True, help="Protocol id.")
@click.option("--version", "version", type=click.IntRange(min=1), help="Protocol version.")
@click.option("--weight", required=True, help="Actual body weight with unit: 80kg, 176lb.")
@click.option("--dose", help="Prescribed dose (default: the protocol's).")
@click.option("--duration", help="Infusion duration (default: the protocol's).")
@click.option("--height", help="Height with unit, when the weight basis needs it: 180cm.")
@click.option("--sex", help="male or female, when the weight basis needs it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_library_option
def plan(
    protocol_id: str,
    version: int | None,
    weight: str,
    dose: str | None,
    duration: str | None,
    height: str | None,
    sex: str | None,
    as_json: bool,
    library_path: str | None,
) -> None:
    from safety.plan import compute_plan, parse_order, parse_patient
    from safety.units import InputError

    entry = _entry(_library(library_path), protocol_id, version)
    try:
        result = compute_plan(
            entry.protocol, parse_patient(weight, height, sex), parse_order(dose, duration)
        )
    except InputError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    if as_json:
        payload = {"protocol_sha256": entry.sha256, **result.as_dict()}
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _print_plan(entry, result)
    sys.exit(EXIT_REFUSED if result.refused else EXIT_OK)


def _print_plan(entry: LoadedProtocol, p: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    from safety.units import fmt
    from safety.verdicts import Severity

    console = Console(highlight=False)
    table = Table(title=f"{entry.protocol.title} ({p.protocol_key})", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    basis = p.weight_basis.value
    if p.weight_basis_applied is not p.weight_basis:
        basis += f" -> {p.weight_basis_applied.value}"
    rows = [
        ("patient weight", f"{fmt(p.weight_kg)} kg"),
        ("dosing weight", f"{fmt(p.dosing_weight_kg)} kg ({basis})"),
        ("dose", f"{fmt(p.dose_mg_per_kg, 4)} mg/kg = {fmt(p.dose_mg, 3)} mg"),
        (
            "flow rate | dose rate",
            f"{fmt(p.rate_ml_h)} mL/h | {fmt(p.dose_rate_mg_kg_h, 4)} mg/kg/h",
        ),
        ("volume (VTBI)", f"{fmt(p.volume_ml, 3)} mL ({p.vtbi_ul} µL)"),
        ("concentration", f"{fmt(p.concentration_mg_per_ml, 4)} mg/mL"),
        ("duration", f"{fmt(p.duration_min)} min"),
        (
            "rounding to the pump",
            f"{fmt(p.rate_rounding_ml_h, 4)} mL/h, {fmt(p.vtbi_rounding_ul, 3)} µL, "
            f"{fmt(p.dose_rounding_mg, 4)} mg",
        ),
        ("prepare", f"{fmt(p.container_drug_mg, 3)} mg in {fmt(p.container_volume_ml)} mL"),
        (
            "priming",
            f"{fmt(p.priming_volume_ml)} mL with {'drug' if p.primed_with_drug else 'carrier'}"
            f" ({fmt(p.priming_drug_mg, 3)} mg)",
        ),
        ("dose reaching the patient", f"{fmt(p.dose_to_patient_mg, 3)} mg"),
        ("KVO after the end", f"{fmt(p.kvo_rate_ml_h)} mL/h"),
    ]
    if p.expected_duration_min is not None:
        rows.insert(7, ("expected duration at pump rate", f"{fmt(p.expected_duration_min)} min"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    style = {Severity.HARD: "bold red", Severity.SOFT: "yellow", Severity.NOTE: "dim"}
    for v in p.verdicts:
        console.print(f"[{style[v.severity]}]{v.severity.value.upper()}[/] {v.message} ({v.code})")
    if p.refused:
        console.print("[bold red]REFUSED[/]: a hard limit is violated; this order cannot be given.")
    elif p.override.required:
        who = " and a second person" if p.override.second_person else ""
        console.print(
            f"[yellow]NEEDS OVERRIDE[/]: a reason{who}, covering {', '.join(p.override.codes)}."
        )
    else:
        console.print("[green]ACCEPTABLE[/]")


@main.group(invoke_without_command=True, help="List the protocol library.\n\n" + _EXIT_HELP)
@_library_option
@click.option(
    "--json", "as_json", is_flag=True, help="The list as JSON (id, version, status, sha256)."
)
@click.pass_context
def protocols(ctx: click.Context, library_path: str | None, as_json: bool) -> None:
    ctx.obj = library_path
    if ctx.invoked_subcommand is not None:
        return
    library = _library(library_path)
    if as_json:
        listed = [
            {
                "protocol_id": e.protocol.id,
                "version": e.protocol.version,
                "name": e.protocol.title,
                "drug": e.protocol.drug,
                "dose_mode": e.protocol.dose.mode,
                "status": "released" if e.released else "unreleased",
                "sha256": e.sha256,
            }
            for e in library
        ]
        click.echo(json.dumps(listed, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Protocol library {library.path}")
    for column in ("id", "v", "dose mode", "released", "sha256"):
        table.add_column(column, no_wrap=True)
    table.add_column("title")
    for e in library:
        p = e.protocol
        released = "yes" if e.released else "DRAFT"
        table.add_row(p.id, str(p.version), p.dose.mode, released, e.sha256[:12], p.title)
    Console(highlight=False).print(table)


@protocols.command(help="Print one protocol (latest version unless --version).")
@click.argument("protocol_id")
@click.option("--version", "version", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="The validated protocol as JSON.")
@click.pass_obj
def show(library_path: str | None, protocol_id: str, version: int | None, as_json: bool) -> None:
    entry = _entry(_library(library_path), protocol_id, version)
    if as_json:
        data = {"sha256": entry.sha256, "released": entry.released}
        data.update(entry.protocol.model_dump(mode="json"))
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_protocol(entry)


def _band_text(band: Band | None, unit: str) -> str:
    from safety.units import fmt

    if band is None:
        return "-"
    soft = f"{fmt(band.soft_min, 4) if band.soft_min is not None else '…'}–" + (
        f"{fmt(band.soft_max, 4)}" if band.soft_max is not None else "…"
    )
    hard = f"{fmt(band.hard_min, 4) if band.hard_min is not None else '0'}–{fmt(band.hard_max, 4)}"
    return f"soft {soft} {unit}; hard {hard} {unit}"


def _print_protocol(entry: LoadedProtocol) -> None:
    from rich.console import Console
    from rich.table import Table

    from safety.protocol import FixedBag, TotalDose
    from safety.units import fmt

    p = entry.protocol
    console = Console(highlight=False)
    table = Table(title=f"{p.title} ({p.key})", show_header=False)
    table.add_column("field")
    table.add_column("value")
    if isinstance(p.dose, TotalDose):
        dose = f"{fmt(p.dose.default_mg_per_kg, 4)} mg/kg"
    else:
        dose = f"{fmt(p.dose.default_mg_per_kg_h, 4)} mg/kg/h"
    if isinstance(p.preparation, FixedBag):
        prep = f"dose diluted to {fmt(p.preparation.bag_volume_ml)} mL"
    else:
        prep = f"{fmt(p.preparation.concentration_mg_per_ml, 4)} mg/mL"
    lim = p.limits
    rows = [
        ("sha256", entry.sha256),
        ("status", "released" if entry.released else "DRAFT (not in released.sha256)"),
        ("drug / indication", f"{p.drug} / {p.indication}"),
        ("default", f"{dose} over {fmt(p.dose.default_duration_min)} min ({p.dose.mode})"),
        ("preparation", prep),
        ("weight basis", p.weight_basis.value),
        ("dose limits", _band_text(lim.dose_mg_per_kg, "mg/kg")),
        ("dose-rate limits", _band_text(lim.dose_rate_mg_per_kg_h, "mg/kg/h")),
        ("total-dose limits", _band_text(lim.total_dose_mg, "mg")),
        ("flow-rate limits", _band_text(lim.rate_ml_h, "mL/h")),
        ("duration limits", _band_text(lim.duration_min, "min")),
        ("weight limits", _band_text(lim.weight_kg, "kg")),
        (
            "priming",
            f"{fmt(p.priming.volume_ml)} mL at {fmt(p.priming.rate_ml_h)} mL/h with "
            f"{'drug' if p.priming.primed_with_drug else 'carrier'}",
        ),
        ("KVO", f"{fmt(p.kvo_rate_ml_h)} mL/h"),
        (
            "pause",
            f"remind after {fmt(p.pause.reminder_after_min)} min, every "
            f"{fmt(p.pause.reminder_interval_min)} min; "
            f"stop after {fmt(p.pause.stop_after_min)} min",
        ),
        (
            "vitals",
            f"{', '.join(p.vitals.required)} every {p.vitals.interval_min} min; baseline "
            f"≤ {p.vitals.baseline_max_age_min} min old",
        ),
        ("observation", f"{p.observation_min} min"),
        ("discharge checklist", "; ".join(p.discharge_checklist)),
        ("double-check", "required" if p.double_check_required else "not required"),
        ("soft override", "reason + second person" if p.soft_override_second_person else "reason"),
        (
            "course",
            f"≥ {fmt(p.course.min_interval_h)} h apart; ≤ {p.course.max_sessions_in_window} "
            f"sessions and ≤ {fmt(p.course.max_cumulative_dose_mg_per_kg_in_window)} mg/kg in "
            f"{p.course.window_days} days; series of {p.course.planned_series} over "
            f"{p.course.planned_span_days} days",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@protocols.command(help="Print the JSON Schema of a protocol file.")
def schema() -> None:
    from pumpd.protocols import schema_json

    click.echo(schema_json(), nl=False)

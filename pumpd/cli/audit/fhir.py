"""``pumpaudit fhir``: one session as a FHIR R4 transaction Bundle, written or posted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click

from pumpd.cli.audit.group import _DatabaseFailure, _PostFailure, _site, _UsageFailure, main
from pumpd.cli.audit.report import _gather, _key_file, _protocols
from pumpd.report.record import PATIENT_SYSTEM


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

"""``pumpaudit verify``: the chain checked whole, against witnessed heads when given."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import AuditError, Hasher, load_key, parse_checkpoint, read_heads, verify
from pumpd.central.verify import central_findings
from pumpd.cli.audit.group import EXIT_BROKEN, _DatabaseFailure, _json, _site, _UsageFailure, main


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

"""``pumpd``: the daemon (``pumpd --config PATH``, foreground) and its ``db`` commands.

``pumpd --config /etc/pumpd/pumpd.toml`` runs the daemon in the foreground, as systemd
starts it (docs/daemon.md); ``--check`` validates the file and what it points to (spool and
socket directories, protocol library, audit database) without starting, with the exit
status the start would have. ``pumpd db upgrade`` and ``pumpd db current`` manage the audit
schema; ``pumpd central upgrade`` a central store's.
Exit status: 0 done (also after SIGTERM), 1 start-up failed for another reason (the log
says why), 2 bad usage, a configuration file that does not validate, or a configured
chain key file that cannot be used (missing, unreadable, readable by others, short), 3 the database
cannot be opened or is at an unknown (newer) revision, or the audit spool is refused (its
directory missing or not writable, a damaged or foreign leftover), 4 the protocol library
is refused.
The unit file keeps systemd from restarting on 2-4: those need a person.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
import structlog
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import AuditError, migrate
from pumpd.db import DatabaseUrlError, make_engine, url_from_env

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_PROTOCOLS = 4

_database = click.option(
    "--database",
    envvar="PUMPD_DATABASE",
    metavar="URL",
    help="sqlite:///PATH, a file path, or postgresql://... (default: $PUMPD_DATABASE)",
)


class _UsageFailure(click.ClickException):
    exit_code = EXIT_USAGE


class _DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


@click.group(
    name="pumpd",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PUMPD_CONFIG",
    help="run the daemon with this configuration file (TOML; docs/daemon.md)",
)
@click.option("--check", is_flag=True, help="validate the configuration file and exit")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, check: bool) -> None:
    """Infusion-pump control and audit daemon."""
    if ctx.invoked_subcommand is not None:
        if config_path is not None or check:
            raise _UsageFailure("--config and --check run the daemon; not with a sub-command")
        return
    if config_path is None:
        raise _UsageFailure("give --config PATH to run the daemon, or a command (see --help)")
    raise SystemExit(_run_daemon(config_path, check=check))


def _run_daemon(config_path: Path, *, check: bool) -> int:
    from pumpd.audit import KeyFileError, SchemaError, SpoolError
    from pumpd.config import ConfigError, load_config
    from pumpd.daemon import app, logs
    from pumpd.daemon.notify import Notifier, NotifyError
    from pumpd.protocols import ProtocolFileError

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for key, message in exc.problems:
            click.echo(f"{config_path}: {key}: {message}", err=True)
        return EXIT_USAGE
    if check:
        from pumpd.daemon.preflight import preflight

        findings, notes = preflight(config)
        for finding in findings:
            click.echo(f"{config_path}: {finding.key}: {finding.message}", err=True)
        for note in notes:
            click.echo(f"{config_path}: note: {note}")
        if findings:
            return findings[0].exit_code
        click.echo(
            f"{config_path}: ok ({len(config.pumps)} pumps, sha256 {config.sha256}"
            f"{', SIMULATION' if config.simulation else ''})"
        )
        return 0
    handler = logs.configure(config.log_format, config.log_level, simulated=config.simulation)
    log = structlog.get_logger("pumpd.daemon")
    try:
        notifier = Notifier.from_env()
        return asyncio.run(app.run(config, notifier=notifier, out=sys.stdout))
    except NotifyError as exc:
        log.critical("cannot talk to systemd", error=str(exc))
        return EXIT_FAILED
    except (SchemaError, SQLAlchemyError) as exc:
        log.critical("audit database refused", error=str(exc))
        return EXIT_DATABASE
    except SpoolError as exc:
        log.critical("audit spool refused", error=str(exc))
        return EXIT_DATABASE
    except KeyFileError as exc:
        log.critical("audit chain key refused", error=str(exc))
        return EXIT_USAGE
    except ProtocolFileError as exc:
        log.critical("protocol library refused", error=str(exc))
        return EXIT_PROTOCOLS
    except app.StartupError as exc:
        log.critical("start-up refused", error=str(exc))
        return EXIT_FAILED
    except Exception as exc:
        log.critical("start-up failed", error=repr(exc), exc_info=True)
        return EXIT_FAILED
    finally:
        logs.unconfigure(handler)


@main.group("db")
def db() -> None:
    """The audit database's schema."""


@db.command("upgrade")
@_database
@click.option("--to", "target", default="head", show_default=True, help="target revision")
def db_upgrade(database: str | None, target: str) -> None:
    """Create or migrate the audit schema (refuses a database from a newer pumpd)."""
    try:
        url = url_from_env(database)
    except DatabaseUrlError as exc:
        raise _UsageFailure(str(exc)) from exc
    engine = make_engine(url)
    try:
        result = migrate.upgrade(engine, target)
    except (AuditError, SQLAlchemyError) as exc:
        raise _DatabaseFailure(f"upgrade refused: {exc}") from exc
    finally:
        engine.dispose()
    if result.before == result.after:
        click.echo(f"{url.render_as_string()}: already at {result.after}")
    else:
        click.echo(f"{url.render_as_string()}: {result.before or '(empty)'} -> {result.after}")


@db.command("current")
@_database
def db_current(database: str | None) -> None:
    """Print the database's revision and whether it is this pumpd's head."""
    try:
        url = url_from_env(database)
    except DatabaseUrlError as exc:
        raise _UsageFailure(str(exc)) from exc
    engine = make_engine(url, read_only=True)
    try:
        current = migrate.current_revision(engine)
        head = migrate.head_revision()
        known = migrate.revisions()
    except (AuditError, SQLAlchemyError) as exc:
        raise _DatabaseFailure(f"cannot read the revision: {exc}") from exc
    finally:
        engine.dispose()
    if current is None:
        click.echo(f"(empty) — run `pumpd db upgrade`; head is {head}")
        raise SystemExit(EXIT_DATABASE)
    if current not in known:
        raise _DatabaseFailure(
            f"{current} is not a revision this pumpd knows (newest known: {head}); "
            "written by a newer pumpd?"
        )
    click.echo(f"{current}" + (" (head)" if current == head else f" (head is {head})"))
    if current != head:
        raise SystemExit(EXIT_DATABASE)


@main.group("central")
def central() -> None:
    """A central store for a chain of clinics (PostgreSQL; docs/central.md)."""


@central.command("upgrade")
@click.option(
    "--database",
    envvar="PUMPD_CENTRAL_DATABASE",
    metavar="URL",
    help="postgresql://OWNER@HOST/DB of the central store (default: $PUMPD_CENTRAL_DATABASE)",
)
def central_upgrade(database: str | None) -> None:
    """Create or migrate the central store's schema (never a site's audit log)."""
    from pumpd.central import migrate as central_migrate

    if not database:
        raise _UsageFailure("give --database URL (or set PUMPD_CENTRAL_DATABASE)")
    try:
        engine = make_engine(database)
    except DatabaseUrlError as exc:
        raise _UsageFailure(str(exc)) from exc
    try:
        result = central_migrate.upgrade(engine)
    except (AuditError, SQLAlchemyError) as exc:
        raise _DatabaseFailure(f"upgrade refused: {exc}") from exc
    finally:
        engine.dispose()
    shown = engine.url.render_as_string()
    if result.before == result.after:
        click.echo(f"{shown}: already at {result.after}")
    else:
        click.echo(f"{shown}: {result.before or '(empty)'} -> {result.after}")


@main.group("audit")
def audit() -> None:
    """The audit chain's key."""


@audit.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--owner",
    metavar="USER",
    help="make the file this user's (the daemon's service user, e.g. pumpd); needs root",
)
def audit_keygen(path: Path, owner: str | None) -> None:
    """Create a new chain key: 32 random bytes in PATH, mode 0400; never overwrites.

    Set it as [audit] key_file. The key never enters the database; keep a copy where the
    database's backups are not (an auditor needs it to verify). Prints the key's id.
    """
    from pumpd.audit import KeyFileError, generate_key_file

    try:
        key = generate_key_file(path, owner=owner)
    except KeyFileError as exc:
        raise _UsageFailure(str(exc)) from exc
    click.echo(f"{path}: new chain key {key.key_id} (32 bytes, mode 0400)")
    if owner is None and os.geteuid() == 0:
        click.echo(
            f"owned by root: give it to the daemon's user (chown pumpd {path}) or run with "
            "--owner pumpd",
            err=True,
        )


if __name__ == "__main__":
    main()

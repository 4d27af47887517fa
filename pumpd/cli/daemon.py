"""``pumpd``: the daemon's command group. For now ``pumpd db upgrade`` and ``pumpd db current``.

The group is the place later commands hang from (``pumpd run`` arrives with the daemon):
each is a sub-command or sub-group of ``main``, so they share ``--help`` and exit codes.
Exit status: 0 done, 2 bad usage, 3 the database cannot be opened or is at an unknown
(newer) revision.
"""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import migrate
from pumpd.audit.errors import AuditError
from pumpd.db import DatabaseUrlError, make_engine, url_from_env

EXIT_USAGE = 2
EXIT_DATABASE = 3

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


@click.group(name="pumpd", context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Infusion-pump control and audit daemon."""


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


if __name__ == "__main__":
    main()

"""The ``pumpaudit`` command group: its database and site options, the exit statuses, and
the options and failures every command shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import AuditError, QueryInputError, migrate, parse_time
from pumpd.central import migrate as central_migrate
from pumpd.central.verify import UnknownSite, check_site, narrow_to_site
from pumpd.db import DatabaseUrlError, make_engine, url_from_env

EXIT_BROKEN = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_POST = 4


class _UsageFailure(click.ClickException):
    exit_code = EXIT_USAGE


class _DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


class _PostFailure(click.ClickException):
    exit_code = EXIT_POST


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


@contextmanager
def _connection(ctx: click.Context) -> Iterator[Connection]:
    engine: Engine = ctx.obj["engine"]()
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise _DatabaseFailure(f"database error: {exc.__class__.__name__}: {exc}") from exc
    except QueryInputError as exc:
        raise _UsageFailure(str(exc)) from exc
    finally:
        engine.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database",
    envvar="PUMPD_DATABASE",
    metavar="URL",
    help="sqlite:///PATH, a file path, or postgresql://... (default: $PUMPD_DATABASE)",
)
@click.option(
    "--site",
    metavar="SITE",
    help="at a central store: the site whose log to read (docs/central.md)",
)
@click.pass_context
def main(ctx: click.Context, database: str | None, site: str | None) -> None:
    """Read and verify the pumpd audit log (a site's, or one site's at a central store)."""

    def open_engine() -> Engine:
        try:
            engine = make_engine(url_from_env(database), read_only=True)
        except DatabaseUrlError as exc:
            raise _UsageFailure(str(exc)) from exc
        chosen = ctx.obj["site"]
        try:
            if chosen is None:
                migrate.require_current(engine)
            else:
                _central_scope(engine, chosen)
        except (AuditError, SQLAlchemyError) as exc:
            engine.dispose()
            raise _DatabaseFailure(f"cannot use this database: {exc}") from exc
        except UnknownSite as exc:
            engine.dispose()
            raise _UsageFailure(str(exc)) from exc
        return engine

    ctx.obj = {"engine": open_engine, "site": site}


def _central_scope(engine: Engine, site: str) -> None:
    """A central store's views, narrowed to ``site`` (every connection of ``engine``)."""
    narrow_to_site(engine, site)  # before the first connection: it applies at connect
    central_migrate.require_current(engine)
    with engine.connect() as conn:
        check_site(conn, site)


def _time_option(name: str, help_text: str) -> Callable[[Any], Any]:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_time(value)
        except QueryInputError as exc:
            raise click.BadParameter(str(exc)) from exc

    return click.option(name, callback=convert, metavar="TIME", help=help_text)


_since = _time_option("--since", "from this UTC time (ISO 8601; a date means 00:00 UTC)")
_until = _time_option("--until", "before this UTC time (exclusive)")
_json = click.option("--json", "as_json", is_flag=True, help="machine-readable JSON output")


def _set_site(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().obj["site"] = value


_site = click.option(
    "--site",
    metavar="SITE",
    expose_value=False,
    callback=_set_site,
    help="at a central store: the site whose log to read (as pumpaudit --site)",
)

"""Schema revisions: upgrade a database, and refuse one this code does not understand.

The Alembic configuration is built here rather than read from an ``alembic.ini``, so
``pumpd db upgrade`` works from any directory. A database whose revision is not in
the migrations' ``versions/`` was written by a newer (or foreign) pumpd: writing to it could
produce events the newer reader misinterprets, so every entry point refuses it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from pumpd.audit.errors import SchemaError
from pumpd.db import make_engine, reader
from pumpd.shipped import migrations_dir

MIGRATIONS_DIR = migrations_dir()


def _config(url: URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option(
            "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def scripts_at(directory: Path, what: str) -> ScriptDirectory:
    """The Alembic script directory at ``directory`` (``what`` names it in errors)."""
    if not (directory / "env.py").is_file():
        raise SchemaError(f"{what} not found at {directory}")
    cfg = Config()
    cfg.set_main_option("script_location", str(directory))
    return ScriptDirectory.from_config(cfg)


def revisions_at(directory: Path, what: str) -> list[str]:
    """Every revision of the script directory, oldest first."""
    return [s.revision for s in reversed(list(scripts_at(directory, what).walk_revisions()))]


def head_at(directory: Path, what: str) -> str:
    """The script directory's one head; more than one is an error in the release."""
    heads = scripts_at(directory, what).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"{what} have {len(heads)} heads; expected exactly one")
    return heads[0]


def revisions() -> list[str]:
    """Every known revision, oldest first."""
    return revisions_at(MIGRATIONS_DIR, "migrations")


def head_revision() -> str:
    return head_at(MIGRATIONS_DIR, "migrations")


def current_revision(engine: Engine) -> str | None:
    with reader(engine).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    before: str | None
    after: str


def upgrade(engine: Engine, target: str = "head") -> UpgradeResult:
    """Bring the database to ``target`` in one transaction; refuse unknown revisions."""
    before = current_revision(engine)
    _refuse_unknown(before)
    known = revisions()
    if target != "head" and target not in known:
        raise SchemaError(f"unknown target revision {target!r}; known: {', '.join(known)}")
    if before is not None and target != "head" and known.index(before) > known.index(target):
        raise SchemaError(
            f"database is at {before}, later than {target}; the audit log never goes back"
        )
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
    after = current_revision(engine)
    if after is None:
        raise SchemaError("upgrade finished but the database reports no revision")
    return UpgradeResult(before=before, after=after)


def upgrade_url(url: URL | str, target: str = "head") -> UpgradeResult:
    engine = make_engine(url)
    try:
        return upgrade(engine, target)
    finally:
        engine.dispose()


def require_current(engine: Engine) -> str:
    """The database's revision when it is exactly this code's head; otherwise a clear error."""
    current = current_revision(engine)
    if current is None:
        raise SchemaError(
            "the database has no audit schema; run `pumpd db upgrade --database URL` first"
        )
    _refuse_unknown(current)
    head = head_revision()
    if current != head:
        raise SchemaError(
            f"the database is at revision {current}, this pumpd needs {head}; "
            "run `pumpd db upgrade --database URL`"
        )
    return current


def _refuse_unknown(revision: str | None) -> None:
    if revision is None:
        return
    known = revisions()
    if revision not in known:
        from pumpd.central import migrate as central_migrate

        if revision in central_migrate.revisions():
            raise SchemaError(
                f"this database is a central store (revision {revision}), not a site's "
                "audit log; use `pumpd central upgrade` and `pumpaudit --site`"
            )
        raise SchemaError(
            f"the database is at revision {revision!r}, which this pumpd does not know "
            f"(newest known: {known[-1]}); it was probably written by a newer pumpd — "
            "refusing to touch it"
        )

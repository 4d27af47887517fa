"""The central store's schema: made and upgraded by ``pumpd central upgrade`` only.

Its revisions live in their own script directory (``migrations/central``, branch label
``central``), so a site's ``pumpd db upgrade`` never creates a central store and this never
creates a site's log; each refuses the other's database by name. The forwarder never
migrates: it checks that the centre is at the revision it knows.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from pumpd.audit import SchemaError
from pumpd.audit import migrate as site_migrate
from pumpd.audit.migrate import UpgradeResult as UpgradeResult
from pumpd.audit.migrate import current_revision as current_revision
from pumpd.shipped import central_migrations_dir

CENTRAL_DIR = central_migrations_dir()


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(CENTRAL_DIR))
    return cfg


def revisions() -> list[str]:
    return site_migrate.revisions_at(CENTRAL_DIR, "central migrations")


def head_revision() -> str:
    return site_migrate.head_at(CENTRAL_DIR, "central migrations")


def _refuse_foreign(revision: str | None) -> None:
    if revision is None or revision in revisions():
        return
    if revision in site_migrate.revisions():
        raise SchemaError(
            f"this database is a site's audit log (revision {revision}), not a central "
            "store; give the central store's URL"
        )
    raise SchemaError(
        f"the database is at revision {revision!r}, which this pumpd does not know "
        f"(newest central revision: {head_revision()}); refusing to touch it"
    )


def upgrade(engine: Engine) -> UpgradeResult:
    """Bring a central store to head in one transaction (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        raise SchemaError("a central store is PostgreSQL only (postgresql://...)")
    before = current_revision(engine)
    _refuse_foreign(before)
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "central@head")
    after = current_revision(engine)
    if after is None:
        raise SchemaError("upgrade finished but the database reports no revision")
    return UpgradeResult(before=before, after=after)


def require_current(engine: Engine) -> str:
    """The centre's revision when it is exactly this code's head; otherwise a clear error."""
    if engine.dialect.name != "postgresql":
        raise SchemaError("a central store is PostgreSQL only; this is not one")
    current = current_revision(engine)
    if current is None:
        raise SchemaError(
            "the database has no central schema; run `pumpd central upgrade --database URL`"
        )
    _refuse_foreign(current)
    head = head_revision()
    if current != head:
        raise SchemaError(
            f"the central store is at revision {current}, this pumpd needs {head}; "
            "run `pumpd central upgrade --database URL`"
        )
    return current


def is_central(engine: Engine) -> bool:
    """True when the database carries a central revision (any this code knows)."""
    if engine.dialect.name != "postgresql":
        return False
    return current_revision(engine) in revisions()

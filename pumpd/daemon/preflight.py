"""``pumpd --check``: every start-up refusal that can be found without starting.

The configuration file's own validation is ``pumpd.config``; this looks at what the file
points to, as the start would: the audit spool's directory, the socket's directory, the
protocol library, and the audit database (reachable, and at a revision this pumpd can use).
Nothing is taken over or changed: no pump is contacted, no socket bound, no lock taken
(the running daemon holds it while an administrator checks its next configuration), no
schema upgraded, no leftover spool read (reading one may set a torn tail aside).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import AuditError, Spool, SpoolError, migrate
from pumpd.config import DaemonConfig
from pumpd.daemon import lines, liveuse
from pumpd.db import make_engine
from pumpd.protocols import Library, ProtocolFileError, load_library

EXIT_FAILED = 1
EXIT_DATABASE = 3
EXIT_PROTOCOLS = 4


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason the start would be refused: the key at fault, why, and the exit status
    the start would end with (docs/daemon.md)."""

    key: str
    message: str
    exit_code: int


def preflight(config: DaemonConfig) -> tuple[list[Finding], list[str]]:
    """The refusals a start would meet, and notes (not refusals) worth saying."""
    found: list[Finding] = []
    notes: list[str] = []
    socket_dir = Path(config.socket).parent
    if not socket_dir.is_dir():
        found.append(
            Finding("daemon.socket", f"the socket's directory {socket_dir} does not exist", 1)
        )
    elif not os.access(socket_dir, os.W_OK | os.X_OK):
        found.append(
            Finding("daemon.socket", f"the socket's directory {socket_dir} is not writable", 1)
        )
    if config.audit_spool is not None:
        try:
            Spool(config.audit_spool, config.database).check_place()
        except SpoolError as exc:
            found.append(Finding("daemon.audit_spool", str(exc), EXIT_DATABASE))
    try:
        library: Library | None = load_library(config.protocols)
    except ProtocolFileError as exc:
        library = None
        found.append(Finding("daemon.protocols", str(exc), EXIT_PROTOCOLS))
    if library is not None and not config.simulation:
        drafts = [e.protocol.key for e in library if not e.released]
        if drafts:
            notes.append(
                f"{len(drafts)} draft protocol(s) will be refused for patients: "
                + ", ".join(drafts)
            )
    pumps_refused, pump_notes = liveuse.review(config)
    found += [Finding(r.key, r.message, EXIT_FAILED) for r in pumps_refused]
    notes += pump_notes
    lines_refused, line_warnings = lines.review(config)
    found += [Finding(r.key, r.message, EXIT_FAILED) for r in lines_refused]
    notes += line_warnings
    problem = _database(config)
    if problem is not None:
        found.append(Finding("daemon.database", problem, EXIT_DATABASE))
    return found, notes


def _database(config: DaemonConfig) -> str | None:
    url = make_url(config.database)
    if url.get_backend_name().startswith("sqlite") and url.database:
        path = Path(url.database)
        if not path.exists():
            if not config.upgrade_schema:
                return f"{path} does not exist; run `pumpd db upgrade --database URL` first"
            if not path.parent.is_dir():
                return f"the database's directory {path.parent} does not exist"
            return None  # the start creates it (upgrade_schema); checking would too
    engine = make_engine(config.database)
    try:
        if config.upgrade_schema:
            current = migrate.current_revision(engine)
            if current is not None and current not in migrate.revisions():
                migrate.require_current(engine)  # raises the unknown-revision refusal
        else:
            migrate.require_current(engine)
    except (AuditError, SQLAlchemyError) as exc:
        return _first_line(str(getattr(exc, "orig", None) or exc))
    finally:
        engine.dispose()
    return None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["?"])[0][:300]

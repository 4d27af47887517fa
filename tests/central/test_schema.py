"""The central schema: made only by its own migrations, append-only for everyone, each kind
of database refused by the other's tools, and the documented roles doing exactly their job."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pumpd.audit import SchemaError, migrate
from pumpd.central import migrate as central_migrate
from pumpd.central.schema import metadata
from pumpd.cli import daemon as daemon_cli
from pumpd.cli import pumpaudit
from pumpd.db import make_engine

from .conftest import Centre, Site, drain

pytestmark = pytest.mark.postgres

ROLES_SQL = Path(__file__).resolve().parents[2] / "migrations" / "sql" / "central-roles.sql"


def test_tables_match_the_runtime_description(centre: Centre) -> None:
    engine = make_engine(centre.url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            live = [c["name"] for c in inspector.get_columns(table.name)]
            assert live == [c.name for c in table.columns], table.name
        assert central_migrate.current_revision(engine) == central_migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE central_event SET payload = '{}'",
        "DELETE FROM central_event",
        "TRUNCATE central_event",
        "UPDATE central_site SET identity = repeat('f', 64)",
        "DELETE FROM central_head",
        "DELETE FROM central_conflict",
        "TRUNCATE central_site CASCADE",
    ],
)
def test_append_only_even_for_the_owner(
    centre: Centre, make_site: Callable[..., Site], statement: str
) -> None:
    site = make_site("clinic-north")
    site.append(3)
    drain(site.forwarder())
    centre.admin(
        "INSERT INTO central_head (site, seq, event_hash, ts) VALUES "
        "('clinic-north', 3, repeat('a', 64), '2026-12-06T00:00:00.000000Z')"
    )
    centre.admin(
        "INSERT INTO central_conflict (site, seq, kind, offered_hash, detail) VALUES "
        "('clinic-north', 1, 'gap', repeat('a', 64), 'test')"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        centre.admin(statement)
    assert len(centre.events("clinic-north")) == 3


def test_each_kind_of_database_refuses_the_others_tools(centre: Centre, tmp_path: Path) -> None:
    site_url = f"sqlite:///{tmp_path / 'audit.db'}"
    runner = CliRunner()
    done = runner.invoke(daemon_cli.main, ["db", "upgrade", "--database", centre.url])
    assert done.exit_code == 3
    assert "is a central store" in done.output
    assert runner.invoke(daemon_cli.main, ["db", "upgrade", "--database", site_url]).exit_code == 0
    done = runner.invoke(daemon_cli.main, ["central", "upgrade", "--database", site_url])
    assert done.exit_code == 3
    assert "PostgreSQL only" in done.output
    # A site's log on PostgreSQL is refused by name.
    name = f"pumpd_s_{uuid.uuid4().hex[:10]}"
    centre.admin(f'CREATE DATABASE "{name}"')
    try:
        url = centre.url.rsplit("/", 1)[0] + f"/{name}"
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            with pytest.raises(SchemaError, match="a site's audit log"):
                central_migrate.upgrade(engine)
        finally:
            engine.dispose()
    finally:
        centre.admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    # pumpaudit at a centre needs --site, and names the sites it knows.
    done = runner.invoke(pumpaudit.main, ["--database", centre.url, "sessions"])
    assert done.exit_code == 3
    assert "central store" in done.output
    done = runner.invoke(pumpaudit.main, ["--database", centre.url, "--site", "nowhere", "verify"])
    assert done.exit_code == 2
    assert "no site 'nowhere'" in done.output
    again = runner.invoke(daemon_cli.main, ["central", "upgrade", "--database", centre.url])
    assert again.exit_code == 0
    assert "already at c0002_sessions_outcome" in again.output


@pytest.fixture
def roles(centre: Centre) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {"forwarder_role": f"fwd_{tag}", "auditor_role": f"aud_{tag}"}
    info = psycopg.conninfo.conninfo_to_dict(centre.conninfo)
    cmd = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "owner_role=postgres",
        *(a for k, v in names.items() for a in ("-v", f"{k}={v}")),
        "-h",
        str(info.get("host", "127.0.0.1")),
        "-p",
        str(info.get("port", "5432")),
        "-U",
        str(info.get("user", "postgres")),
        "-d",
        str(info["dbname"]),
        "-f",
        str(ROLES_SQL),
    ]
    for _ in range(2):  # safe to run again
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    try:
        yield names
    finally:
        for role in names.values():
            centre.admin(f'DROP OWNED BY "{role}"')
            centre.admin(f'DROP ROLE "{role}"')


def _as(centre: Centre, role: str) -> str:
    return centre.url.replace("postgres@", f"{role}@", 1)


def test_roles_forwarder_inserts_only_auditor_reads_only(
    centre: Centre, make_site: Callable[..., Site], roles: dict[str, str]
) -> None:
    forwarder_url = _as(centre, roles["forwarder_role"])
    site = make_site("clinic-north")
    site.append(25)
    assert drain(site.forwarder(url=forwarder_url)) == 25
    site.settings.mark_file.unlink()
    assert drain(site.forwarder(url=forwarder_url)) == 25  # duplicates, through the grant
    assert centre.events("clinic-north") == site.rows()
    conninfo = psycopg.conninfo.make_conninfo(centre.conninfo, user=roles["forwarder_role"])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in (
            "UPDATE central_event SET payload = '{}'",
            "DELETE FROM central_event",
            "SELECT payload FROM central_event",
            "SELECT * FROM audit_events",
            "SELECT * FROM central_conflict",
            "INSERT INTO central_site (site, identity, host) VALUES ('x', repeat('a', 64), 'h')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    auditor = _as(centre, roles["auditor_role"])
    done = CliRunner().invoke(
        pumpaudit.main, ["--database", auditor, "--site", "clinic-north", "verify"]
    )
    assert done.exit_code == 0, done.output
    assert "25 events, chain intact" in done.output
    conninfo = psycopg.conninfo.make_conninfo(centre.conninfo, user=roles["auditor_role"])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (25,)
        for statement in (
            "SELECT * FROM central_event",
            "INSERT INTO central_head (site, seq, event_hash, ts) "
            "VALUES ('clinic-north', 1, repeat('a', 64), 'x')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)

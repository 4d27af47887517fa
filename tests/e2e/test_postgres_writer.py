"""The documented PostgreSQL deployment, through the real processes.

Set up exactly as docs/audit.md says: an owner role and its database, `pumpd db upgrade` as
the owner, `migrations/sql/postgres-roles.sql` run with psql as the superuser; then pumpd
runs connected as the writer role. Every role and the database get unique names and are
dropped at the end (roles are cluster-wide). The daemon must supervise both pumps, run an
infusion, and recover its sessions after a restart (recovery reads the log through the
views). And readiness is honest: with the writer's read grant taken away, pumpd names each
pump it does not supervise, with the database's reason, in its log, `pumpctl pumps` and
the answer to `program`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from dbloss.conftest import require_postgres
from psycopg import sql

import pumpd

from .conftest import IS_ROOT, Accounts
from .stack import BIN, PIN, Stack, add_staff, running_stack

ROLES_SQL = Path(pumpd.__file__).resolve().parent.parent / "migrations/sql/postgres-roles.sql"


@dataclass(frozen=True)
class Deployment:
    superuser: str
    """conninfo of the superuser on the deployment's database"""
    writer_url: str
    auditor_url: str
    writer: str


def _url(info: dict[str, object], user: str, dbname: str) -> str:
    host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
    return f"postgresql://{user}@{host}:{port}/{dbname}"


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    base = require_postgres()
    tag = uuid.uuid4().hex[:10]
    name = f"pumpd_e2e_{tag}"
    owner, writer, auditor = (f"pumpd_{r}_{tag}" for r in ("owner", "writer", "auditor"))
    info = psycopg.conninfo.conninfo_to_dict(base)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    superuser = psycopg.conninfo.make_conninfo(base, dbname=name)
    try:
        subprocess.run(
            [str(BIN / "pumpd"), "db", "upgrade", "--database", _url(info, owner, name)],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            ["psql", superuser, "-v", "ON_ERROR_STOP=1", "-v", f"owner_role={owner}",
             "-v", f"writer_role={writer}", "-v", f"auditor_role={auditor}",
             "-f", str(ROLES_SQL)],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        yield Deployment(superuser, _url(info, writer, name), _url(info, auditor, name), writer)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for role in (writer, auditor, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _supervised(stack: Stack) -> list[dict[str, object]]:
    pumps: list[dict[str, object]] = json.loads(stack.ok("pumps", "--json"))
    return pumps


def _second_confirms(stack: Stack, accounts: Accounts, pump: str) -> None:
    if IS_ROOT:
        stack.ok("confirm", pump, "--weight", "82kg", user=accounts.nurse2)
    else:
        stack.ok(
            "confirm", pump, "--weight", "82kg", "--witness", "N002", "--pin-stdin",
            stdin=PIN["N002"] + "\n",
        )  # fmt: skip


def test_pumpd_as_the_writer_role_supervises_runs_and_recovers(
    deployment: Deployment, accounts: Accounts
) -> None:
    with running_stack(
        time_scale=120,
        roles=accounts.roles,
        socket_group=accounts.socket_group,
        database_url=deployment.writer_url,
    ) as stack:
        stack.default_user = accounts.nurse
        pumps = _supervised(stack)
        assert [(p["pump_id"], p["supervised"]) for p in pumps] == [
            ("chair-1", True),
            ("chair-2", True),
        ], pumps
        add_staff(stack, accounts.admin)
        stack.ok(
            "program", "chair-1", "--patient", "P-PG-1", "--weight", "82kg",
            "--protocol", "ketamine-trd-standard", "--yes",
        )  # fmt: skip
        _second_confirms(stack, accounts, "chair-1")
        stack.ok("prime", "chair-1", "--line-disconnected")
        stack.wait_state("chair-1", ["PRIMED"])
        stack.ok("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
        stack.ok("start", "chair-1")
        stack.wait_state("chair-1", ["INFUSING"])
        stack.ok("stop", "chair-1", "--reason", "end of the PostgreSQL test")
        stack.wait_state("chair-1", ["STOPPED"])

        # A restart recovers chair-1's session from the log, read as the writer role.
        assert stack.stop_daemon() == 0
        stack.start_daemon()
        pumps = _supervised(stack)
        assert all(p["supervised"] for p in pumps), pumps
        assert stack.status("chair-1")["session_state"] == "STOPPED"
        verify = subprocess.run(
            [str(BIN / "pumpaudit"), "--database", deployment.auditor_url, "verify"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # Without the read grant, no pump is supervised: readiness says so and why.
        assert stack.stop_daemon() == 0
        with psycopg.connect(deployment.superuser, autocommit=True) as conn:
            conn.execute(
                sql.SQL("REVOKE SELECT ON audit_events FROM {}").format(
                    sql.Identifier(deployment.writer)
                )
            )
        stack.start_daemon()
        deadline = time.monotonic() + 30
        pumps = _supervised(stack)
        while any(p["not_supervised_reason"] is None for p in pumps):
            assert time.monotonic() < deadline, pumps
            time.sleep(0.3)
            pumps = _supervised(stack)
        for p in pumps:
            assert p["supervised"] is False
            assert "permission denied for view audit_events" in str(p["not_supervised_reason"])
        table = stack.ok("pumps")
        assert "NOT SUPERVISED" in table
        refused = stack.pumpctl(
            "program", "chair-2", "--patient", "P-PG-2", "--weight", "82kg",
            "--protocol", "ketamine-trd-standard", "--yes",
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert "does not supervise it" in refused.stderr
        assert "permission denied for view audit_events" in refused.stderr
        log = stack.daemon_log(200_000)
        assert re.search(r"pump not supervised.*permission denied", log), log[-3000:]
        ready = [
            line for line in log.splitlines() if '"pumpd ready"' in line or "pumpd ready" in line
        ]
        assert any("NOT SUPERVISED" in line for line in ready), ready

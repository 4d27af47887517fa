"""What users type as --database, and what pumpd makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpd.db import DatabaseUrlError, normalize_url, url_from_env


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:////var/lib/pumpd/audit.db", "sqlite+pysqlite"),
    ],
)
def test_accepted_urls(raw: str, driver: str) -> None:
    assert normalize_url(raw).drivername == driver


def test_bare_path_is_an_sqlite_file(tmp_path: Path) -> None:
    url = normalize_url(str(tmp_path / "a.db"))
    assert url.drivername == "sqlite+pysqlite"
    assert url.database == str(tmp_path / "a.db")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+asyncpg://u@h/db", "driver 'asyncpg' is not supported"),
    ],
)
def test_refused_urls(raw: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        normalize_url(raw)


def test_environment_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PUMPD_DATABASE", str(tmp_path / "env.db"))
    assert url_from_env(None).database == str(tmp_path / "env.db")
    assert url_from_env(str(tmp_path / "flag.db")).database == str(tmp_path / "flag.db")
    monkeypatch.delenv("PUMPD_DATABASE")
    with pytest.raises(DatabaseUrlError, match="PUMPD_DATABASE"):
        url_from_env(None)

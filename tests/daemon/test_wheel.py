"""A built wheel is a complete install: pumpd built as a wheel (not editable) and installed
into a fresh virtual environment outside the checkout upgrades a database, lists the
protocol library and runs the daemon against the simulator, from a directory that is not
the checkout. A data file left out of the wheel makes one of these fail.

The build runs on a copy of the source tree (the checkout gets no ``build/``); the wheel's
dependencies come from the package index (pip's cache makes them quick).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import migrate
from pumpd.protocols import load_library

from .conftest import write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "mutants",
    "demo-run",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "tests",
    "bench",
    "soak",
)
READY_PREFIX = "pumpd ready "


@dataclass(frozen=True)
class Install:
    """The built wheel, a fresh venv with it installed, and an empty working directory."""

    wheel: Path
    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment minus anything that would point back at the checkout."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PUMPD_PROTOCOLS", "VIRTUAL_ENV", "JOURNAL_STREAM"}
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _build_and_install(base: Path) -> Install:
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    dist = base / "dist"
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source))
    (wheel,) = dist.glob("pumpd-*.whl")
    shutil.rmtree(source)  # nothing of the source tree is left to be found by accident
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # --no-compile: no byte-compiling of every module of every dependency (half the install's
    # time); what the checks below import is compiled as they import it.
    _pip("--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-compile", str(wheel))
    workdir = base / "work"
    workdir.mkdir()
    return Install(wheel, venv, workdir)


def _checkout_files() -> set[str]:
    """Every file the installed packages need, named as it sits in the wheel."""
    files: set[str] = set()

    def add(directory: Path, inside: str) -> None:
        for path in directory.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{inside}/{path.relative_to(directory).as_posix()}")

    for package in ("pumpd", "pumpd_board", "safety"):
        add(ROOT / package, package)
    add(ROOT / "hardware-sim" / "pumpsim", "pumpsim")
    add(ROOT / "protocols", "pumpd/_data/protocols")
    add(ROOT / "migrations", "pumpd/_data/migrations")
    return files


def _check_the_wheel_holds_every_file_of_the_packages_and_the_data(installed: Install) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = set(wheel.namelist())
    missing = sorted(_checkout_files() - shipped)
    assert not missing, f"left out of the wheel: {missing}"
    assert "pumpd/drivers/profiles/gip-mb1.toml" in shipped
    assert "pumpd/_data/protocols/released.sha256" in shipped


def _check_the_wheel_is_imported_not_the_checkout(installed: Install) -> None:
    result = installed.run(installed.bin("python"), "-c", "import pumpd; print(pumpd.__file__)")
    assert result.returncode == 0, result.stderr
    module = Path(result.stdout.strip())
    assert module.is_relative_to(installed.venv / "lib"), module
    assert not module.is_relative_to(ROOT)


def _check_db_upgrade_reaches_the_head_revision(installed: Install) -> None:
    database = f"sqlite:///{installed.workdir / 'upgrade.db'}"
    result = installed.run(installed.bin("pumpd"), "db", "upgrade", "--database", database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(empty) -> {migrate.head_revision()}" in result.stdout

    current = installed.run(installed.bin("pumpd"), "db", "current", "--database", database)
    assert current.returncode == 0, current.stdout + current.stderr
    assert migrate.head_revision() in current.stdout


def _check_pumpctl_protocols_lists_the_shipped_library(installed: Install) -> None:
    result = installed.run(installed.bin("pumpctl"), "protocols", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(result.stdout)
    checkout = load_library(ROOT / "protocols")
    assert [(p["protocol_id"], p["version"], p["sha256"], p["status"]) for p in listed] == [
        (e.protocol.id, e.protocol.version, e.sha256, "released" if e.released else "unreleased")
        for e in checkout
    ]
    assert all(p["status"] == "released" for p in listed), "released.sha256 was shipped too"


async def _check_the_daemon_runs_against_the_simulator(installed: Install) -> None:
    directory = installed.workdir / "daemon"
    directory.mkdir()
    async with Simulator(pumps=2, tcp=True, time_scale=60.0) as sim:
        # The schema is made by `pumpd db upgrade`, as in the service install; the daemon
        # only checks it (and the protocol library and the register-map profile it loads).
        config = write_config(directory, sim, daemon_extra="upgrade_schema = false")
        upgrade = installed.run(
            installed.bin("pumpd"), "db", "upgrade", "--database", f"sqlite:///{directory}/audit.db"
        )
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr

        proc = await asyncio.create_subprocess_exec(
            installed.bin("pumpd"),
            "--config",
            str(config),
            cwd=installed.workdir,
            env=installed.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(90):
                async for raw in proc.stdout:
                    lines.append(raw.decode().rstrip("\n"))
                    if lines[-1].startswith(READY_PREFIX):
                        break
        except TimeoutError:
            proc.kill()
            raise AssertionError("no ready line; output:\n" + "\n".join(lines)) from None
        if not lines or not lines[-1].startswith(READY_PREFIX):
            await proc.wait()
            raise AssertionError("pumpd exited before ready:\n" + "\n".join(lines))
        assert lines[-1] == (
            f"pumpd ready socket={directory / 'pumpd.sock'} pumps=2 simulated=true"
        )
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest = (await proc.stdout.read()).decode()
            rc = await proc.wait()
        assert rc == 0, "\n".join(lines) + rest


async def test_a_built_wheel_is_a_complete_install(tmp_path: Path) -> None:
    # One test, not five: under xdist a module fixture would build and install once per
    # worker that happens to get one of them.
    installed = _build_and_install(tmp_path)
    _check_the_wheel_holds_every_file_of_the_packages_and_the_data(installed)
    _check_the_wheel_is_imported_not_the_checkout(installed)
    _check_db_upgrade_reaches_the_head_revision(installed)
    _check_pumpctl_protocols_lists_the_shipped_library(installed)
    await _check_the_daemon_runs_against_the_simulator(installed)

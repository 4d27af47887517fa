"""End-to-end fixtures: throwaway Unix accounts (as root) and a running stack per test.

As root, the suite creates groups for the three roles and the socket, and users that hold
them (two nurses, an auditor, an admin, one with no role, one outside the socket group),
runs every `pumpctl` as one of them with `setpriv`, and removes them all at the end. pumpd
never grants root a role through root's own groups, so root itself is never the caller.

Not as root, the caller is this account: its primary group is given every role in the
test configuration, and the tests that need other accounts are skipped with a loud reason
(the role mapping is then covered through the peer-credential layer in tests/control/).
"""

from __future__ import annotations

import grp
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .stack import Stack, running_stack

IS_ROOT = os.geteuid() == 0
_TAG = f"e2e{os.getpid() % 100000}"


@dataclass(frozen=True)
class Accounts:
    """Names of the throwaway accounts (None for the roles when not root)."""

    nurse: str | None
    nurse2: str | None
    auditor: str | None
    admin: str | None
    norole: str | None
    outsider: str | None
    groups: dict[str, str]
    socket_group: str | None

    @property
    def roles(self) -> dict[str, list[str]]:
        return {role: [group] for role, group in self.groups.items()}


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _quiet(*command: str) -> None:
    subprocess.run(command, check=False, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def accounts() -> Iterator[Accounts]:
    if not IS_ROOT:
        own = grp.getgrgid(os.getgid()).gr_name
        warnings.warn(
            "tests/e2e: not root, so every pumpctl runs as this account with all roles; "
            "the per-role and second-OS-user tests are skipped (tests/control covers the "
            "peer-credential mapping)",
            stacklevel=1,
        )
        yield Accounts(
            None, None, None, None, None, None,
            {"nurse": own, "auditor": own, "admin": own}, None,
        )  # fmt: skip
        return
    groups = {role: f"{_TAG}-{role}" for role in ("nurse", "auditor", "admin")}
    sock = f"{_TAG}-sock"
    users = {
        "nurse": (groups["nurse"], sock),
        "nurse2": (groups["nurse"], sock),
        "auditor": (groups["auditor"], sock),
        "admin": (groups["admin"], sock),
        "norole": (sock,),
        "outsider": (),
    }
    created_groups: list[str] = []
    created_users: list[str] = []
    try:
        for name in (*groups.values(), sock):
            _run("groupadd", name)
            created_groups.append(name)
        for short, member_of in users.items():
            name = f"{_TAG}{short}"[:31]
            command = ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin"]
            if member_of:
                command += ["--groups", ",".join(member_of)]
            _run(*command, name)
            created_users.append(name)
        yield Accounts(
            nurse=f"{_TAG}nurse",
            nurse2=f"{_TAG}nurse2",
            auditor=f"{_TAG}auditor",
            admin=f"{_TAG}admin",
            norole=f"{_TAG}norole",
            outsider=f"{_TAG}outsider",
            groups=groups,
            socket_group=sock,
        )
    finally:
        for name in created_users:
            _quiet("userdel", name)
        for name in created_groups:
            _quiet("groupdel", name)


def need_root() -> None:
    if not IS_ROOT:
        pytest.skip("needs root to create throwaway users (SKIPPED LOUDLY: see tests/control)")


@pytest.fixture
def stack(accounts: Accounts) -> Iterator[Stack]:
    """pumpsim (2 pumps, x120) and pumpd on a fresh SQLite database; pumpctl as the nurse."""
    with running_stack(
        time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group
    ) as s:
        s.default_user = accounts.nurse
        yield s


@pytest.fixture(scope="session")
def shared_stack(accounts: Accounts) -> Iterator[Stack]:
    """One stack for the tests that only read, or touch chair-2 alone (the role matrix):
    starting a daemon per test would cost most of the suite's time budget."""
    with running_stack(
        time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group
    ) as s:
        s.default_user = accounts.nurse
        yield s

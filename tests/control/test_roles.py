"""Every role against every method, with real OS users connecting from child processes.

As root this creates throwaway groups and users (removed afterwards), serves the socket
with mode 0660 and a throwaway socket group, and runs ``peer_client.py`` as each user
(``setpriv --reuid --regid --init-groups``), so the daemon sees real SO_PEERCRED and
SO_PEERGROUPS credentials. Not as root these tests are SKIPPED LOUDLY; the mapping is then
still tested through the peer-credential layer in ``test_identity.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import grp
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pumpd.control import ControlServer
from pumpd.control.methods import METHODS

from .conftest import PROGRAM, Rig

CLIENT = str(Path(__file__).with_name("peer_client.py"))
NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None,
    reason="NOT ROOT (or no useradd/setpriv): real-user role tests SKIPPED; "
    "see test_identity.py for the peer-credential mapping",
)


@dataclass
class Users:
    tag: str
    groups: dict[str, str]  # role -> group name ("sock" -> the socket group)
    users: dict[str, str]  # label -> user name


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def users() -> Iterator[Users]:
    tag = secrets.token_hex(3)
    groups = {r: f"h4{tag}-{r}" for r in ("nurse", "audit", "admin", "sock")}
    members = {
        "nurse1": ["nurse", "sock"],
        "nurse2": ["nurse", "sock"],
        "auditor": ["audit", "sock"],
        "admin": ["admin", "sock"],
        "norole": ["sock"],
        "outsider": [],
    }
    made_groups: list[str] = []
    made_users: list[str] = []
    try:
        for g in groups.values():
            _run("groupadd", g)
            made_groups.append(g)
        names = {}
        for label, gs in members.items():
            name = f"h4{tag}{label}"[:31]
            cmd = ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin"]
            if gs:
                cmd += ["-G", ",".join(groups[g] for g in gs)]
            _run(*cmd, name)
            made_users.append(name)
            names[label] = name
        yield Users(tag, groups, names)
    finally:
        for u in made_users:
            subprocess.run(["userdel", u], capture_output=True)
        for g in made_groups:
            subprocess.run(["groupdel", g], capture_output=True)


@pytest.fixture
async def group_server(rig: Rig, users: Users) -> AsyncIterator[ControlServer]:
    """A second server on the same daemon, mode 0660, socket group, roles by group."""
    g = users.groups
    ctx = dataclasses.replace(
        rig.ctx,
        roles={
            "nurse": frozenset({g["nurse"]}),
            "auditor": frozenset({g["audit"]}),
            "admin": frozenset({g["admin"]}),
        },
    )
    path = str(Path(rig.path).with_name("roles.sock"))
    server = ControlServer(ctx, path=path, group=g["sock"])
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def as_user(user: str, path: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pw = pwd.getpwnam(user)
    lines = "".join(json.dumps(r) + "\n" for r in requests).encode()
    proc = await asyncio.create_subprocess_exec(
        "setpriv",
        f"--reuid={pw.pw_uid}",
        f"--regid={pw.pw_gid}",
        "--init-groups",
        "/usr/bin/python3",
        CLIENT,
        path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(lines), 120)
    answers = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    assert answers, f"no answer from the client as {user}: {err.decode()}"
    return answers


def _req(i: int, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params}


EXPECTED_ROLES = {
    "nurse1": {"nurse"},
    "auditor": {"auditor"},
    "admin": {"admin"},
    "norole": set(),
}


@NEEDS_ROOT
async def test_socket_file_mode_and_group(group_server: ControlServer, users: Users) -> None:
    st = os.stat(group_server.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert grp.getgrgid(st.st_gid).gr_name == users.groups["sock"]
    refused = await as_user(users.users["outsider"], group_server.path, [_req(1, "whoami")])
    assert refused == [{"connect_error": "PermissionError"}]


@NEEDS_ROOT
async def test_every_role_against_every_method(
    rig: Rig, group_server: ControlServer, users: Users
) -> None:
    """Params are empty: an allowed method then fails on its params (or succeeds when it
    takes none), a forbidden one is refused before its params are looked at."""
    for label, roles in EXPECTED_ROLES.items():
        user = users.users[label]
        names = sorted(METHODS)
        answers = await as_user(
            user, group_server.path, [_req(i, m) for i, m in enumerate(names, start=1)]
        )
        assert len(answers) == len(names)
        for method, answer in zip(names, answers, strict=True):
            allowed = not METHODS[method].roles or bool(METHODS[method].roles & roles)
            code = answer.get("error", {}).get("code")
            if allowed:
                assert code != -32001, f"{label} refused {method}: {answer}"
            else:
                assert code == -32001, f"{label} got {method}: {answer}"
        me = answers[names.index("whoami")]["result"]
        assert me["user"] == user
        assert set(me["roles"]) == roles
        assert me["groups_source"] == "so_peergroups"
        assert users.groups["sock"] in me["groups"]
    denied = await rig.flushed_events(event_type="access.denied")
    by_uid = {json.loads(e.payload)["uid"] for e in denied}
    for label in ("nurse1", "auditor", "admin", "norole"):
        assert pwd.getpwnam(users.users[label]).pw_uid in by_uid
    served = await rig.flushed_events(event_type="control.request.served")
    assert {e.actor_name for e in served} >= {users.users["nurse1"], users.users["admin"]}


@NEEDS_ROOT
async def test_a_second_os_user_confirms_and_the_same_user_may_not(
    rig: Rig, group_server: ControlServer, users: Users
) -> None:
    path = group_server.path
    n1, n2 = users.users["nurse1"], users.users["nurse2"]
    [prog] = await as_user(n1, path, [_req(1, "session.program", **PROGRAM)])
    assert prog["result"]["state"] == "PROGRAMMED"
    [same] = await as_user(n1, path, [_req(2, "session.confirm", pump="chair-1", weight="80kg")])
    assert same["error"]["code"] == -32010
    auditor = users.users["auditor"]
    [aud] = await as_user(
        auditor, path, [_req(3, "session.confirm", pump="chair-1", weight="80kg")]
    )
    assert aud["error"]["code"] == -32001
    [ok] = await as_user(n2, path, [_req(4, "session.confirm", pump="chair-1", weight="80kg")])
    assert ok["result"] == {"state": "VERIFIED", "checker": n2}
    s = rig.supervisor.controllers["chair-1"].session
    assert s is not None
    assert (s.data.programmed_by, s.data.confirmed_by) == (n1, n2)

"""Every role against every pumpctl command, with real Unix accounts (root only).

The accounts (tests/e2e/conftest.py): a nurse, an auditor, an admin, one in the socket's
group with no role, one outside the socket's group. Each runs every command in a real
`pumpctl` process; a command its role does not allow exits 4 (not authorized), one it
allows gets past authorization (0, or 2/3 when the session's state or a rule says no,
never 4). The table of who may do what is docs/control-socket.md's.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from .conftest import Accounts, need_root
from .stack import PIN, Stack, add_staff

NURSE = {"nurse"}
READ = {"nurse", "auditor", "admin"}
ADMIN = {"admin"}
ANY = {"nurse", "auditor", "admin", "norole"}
LOGIN = {"nurse"}  # N001 is a nurse: only an account that holds the nurse role may log in as her

# (argv, roles allowed, stdin). The nurse's own clinical commands run in this order.
COMMANDS: list[tuple[list[str], set[str], str]] = [
    (["whoami"], ANY, ""),
    (["pumps"], READ, ""),
    (["status"], READ, ""),
    (["status", "chair-2", "--json"], READ, ""),
    (["watch", "chair-2", "--once"], READ, ""),
    (["watch", "chair-2", "--once", "--json"], READ, ""),
    (["alarms", "--json"], READ, ""),
    (
        [
            "program",
            "chair-2",
            "--patient",
            "P-ROLE",
            "--weight",
            "70kg",
            "--protocol",
            "ketamine-trd-standard",
            "--yes",
        ],
        NURSE,
        "",
    ),
    (["checklist", "chair-2"], READ, ""),
    (["confirm", "chair-2", "--weight", "70kg"], NURSE, ""),
    (["vitals", "chair-2", "--bp", "120/80", "--hr", "70", "--spo2", "98"], NURSE, ""),
    (["note", "chair-2", "role test"], NURSE, ""),
    (["prime", "chair-2", "--line-disconnected"], NURSE, ""),
    (["start", "chair-2"], NURSE, ""),
    (["pause", "chair-2", "--reason", "role test"], NURSE, ""),
    (["resume", "chair-2"], NURSE, ""),
    (["adjust", "chair-2", "--duration", "60min", "--reason", "role test", "--yes"], NURSE, ""),
    (["stop", "chair-2", "--reason", "role test"], NURSE, ""),
    (["ack", "chair-2"], NURSE, ""),
    (["observe", "chair-2"], NURSE, ""),
    (["discharge", "chair-2", "--confirm-all"], NURSE, ""),
    (["abort", "chair-2", "--reason", "role test"], NURSE, ""),
    (["staff", "list"], ADMIN, ""),
    (
        ["staff", "add", "N050", "--name", "Temp Nurse", "--role", "nurse", "--pin-stdin"],
        ADMIN,
        "505050\n",
    ),
    (["staff", "set-pin", "N050", "--pin-stdin"], ADMIN, "515151\n"),
    (["staff", "disable", "N050"], ADMIN, ""),
    (["staff", "enable", "N050"], ADMIN, ""),
    (["reload"], ADMIN, ""),
    (["login", "N001", "--pin-stdin"], LOGIN, PIN["N001"] + "\n"),
    (["logout"], ANY, ""),
]


def run_all(s: Stack, role: str, user: str) -> list[tuple[list[str], int, str]]:
    results = []
    for argv, _allowed, stdin in COMMANDS:
        r = s.pumpctl(*argv, user=user, stdin=stdin)
        results.append((argv, r.returncode, r.stderr.strip()))
    return results


def test_every_role_against_every_command(shared_stack: Stack, accounts: Accounts) -> None:
    stack = shared_stack
    need_root()
    users = {
        "nurse": accounts.nurse,
        "auditor": accounts.auditor,
        "admin": accounts.admin,
        "norole": accounts.norole,
    }
    add_staff(stack, accounts.admin)
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        futures = {
            role: pool.submit(run_all, stack, role, user)
            for role, user in users.items()
            if user is not None
        }
        outcomes = {role: f.result() for role, f in futures.items()}
    wrong = []
    for role, results in outcomes.items():
        for (argv, code, err), (_, allowed, _stdin) in zip(results, COMMANDS, strict=True):
            ok = code in (0, 2, 3) if role in allowed else code == 4
            if not ok:
                wrong.append(f"{role}: pumpctl {' '.join(argv)} -> {code} {err[:160]}")
    assert not wrong, "\n".join(wrong) + "\n" + stack.daemon_log(2000)
    # The staff login really changed the acting person, and an admin's did too.
    assert outcomes["nurse"][-2][1] == 0


def test_account_outside_the_socket_group_cannot_even_connect(
    shared_stack: Stack, accounts: Accounts
) -> None:
    need_root()
    for argv in (["whoami"], ["status"], ["start", "chair-1"]):
        result = shared_stack.pumpctl(*argv, user=accounts.outsider)
        assert result.returncode == 4, result.stderr
        assert "permission denied" in result.stderr


def test_whoami_names_the_os_user_and_its_role(shared_stack: Stack, accounts: Accounts) -> None:
    need_root()
    stack = shared_stack
    me = json.loads(stack.ok("whoami", "--json", user=accounts.auditor))
    assert me["user"] == accounts.auditor
    assert me["roles"] == ["auditor"]
    assert accounts.groups["auditor"] in me["groups"]
    nobody = json.loads(stack.ok("whoami", "--json", user=accounts.norole))
    assert nobody["roles"] == []

"""Malformed input on the real daemon's socket: an error answer, nothing changed, nobody stalled.

Raw bytes on a Unix socket as the nurse account (root: a throwaway nurse's uid through a
child process; otherwise this account), then `pumpctl` from another connection still gets
its answers and the pumps are untouched.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import textwrap

from .conftest import IS_ROOT, Accounts
from .stack import Stack

PROBE = textwrap.dedent(
    """
    import json, socket, sys
    lines = json.loads(sys.argv[2])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    answers = []
    for line in lines:
        f.write(line.encode("utf-8", "surrogateescape") + b"\\n")
        f.flush()
        reply = f.readline()
        answers.append(json.loads(reply) if reply else None)
    print(json.dumps(answers))
    """
)


def send_lines(stack: Stack, accounts: Accounts, lines: list[str]) -> list[object]:
    """Each line on one connection, as the nurse account; the parsed answers (None: closed)."""
    command = [sys.executable, "-c", PROBE, str(stack.socket_path), json.dumps(lines)]
    if IS_ROOT:
        assert accounts.nurse is not None
        entry = pwd.getpwnam(accounts.nurse)
        command = [
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            *command,
        ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    answers: list[object] = json.loads(out.stdout)
    return answers


def error_code(answer: object) -> int:
    assert isinstance(answer, dict), answer
    assert answer.get("jsonrpc") == "2.0", answer
    assert "result" not in answer, answer
    code = answer["error"]["code"]
    assert isinstance(code, int)
    return code


def test_malformed_requests_get_errors_and_change_nothing(
    shared_stack: Stack, accounts: Accounts
) -> None:
    stack = shared_stack
    before = [stack.status(p) for p in ("chair-1", "chair-2")]
    answers = send_lines(
        stack,
        accounts,
        [
            "this is not json",
            "[]",
            '[{"jsonrpc":"2.0","id":1,"method":"whoami"}]',
            '{"jsonrpc":"1.0","id":1,"method":"whoami"}',
            '{"jsonrpc":"2.0","id":2,"method":"no.such.method"}',
            '{"jsonrpc":"2.0","id":3,"method":"session.start","params":{}}',
            '{"jsonrpc":"2.0","id":4,"method":"session.start","params":{"pump":"chair-1",'
            '"surprise":1}}',
            '{"jsonrpc":"2.0","id":5,"method":"session.program","params":{"pump":"chair-1",'
            '"patient_ref":"P-X","weight":"NaNkg","protocol":"ketamine-trd-standard"}}',
            '{"jsonrpc":"2.0","id":6,"method":"status","params":{"pump":"chair-9"}}',
            '{"jsonrpc":"2.0","id":7,"method":"whoami"}',
        ],
    )
    codes = [error_code(a) for a in answers[:-1]]
    assert codes[0] == -32700
    assert codes[1] == -32600
    assert codes[2] == -32600
    assert codes[3] == -32600
    assert codes[4] == -32601
    assert codes[5] == -32602
    assert codes[6] == -32602
    assert codes[7] == -32602
    assert codes[8] == -32012
    last = answers[-1]
    assert isinstance(last, dict)
    assert last["id"] == 7  # the connection still works after all of it
    assert "result" in last
    after = [stack.status(p) for p in ("chair-1", "chair-2")]
    for b, a in zip(before, after, strict=True):
        assert a["session_state"] == b["session_state"]
        assert a["session_id"] == b["session_id"]


def test_oversized_line_is_refused_and_others_are_still_served(
    shared_stack: Stack, accounts: Accounts
) -> None:
    stack = shared_stack
    huge = '{"jsonrpc":"2.0","id":1,"method":"whoami","params":{"x":"' + "a" * 70_000 + '"}}'
    answers = send_lines(stack, accounts, [huge])
    assert error_code(answers[0]) == -32600
    pumps = json.loads(stack.ok("pumps", "--json"))
    assert len(pumps) == 2


def test_a_silent_client_does_not_stall_the_others(shared_stack: Stack) -> None:
    stack = shared_stack
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        idle.connect(str(stack.socket_path))
        idle.sendall(b'{"jsonrpc":"2.0","id":1,"meth')  # half a request, then silence
        for _ in range(3):
            assert json.loads(stack.ok("pumps", "--json"))[0]["pump_id"] == "chair-1"
    finally:
        idle.close()

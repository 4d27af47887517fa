"""The double-check must come from another person, whichever way identities are given.

Through real processes: the nurse who programmed cannot confirm (her OS account, her
staff login, or herself named as the witness); a wrong witness PIN is refused as not
authorized; a weight typed differently is refused; a second person succeeds. Every refusal
changes nothing: the session stays PROGRAMMED.
"""

from __future__ import annotations

import json
import re
import time

from .conftest import IS_ROOT, Accounts
from .stack import PIN, Stack, add_staff

PROGRAM = [
    "program", "chair-1", "--patient", "P-DC", "--weight", "82kg",
    "--protocol", "ketamine-trd-standard", "--yes",
]  # fmt: skip


def test_same_person_never_programs_and_confirms(stack: Stack, accounts: Accounts) -> None:
    add_staff(stack, accounts.admin)
    stack.ok(*PROGRAM)

    same_account = stack.pumpctl("confirm", "chair-1", "--weight", "82kg")
    assert same_account.returncode == 3, same_account.stderr
    assert stack.status("chair-1")["session_state"] == "PROGRAMMED"

    wrong_pin = stack.pumpctl(
        "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
        stdin="000000\n",
    )  # fmt: skip
    assert wrong_pin.returncode == 4, wrong_pin.stderr
    assert stack.status("chair-1")["session_state"] == "PROGRAMMED"

    other_weight = stack.pumpctl(
        "confirm", "chair-1", "--weight", "80kg", "--witness", "N002", "--pin-stdin",
        stdin=PIN["N002"] + "\n",
    )  # fmt: skip
    assert other_weight.returncode == 3, other_weight.stderr
    assert stack.status("chair-1")["session_state"] == "PROGRAMMED"

    stack.ok(
        "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
        stdin=PIN["N002"] + "\n",
    )  # fmt: skip
    assert stack.status("chair-1")["session_state"] == "VERIFIED"


def test_staff_login_cannot_witness_itself(stack: Stack, accounts: Accounts) -> None:
    add_staff(stack, accounts.admin)
    stack.ok("login", "N001", "--pin-stdin", stdin=PIN["N001"] + "\n")
    me = stack.ok("whoami")
    assert re.search(r"acting person\s*│ staff:N001 ", me), me
    assert re.search(r"acting roles\s*│ nurse ", me), me  # the staff member's role, not "-"
    stack.ok(*PROGRAM)
    itself = stack.pumpctl(
        "confirm", "chair-1", "--weight", "82kg", "--witness", "N001", "--pin-stdin",
        stdin=PIN["N001"] + "\n",
    )  # fmt: skip
    assert itself.returncode == 3, itself.stderr
    assert stack.status("chair-1")["session_state"] == "PROGRAMMED"
    if IS_ROOT:
        # Another OS user confirms: a different person than staff:N001.
        stack.ok("confirm", "chair-1", "--weight", "82kg", user=accounts.nurse2)
        assert stack.status("chair-1")["session_state"] == "VERIFIED"


def test_a_new_login_at_the_terminal_ends_the_one_it_replaces(
    stack: Stack, accounts: Accounts
) -> None:
    add_staff(stack, accounts.admin)
    stack.ok("login", "N001", "--pin-stdin", stdin=PIN["N001"] + "\n")
    out = stack.ok("login", "N002", "--pin-stdin", stdin=PIN["N002"] + "\n")
    assert "the login of N001 at this terminal is ended" in out
    assert "staff:N002" in stack.ok("whoami")
    deadline = time.monotonic() + 30  # the audit writer is asynchronous: a bound, no speed
    ended: list[dict[str, object]] = []
    while not ended and time.monotonic() < deadline:
        events = json.loads(stack.audit("events", "--type", "staff.login.ended", "--json").stdout)
        ended = [e["payload"] for e in events]
        time.sleep(0.3)
    assert [(e["staff_id"], e["reason_code"]) for e in ended] == [("N001", "logout")]

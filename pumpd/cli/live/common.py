"""What every live command shares: where the daemon is, one call, errors as exit codes.

An error is printed as one sentence on stderr (the daemon's message, then the kernel's
verdicts each on its own line) and the process exits with the contract's code: 1 other,
2 bad usage, 3 refused by a safety rule, 4 not authorized, 5 daemon unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from pumpd.cli import client as rpc
from pumpd.cli.live import login


@dataclass
class Target:
    """The group's options, handed to every live command through click's context."""

    socket_path: str


F = TypeVar("F", bound=Callable[..., Any])

pass_target = click.make_pass_decorator(Target)

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def fail(code: int, message: str, details: list[str] | None = None) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    for line in details or []:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


def report(exc: rpc.ClientError) -> NoReturn:
    """Print a client error as the nurse should read it and exit with its code."""
    if isinstance(exc, rpc.RpcError):
        details = [f"{v.severity.upper()} {v.message} ({v.code})" for v in exc.verdicts]
        message = exc.message.rstrip(".") + "."
        if exc.code == -32002 and login.load() is not None and "log in" not in message.lower():
            message += " Log in again with: pumpctl login STAFF_ID"
        fail(exc.exit_code, message, details)
    fail(exc.exit_code, str(exc))


def connect(target: Target, *, with_login: bool = True) -> rpc.Client:
    staff = login.load() if with_login else None
    return rpc.Client(target.socket_path, token=staff.token if staff else None)


def call(target: Target, method: str, params: dict[str, Any] | None = None) -> Any:
    """One request on its own connection; errors end the process (see :func:`report`)."""
    with connect(target) as c:
        try:
            return c.call(method, params)
        except rpc.ClientError as exc:
            report(exc)


def call_on(c: rpc.Client, method: str, params: dict[str, Any] | None = None) -> Any:
    """A request on an open connection (a multi-step command); errors end the process."""
    try:
        return c.call(method, params)
    except rpc.ClientError as exc:
        report(exc)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def read_pin(prompt: str, from_stdin: bool, *, confirm: bool = False) -> str:
    """A PIN from one line of stdin (scripts) or asked with hidden input (people)."""
    if from_stdin:
        line = sys.stdin.readline()
        pin = line.rstrip("\r\n")
        if not pin:
            fail(rpc.EXIT_USAGE, "no PIN on standard input (--pin-stdin reads one line)")
        return pin
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


def ask(question: str, yes: bool) -> bool:
    """Ask a yes/no question (default no), or take ``--yes``; end of input counts as no."""
    if yes:
        return True
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        click.echo("", err=True)
        return False

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


def error_text(exc: rpc.RpcError) -> tuple[str, list[str]]:
    """The daemon's error as one sentence, and the kernel's reasons when there are several.

    The daemon's message of a refusal already contains every verdict's sentence
    ("confirm refused: <why>"). One reason: that sentence with the rule's code, on one
    line. Several: "<command> refused for N reasons:" and each reason on its own line with
    its severity and code, so no sentence is printed twice.
    """
    message = exc.message.strip().rstrip(".")
    verdicts = exc.verdicts
    if not verdicts:
        return message + ".", []
    if len(verdicts) == 1 and verdicts[0].message.strip().rstrip(".") in message:
        return f"{message} ({verdicts[0].code}).", []
    head, refused, _ = message.partition(" refused:")
    if refused:
        message = f"{head} refused for {len(verdicts)} reasons:"
    else:
        message += "."
    return message, [f"{v.severity.upper()} {v.message} ({v.code})" for v in verdicts]


def report(exc: rpc.ClientError) -> NoReturn:
    """Print a client error as the nurse should read it and exit with its code."""
    if isinstance(exc, rpc.RpcError):
        message, details = error_text(exc)
        staff = login.load()
        if exc.code == -32002 and staff is not None and _token_problem(exc):
            message += (
                f" (pumpctl login {staff.staff_id} logs in again; pumpctl logout ends the"
                " login, and commands then act as this account)"
            )
        fail(exc.exit_code, message, details)
    fail(exc.exit_code, str(exc))


def _token_problem(exc: rpc.RpcError) -> bool:
    """The terminal's own staff login was refused (not a witness's or a login's PIN)."""
    return str(exc.data.get("reason", "")).startswith("token_")


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

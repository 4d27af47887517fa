"""The acting person and the staff registry: login, logout, staff (admin), reload (admin).

``login`` asks the daemon for a token with a staff id and PIN and keeps it in the token
file (:mod:`pumpd.cli.live.login`); from then on every request carries it and the audit
names that person instead of the shared OS account, until the token expires after the
configured idle time or ``logout``.
"""

from __future__ import annotations

import contextlib

import click

from pumpd.cli import client as rpc
from pumpd.cli.live import login as tokens
from pumpd.cli.live import text
from pumpd.cli.live.common import (
    Target,
    call,
    call_on,
    connect,
    echo_json,
    json_option,
    pass_target,
    read_pin,
    report,
)

_pin_stdin = click.option("--pin-stdin", is_flag=True, help="Read the PIN from one line of stdin.")


@click.command(help="Log in as a staff member at this terminal (PIN asked, hidden).")
@click.argument("staff_id")
@_pin_stdin
@pass_target
def login(target: Target, staff_id: str, pin_stdin: bool) -> None:
    pin = read_pin(f"PIN of {staff_id}", pin_stdin)
    previous = tokens.load()
    with connect(target, with_login=False) as c:
        try:
            result = c.call("staff.login", {"staff_id": staff_id, "pin": pin})
        except rpc.ClientError as exc:
            report(exc)
    entry = tokens.StaffLogin(
        token=str(result["token"]),
        staff_id=str(result.get("staff_id", staff_id)),
        name=str(result.get("name", "")),
        role=str(result.get("role", "")),
    )
    path = tokens.save(entry)
    idle = result.get("idle_timeout_s")
    minutes = f" after {text.duration(idle)} without a command" if idle else ""
    click.echo(
        f"logged in as {entry.staff_id} ({entry.name}, {entry.role}); "
        f"expires{minutes}; token in {path}"
    )
    if previous is not None and previous.token != entry.token:
        _end_login(target, previous)
        click.echo(f"the login of {previous.staff_id} at this terminal is ended")


def _end_login(target: Target, previous: tokens.StaffLogin) -> None:
    """Tell the daemon that the login this one replaces is over (audited as a logout), so
    the token file's old secret does not stay valid in the daemon until it expires."""
    # An error means it expired or is unknown already: nothing is left to end.
    with (
        contextlib.suppress(rpc.ClientError),
        rpc.Client(target.socket_path, token=previous.token) as c,
    ):
        c.call("staff.logout", {})


@click.command(help="End the staff login at this terminal.")
@pass_target
def logout(target: Target) -> None:
    entry = tokens.load()
    if entry is None:
        click.echo("no staff login open")
        return
    try:
        with connect(target) as c:
            c.call("staff.logout", {})
    except rpc.ClientError as exc:
        tokens.forget()
        click.echo(f"token removed here; the daemon was not told: {exc}", err=True)
        return
    tokens.forget()
    click.echo(f"logged out {entry.staff_id}")


@click.group(help="The staff registry (admin): people, roles and PINs.")
def staff() -> None:
    """Sub-commands manage the registry kept in the audit database."""


@staff.command("list", help="Every staff member (never a PIN or its hash).")
@json_option
@pass_target
def staff_list(target: Target, as_json: bool) -> None:
    with connect(target) as c:
        result = call_on(c, "staff.list")
        zone = None if as_json else call_on(c, "whoami").get("timezone")
    if as_json:
        echo_json(result)
    else:
        # rich only for a person's table: `--json` never loads it.
        from rich.console import Console

        from pumpd.cli.live import render

        Console(highlight=False).print(render.staff_table(result, zone))


@staff.command("add", help="Add a staff member; the PIN is asked twice (hidden).")
@click.argument("staff_id")
@click.option("--name", required=True, help="Full name as the audit should show it.")
@click.option("--role", type=click.Choice(["nurse", "auditor", "admin"]), required=True)
@_pin_stdin
@pass_target
def staff_add(target: Target, staff_id: str, name: str, role: str, pin_stdin: bool) -> None:
    pin = read_pin(f"new PIN of {staff_id}", pin_stdin, confirm=True)
    call(target, "staff.add", {"staff_id": staff_id, "name": name, "role": role, "pin": pin})
    click.echo(f"staff {staff_id} added ({name}, {role})")


@staff.command("set-pin", help="Set a new PIN (and clear a lockout).")
@click.argument("staff_id")
@_pin_stdin
@pass_target
def staff_set_pin(target: Target, staff_id: str, pin_stdin: bool) -> None:
    pin = read_pin(f"new PIN of {staff_id}", pin_stdin, confirm=True)
    call(target, "staff.set_pin", {"staff_id": staff_id, "pin": pin})
    click.echo(f"PIN of {staff_id} changed")


@staff.command("disable", help="Disable a staff member: no login, no witnessing.")
@click.argument("staff_id")
@pass_target
def staff_disable(target: Target, staff_id: str) -> None:
    call(target, "staff.disable", {"staff_id": staff_id})
    click.echo(f"staff {staff_id} disabled")


@staff.command("enable", help="Enable a disabled staff member again.")
@click.argument("staff_id")
@pass_target
def staff_enable(target: Target, staff_id: str) -> None:
    call(target, "staff.enable", {"staff_id": staff_id})
    click.echo(f"staff {staff_id} enabled")


@click.command(help="Reload roles, staff settings and the protocol library (admin).")
@json_option
@pass_target
def reload(target: Target, as_json: bool) -> None:
    result = call(target, "config.reload")
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"reloaded: config {str(result.get('config_sha256', '-'))[:12]}, "
        f"library {str(result.get('library_sha256', '-'))[:12]}"
    )


COMMANDS = (login, logout, staff, reload)

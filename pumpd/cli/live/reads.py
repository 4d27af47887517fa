"""Read commands: pumps, status, watch, alarms, whoami, checklist. Each has ``--json``."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from pumpd.cli import client as rpc
from pumpd.cli.live import render
from pumpd.cli.live.common import Target, call, call_on, connect, echo_json, json_option, report
from pumpd.cli.live.common import pass_target as _pass_target


def _console() -> Console:
    return Console(highlight=False)


@click.command(help="List the pumps pumpd supervises, whether they answer and their session.")
@json_option
@_pass_target
def pumps(target: Target, as_json: bool) -> None:
    result = call(target, "pumps.list")
    if as_json:
        echo_json(result)
    else:
        _console().print(render.pumps_table(result))


def _status_params(pump: str | None) -> dict[str, Any]:
    return {"pump": pump} if pump else {}


@click.command(help="Show one pump (or all): state, volume, dose, rates, time left, alarms.")
@click.argument("pump", required=False)
@json_option
@_pass_target
def status(target: Target, pump: str | None, as_json: bool) -> None:
    views = call(target, "status", _status_params(pump))
    if as_json:
        echo_json(views)
    else:
        _console().print(render.status_views(views))


@click.command(
    help="Live view of one pump (or all), refreshed every --interval seconds; Ctrl-C ends it."
)
@click.argument("pump", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2, max=60),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit (scripts, tests).")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON line per refresh (status --json's list)."
)
@_pass_target
def watch(target: Target, pump: str | None, interval: float, once: bool, as_json: bool) -> None:
    console = _console()
    params = _status_params(pump)
    # Without the staff token: a view left open on a screen must not keep a login alive.
    with connect(target, with_login=False) as c:
        first = call_on(c, "status", params)
        try:
            if as_json:
                _json_lines(c, params, first, interval, once)
            elif once:
                console.print(render.status_views(first))
            elif console.is_terminal:
                _live(console, c, params, first, interval)
            else:
                _stream(console, c, params, first, interval)
        except KeyboardInterrupt:
            return


def _json_lines(
    c: rpc.Client, params: dict[str, Any], first: Any, interval: float, once: bool
) -> None:
    """For programs: each refresh is one line, the same list as ``status --json``."""
    views = first
    while True:
        click.echo(json.dumps(views, ensure_ascii=False, sort_keys=True))
        if once:
            return
        time.sleep(interval)
        views = call_on(c, "status", params)


def _live(
    console: Console, c: rpc.Client, params: dict[str, Any], first: Any, interval: float
) -> None:
    """On a terminal: one view, redrawn in place."""
    with Live(render.status_views(first), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            try:
                views = c.call("status", params)
            except rpc.ClientError as exc:
                live.stop()
                report(exc)
            live.update(render.status_views(views), refresh=True)


def _stream(
    console: Console, c: rpc.Client, params: dict[str, Any], first: Any, interval: float
) -> None:
    """Into a pipe or a file: one stamped frame after another, like a log."""
    views = first
    while True:
        console.rule(time.strftime("%H:%M:%S"))
        console.print(render.status_views(views))
        time.sleep(interval)
        views = call_on(c, "status", params)


@click.command(help="Every active alarm of every pump, highest priority first.")
@json_option
@_pass_target
def alarms(target: Target, as_json: bool) -> None:
    result = call(target, "alarms.list")
    if as_json:
        echo_json(result)
    else:
        _console().print(render.alarms_table(render.by_priority(result)))


@click.command(help="Who pumpd sees: OS user, groups, roles, and the acting person.")
@json_option
@_pass_target
def whoami(target: Target, as_json: bool) -> None:
    result = call(target, "whoami")
    if as_json:
        echo_json(result)
    else:
        _console().print(render.whoami_view(result))


@click.command(help="The discharge checklist of a pump's session (read only).")
@click.argument("pump")
@json_option
@_pass_target
def checklist(target: Target, pump: str, as_json: bool) -> None:
    result = call(target, "session.checklist", {"pump": pump})
    if as_json:
        echo_json(result)
        return
    for item in result.get("items", []):
        click.echo(f"[ ] {item.get('text')}")
    click.echo(f"earliest discharge: {render.utc_minute(result.get('earliest_discharge_at'))}")

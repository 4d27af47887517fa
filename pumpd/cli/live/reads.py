"""Read commands: pumps, status, watch, alarms, whoami, checklist. Each has ``--json``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from pumpd.cli.live import text
from pumpd.cli.live.common import Target, call, call_on, connect, echo_json, json_option
from pumpd.cli.live.common import pass_target as _pass_target

if TYPE_CHECKING:
    from rich.console import Console

# rich (Console, and the render and live_view modules built on it) is imported where a
# command prints for a person: `--json`, what scripts and the tests run, never loads it.


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


@click.command(help="List the pumps pumpd supervises, whether they answer and their session.")
@json_option
@_pass_target
def pumps(target: Target, as_json: bool) -> None:
    result = call(target, "pumps.list")
    if as_json:
        echo_json(result)
    else:
        from pumpd.cli.live import render

        _console().print(render.pumps_view(result))


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
        from pumpd.cli.live import live_view

        _console().print(live_view.frame(views))


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
    from pumpd.cli.live import live_view

    console = _console()
    params = _status_params(pump)
    if once:
        views = call(target, "status", params)
        if as_json:
            click.echo(json.dumps(views, ensure_ascii=False, sort_keys=True))
        else:
            console.print(live_view.frame(views))
        return
    mode: live_view.Mode = "json" if as_json else ("live" if console.is_terminal else "stream")
    view = live_view.Watch(target.socket_path, params, interval, console, mode)
    try:
        with live_view.stopped_by_ctrl_c(view.stop):
            view.run()
    except KeyboardInterrupt:  # before the handler was in place
        return
    except BrokenPipeError:
        # The reader of our output went away (`pumpctl watch | head`): end quietly.
        live_view.silence_stdout()


@click.command(help="Every active alarm of every pump, highest priority first.")
@json_option
@_pass_target
def alarms(target: Target, as_json: bool) -> None:
    result = call(target, "alarms.list")
    if as_json:
        echo_json(result)
    else:
        from pumpd.cli.live import render

        _console().print(render.alarms_table(render.by_priority(result)))


@click.command(help="Who pumpd sees: OS user, groups, roles, and the acting person.")
@json_option
@_pass_target
def whoami(target: Target, as_json: bool) -> None:
    result = call(target, "whoami")
    if as_json:
        echo_json(result)
    else:
        from pumpd.cli.live import render

        _console().print(render.whoami_view(result))


@click.command(help="The discharge checklist of a pump's session (read only).")
@click.argument("pump")
@json_option
@_pass_target
def checklist(target: Target, pump: str, as_json: bool) -> None:
    with connect(target) as c:
        result = call_on(c, "session.checklist", {"pump": pump})
        zone = None if as_json else call_on(c, "whoami").get("timezone")
    if as_json:
        echo_json(result)
        return
    for item in result.get("items", []):
        click.echo(f"[ ] {item.get('text')}")
    earliest = text.local_minute(result.get("earliest_discharge_at"), zone)
    click.echo(f"earliest discharge: {earliest}")

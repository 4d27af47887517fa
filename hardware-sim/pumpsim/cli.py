"""`pumpsim`: run the simulator in the foreground, or talk to a running one's control channel.

pumpsim --pumps 2 --tcp 127.0.0.1:5020 --rtu-link /tmp/pump-rtu --control 127.0.0.1:5021
pumpsim fault --control 127.0.0.1:5021 --unit 1 occlusion-downstream on
pumpsim fault --control 127.0.0.1:5021 --unit 1 runaway on --factor 1.5
pumpsim fault --control 127.0.0.1:5021 --unit 1 reboot
pumpsim status --control 127.0.0.1:5021 --unit 1
pumpsim --tcp 127.0.0.1:5020 --newera-link /tmp/newera --newera-pumps 3 --control ...
pumpsim newera-fault --control 127.0.0.1:5021 --address 2 stall on
pumpsim --tcp 127.0.0.1:5020 --dulco-link /tmp/dulco --dulco-timeout-ms 2000 --control ...
pumpsim dulco-fault --control 127.0.0.1:5021 --unit 20 metering-monitor on
pumpsim log --control 127.0.0.1:5021
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from decimal import Decimal, InvalidOperation

import click

from pumpsim.control import ControlClient
from pumpsim.errors import SimError
from pumpsim.faults import Fault
from pumpsim.harness import DEFAULT_SERIAL_BASE, Simulator

_ALIASES = {"occlusion": Fault.OCCLUSION_DOWNSTREAM.value}


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)
    return host, int(port_text)


def _decimal(value: str, option: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"not a number: {value!r}", param_hint=option) from None


async def _serve(sim: Simulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        tcp = f"{sim.tcp_address[0]}:{sim.tcp_address[1]}" if sim.tcp_address else "-"
        control = (
            f"{sim.control_address[0]}:{sim.control_address[1]}" if sim.control_address else "-"
        )
        print(
            f"pumpsim ready tcp={tcp} rtu={sim.rtu_path or '-'} control={control} "
            f"pumps={len(sim.units)} newera={sim.newera_path or '-'} "
            f"dulco={sim.dulco_path or '-'} "
            f"time_scale={sim.time_scale:g}",
            flush=True,
        )
        await stop.wait()
    print("pumpsim stopped", flush=True)


@click.group(invoke_without_command=True)
@click.option("--pumps", default=1, show_default=True, type=click.IntRange(1, 247))
@click.option("--tcp", "tcp", default=None, help="Serve Modbus TCP on HOST:PORT.")
@click.option("--rtu-link", default=None, help="Serve Modbus RTU on a pty linked at PATH.")
@click.option("--baud", default=115_200, show_default=True, type=click.IntRange(1, 4_000_000))
@click.option("--time-scale", default=1.0, show_default=True, type=click.FloatRange(min=0.001))
@click.option("--control", "control", default=None, help="Control channel on HOST:PORT.")
@click.option(
    "--control-journal",
    default=None,
    help="Append every control request that changes a pump to PATH (JSON lines).",
)
@click.option("--serial-base", default=DEFAULT_SERIAL_BASE, show_default=True, type=int)
@click.option("--max-rate", "max_rate", default="1200.00", show_default=True, help="mL/h")
@click.option(
    "--newera-link", default=None, help="Serve New Era NE-1000 pumps on a pty linked at PATH."
)
@click.option("--newera-pumps", default=1, show_default=True, type=click.IntRange(1, 99))
@click.option(
    "--newera-baud",
    default=19200,
    show_default=True,
    type=click.Choice(["300", "1200", "2400", "9600", "19200"]),
)
@click.option(
    "--dulco-link",
    default=None,
    help="Serve a DULCO flex Control pump (Modbus RTU, unit 20) on a pty linked at PATH.",
)
@click.option(
    "--dulco-timeout-ms",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="The DULCO pump's Modbus timeout (register 61, set at the pump; 0 = off).",
)
@click.option(
    "--dulco-baud",
    default=19200,
    show_default=True,
    type=click.IntRange(1200, 4_000_000),
    help="The DULCO line's wire timing (the pump's factory setting is 19200).",
)
@click.pass_context
def main(
    ctx: click.Context,
    pumps: int,
    tcp: str | None,
    rtu_link: str | None,
    baud: int,
    time_scale: float,
    control: str | None,
    control_journal: str | None,
    serial_base: int,
    max_rate: str,
    newera_link: str | None,
    newera_pumps: int,
    newera_baud: str,
    dulco_link: str | None,
    dulco_timeout_ms: int,
    dulco_baud: int,
) -> None:
    """Simulate GIP-MB1 infusion pumps over Modbus TCP and/or RTU."""
    if ctx.invoked_subcommand is not None:
        return
    if tcp is None and rtu_link is None and newera_link is None and dulco_link is None:
        raise click.UsageError(
            "nothing to serve: give --tcp HOST:PORT, --rtu-link PATH, --newera-link PATH "
            "and/or --dulco-link PATH"
        )
    try:
        sim = Simulator(
            pumps,
            tcp=_host_port(tcp, "--tcp") if tcp else False,
            rtu_link=rtu_link,
            baud=baud,
            time_scale=time_scale,
            control=_host_port(control, "--control") if control else False,
            control_journal=control_journal,
            serial_base=serial_base,
            max_rate_ml_h=_decimal(max_rate, "--max-rate"),
            newera_pumps=newera_pumps if newera_link else 0,
            newera_link=newera_link,
            newera_baud=int(newera_baud),
            dulco_link=dulco_link,
            dulco_timeout_ms=dulco_timeout_ms,
            dulco_baud=dulco_baud,
        )
        asyncio.run(_serve(sim))
    except (SimError, OSError, RuntimeError) as exc:
        click.echo(f"pumpsim: {exc}", err=True)
        sys.exit(1)


def _client(control: str) -> ControlClient:
    host, port = _host_port(control, "--control")
    try:
        return ControlClient(host, port)
    except OSError as exc:
        click.echo(f"pumpsim: cannot reach control channel {control}: {exc}", err=True)
        sys.exit(1)


def _request(control: str, op: str, **fields: object) -> dict[str, object]:
    with _client(control) as client:
        try:
            return client.request(op, **fields)
        except SimError as exc:
            click.echo(f"pumpsim: {exc}", err=True)
            sys.exit(1)


@main.command()
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", required=True, type=click.IntRange(1, 247))
@click.argument("name")
@click.argument("switch", required=False, type=click.Choice(["on", "off"]))
@click.option("--factor", default=None, help="runaway: actual rate = factor × setpoint")
@click.option("--ms", default=None, type=int, help="latency: added reply delay")
@click.option("--probability", default=None, type=float, help="corrupt-rtu: per frame")
@click.option("--count", default=None, type=int, help="corrupt-rtu: next N frames only")
def fault(
    control: str,
    unit: int,
    name: str,
    switch: str | None,
    factor: str | None,
    ms: int | None,
    probability: float | None,
    count: int | None,
) -> None:
    """Switch fault NAME on or off for a unit (NAME `reboot` power-cycles it)."""
    name = _ALIASES.get(name, name.replace("_", "-").lower())
    if name == "reboot":
        if switch is not None:
            raise click.UsageError("reboot takes no on/off")
        reply = _request(control, "reboot", unit=unit)
    else:
        if switch is None:
            raise click.UsageError(f"say `{name} on` or `{name} off`")
        reply = _request(
            control,
            "fault",
            unit=unit,
            fault=name,
            on=switch == "on",
            factor=factor,
            ms=ms,
            probability=probability,
            count=count,
        )
    click.echo(json.dumps(reply["status"], sort_keys=True))


@main.command("newera-fault")
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--address", required=True, type=click.IntRange(0, 99))
@click.argument("name")
@click.argument("switch", required=False, type=click.Choice(["on", "off"]))
@click.option("--count", default=None, type=int, help="garble, bad-crc: next N replies")
def newera_fault(
    control: str, address: int, name: str, switch: str | None, count: int | None
) -> None:
    """Switch a New Era pump's fault NAME on or off (power-loss, watchdog-expire: no switch)."""
    if name in ("power-loss", "watchdog-expire"):
        if switch == "off":
            raise click.UsageError(f"{name} happens once; it has no off")
        switch = "on"
    if switch is None:
        raise click.UsageError(f"say `{name} on` or `{name} off`")
    reply = _request(
        control, "newera-fault", address=address, fault=name, on=switch == "on", count=count
    )
    click.echo(json.dumps(reply["status"], sort_keys=True))


@main.command("newera-status")
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--address", required=True, type=click.IntRange(0, 99))
def newera_status(control: str, address: int) -> None:
    """Print a New Era pump's state as JSON."""
    click.echo(json.dumps(_request(control, "newera-status", address=address)["status"]))


@main.command("dulco-fault")
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", default=20, show_default=True, type=click.IntRange(1, 247))
@click.argument("name")
@click.argument("switch", required=False, type=click.Choice(["on", "off"]))
@click.option("--value", default=None, help="error-bit, modbus-timeout-ms, power-up, word-order")
def dulco_fault(control: str, unit: int, name: str, switch: str | None, value: str | None) -> None:
    """Switch a DULCO pump's fault NAME on or off (power-loss: no switch), or set a
    keypad setting with --value (modbus-timeout-ms, power-up, word-order)."""
    if name == "power-loss" or (value is not None and name != "error-bit"):
        if switch == "off":
            raise click.UsageError(f"{name} has no off")
        switch = "on"
    if switch is None:
        raise click.UsageError(f"say `{name} on` or `{name} off`")
    reply = _request(control, "dulco-fault", unit=unit, fault=name, on=switch == "on", value=value)
    click.echo(json.dumps(reply["status"], sort_keys=True))


@main.command("dulco-status")
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", default=20, show_default=True, type=click.IntRange(1, 247))
def dulco_status(control: str, unit: int) -> None:
    """Print a DULCO pump's state as JSON."""
    click.echo(json.dumps(_request(control, "dulco-status", unit=unit)["status"], sort_keys=True))


@main.command("press-alarm-key")
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", required=True, type=click.IntRange(1, 247))
def press_alarm_key(control: str, unit: int) -> None:
    """Press the pump's own alarm key (GIP-MB1 ACK_ALARM at the pump, not over the wire).

    Clears the pump's latched alarm once its cause is gone (`fault NAME off`); the pump
    goes IDLE. Refused (exit 1, nothing changed) when the pump is not in alarm or the
    condition is still present.
    """
    reply = _request(control, "press_alarm_key", unit=unit)
    click.echo(json.dumps(reply["status"], sort_keys=True))


@main.command()
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", required=True, type=click.IntRange(1, 247))
def status(control: str, unit: int) -> None:
    """Print a pump's full state as JSON."""
    click.echo(json.dumps(_request(control, "status", unit=unit)["status"], sort_keys=True))


@main.command()
@click.option("--control", required=True, help="HOST:PORT of the control channel.")
@click.option("--unit", default=None, type=click.IntRange(1, 247))
def log(control: str, unit: int | None) -> None:
    """Print the command log, one JSON object per line."""
    records = _request(control, "log", unit=unit)["records"]
    assert isinstance(records, list)
    for record in records:
        click.echo(json.dumps(record, sort_keys=True))

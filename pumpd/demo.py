"""`make demo`: show, on a fresh machine, what pumpd can do so far.

It starts the real `pumpsim` process (time scale 60: one real second is one simulated
minute), waits for its ready line, and drives pump 1 through the driver over real Modbus
TCP: program, prime 2 mL with the line disconnected, then infuse 10 mL at 150 mL/h to the
pump's own VTBI, printing a status line per simulated half-minute. It then stops the
pump, shows the simulator's own command log, and shuts the simulator down cleanly.
The demo grows with each capability; it never needs anything but the venv.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from decimal import Decimal

from pumpd.drivers.base import Command, PumpProgram, PumpState, PumpStatus
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver

TIME_SCALE = 60
RATE_ML_H = Decimal("150.00")
VTBI_UL = 10_000
PRIME_VOLUME_UL = 2_000
PRIME_RATE_ML_H = Decimal("600.00")
READY_TIMEOUT_S = 20.0


def _line(label: str, status: PumpStatus) -> str:
    alarms = status.alarms.name if status.alarms else "-"
    return (
        f"  {label:<9} state={status.state.value:<9} rate={status.rate_actual_ml_h:>7} mL/h "
        f"infused={status.volume_infused_ul / 1000:>6.3f} mL "
        f"primed={status.volume_primed_ul / 1000:>5.3f} mL "
        f"pressure={status.pressure_downstream_mmhg:>4} mmHg "
        f"battery={status.battery_percent:>3}% alarms={alarms}"
    )


async def _wait_for(
    driver: ModbusPumpDriver, label: str, done: PumpState, print_every_s: float
) -> PumpStatus:
    """Poll at 10 Hz until the pump reaches `done`, printing every `print_every_s` real s."""
    loop = asyncio.get_running_loop()
    next_print = loop.time()
    while True:
        status = await driver.read_status()
        if status.state is done or loop.time() >= next_print:
            print(_line(label, status), flush=True)
            next_print = loop.time() + print_every_s
        if status.state is done:
            return status
        if status.state is PumpState.ALARM:
            raise RuntimeError(f"pump alarmed during {label}: {status.alarms!r}")
        await asyncio.sleep(0.1)


async def _drive(host: str, port: int) -> None:
    driver = ModbusPumpDriver(ModbusConfig(transport="tcp", host=host, port=port, unit=1))
    await driver.connect()
    try:
        status = await driver.read_status()
        print(
            f"pump 1: serial {status.serial_number}, profile GIP-MB1 v{status.profile_version}, "
            f"max rate {status.max_rate_ml_h} mL/h, uptime {status.uptime_s} s"
        )
        program = PumpProgram(
            rate_ml_h=RATE_ML_H,
            vtbi_ul=VTBI_UL,
            kvo_rate_ml_h=Decimal("0.00"),
            prime_volume_ul=PRIME_VOLUME_UL,
            prime_rate_ml_h=PRIME_RATE_ML_H,
        )
        echoed = await driver.write_program(program)
        print(f"program written and read back: {echoed}")
        # Defence in depth: the pump stops by itself if our heartbeat goes quiet for 30
        # simulated seconds (half a real second at scale 60).
        await driver.set_heartbeat_timeout(30)
        heartbeat = asyncio.create_task(_heartbeat(driver))
        try:
            await _prime_and_infuse(driver)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        outcome = await driver.command(Command.STOP)
        print(f"  STOP confirmed: cmd_seq={outcome.cmd_seq} result={outcome.result.value}")
    finally:
        await driver.close()


async def _prime_and_infuse(driver: ModbusPumpDriver) -> None:
    print("priming 2 mL at 600 mL/h (line NOT connected to the patient)")
    outcome = await driver.command(Command.PRIME)
    print(f"  PRIME confirmed: cmd_seq={outcome.cmd_seq} result={outcome.result.value}")
    await _wait_for(driver, "priming", PumpState.IDLE, 0.1)

    print("infusing 10 mL at 150 mL/h (4 simulated minutes, 4 s real)")
    outcome = await driver.command(Command.START)
    print(f"  START confirmed: cmd_seq={outcome.cmd_seq} result={outcome.result.value}")
    final = await _wait_for(driver, "infusing", PumpState.IDLE, 0.5)
    delivered = final.volume_infused_ul
    print(f"VTBI reached: delivered {delivered} µL of {VTBI_UL} µL ({final.warnings.name})")


async def _heartbeat(driver: ModbusPumpDriver) -> None:
    while True:
        await driver.heartbeat()
        await asyncio.sleep(0.2)


def _start_simulator() -> tuple[subprocess.Popen[str], str, int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pumpsim",
        "--pumps",
        "2",
        "--tcp",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--time-scale",
        str(TIME_SCALE),
    ]
    print("$ pumpsim " + " ".join(cmd[3:]), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("pumpsim ready"):
        proc.kill()
        raise RuntimeError(f"pumpsim did not start: {line!r}")
    print(line.rstrip(), flush=True)
    fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
    host, port = fields["tcp"].rsplit(":", 1)
    return proc, host, int(port), fields["control"]


def _show_command_log(control: str) -> None:
    print("\nsimulator's own command log (pumpsim log):")
    out = subprocess.run(
        [sys.executable, "-m", "pumpsim", "log", "--control", control],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    for entry in out.stdout.splitlines():
        print("  " + entry)


def main() -> int:
    proc, host, port, control = _start_simulator()
    try:
        asyncio.run(_drive(host, port))
        _show_command_log(control)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        print(f"\npumpsim stopped (exit {code}).")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

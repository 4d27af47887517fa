"""`Simulator`: the whole pumpsim (pumps, Modbus servers, bridges, control channel) in the
caller's asyncio loop. Tests, the demo and benchmarks use it in-process; `pumpsim` the
command runs exactly this object in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from pumpsim.bank import CommandRecord, PumpBank
from pumpsim.bridge import RtuLine, TcpProxy
from pumpsim.control import ControlServer
from pumpsim.dulco import DulcoLine
from pumpsim.errors import AlarmKeyRefused, SimConfigError, SimulatorStateError
from pumpsim.faults import CONDITION_OF, WIRE_FAULTS, Fault, check_fault
from pumpsim.model import PumpModel
from pumpsim.newera import NewEraLine
from pumpsim.registers import AlarmFlag, CmdResult
from pumpsim.wire_faults import WireFaults

__all__ = ["CommandRecord", "Fault", "Simulator"]

DEFAULT_SERIAL_BASE = 100_000
MAX_BAUD = 4_000_000
TICK_S = 0.05

Address = tuple[str, int]


def _listen_address(value: bool | Address, default_port: int = 0) -> Address | None:
    if value is False:
        return None
    if value is True:
        return ("127.0.0.1", default_port)
    return value


class Simulator:
    """N GIP-MB1 pumps (unit ids 1..N) behind Modbus TCP and/or RTU, with fault injection."""

    def __init__(
        self,
        pumps: int = 2,
        *,
        tcp: bool | Address = True,
        rtu_link: str | None = None,
        rtu: bool = False,
        baud: int = 115_200,
        time_scale: float = 1.0,
        control: bool | Address = False,
        control_journal: str | Path | None = None,
        serial_base: int = DEFAULT_SERIAL_BASE,
        max_rate_ml_h: Decimal = Decimal("1200.00"),
        wire_timing: bool = True,
        newera_pumps: int = 0,
        newera_link: str | None = None,
        newera_baud: int = 19200,
        dulco_link: str | None = None,
        dulco: bool = False,
        dulco_timeout_ms: int = 1000,
        dulco_baud: int = 19200,
    ) -> None:
        if not 0 < baud <= MAX_BAUD:
            raise SimConfigError(f"baud must be in 1..{MAX_BAUD}, got {baud}")
        max_rate_centi = max_rate_ml_h * 100
        if max_rate_centi != max_rate_centi.to_integral_value() or max_rate_centi <= 0:
            raise SimConfigError(
                f"max_rate_ml_h must be positive with at most 2 decimals, got {max_rate_ml_h}"
            )
        self._bank = PumpBank(
            pumps=pumps,
            time_scale=time_scale,
            serial_base=serial_base,
            max_rate_centi_ml_h=int(max_rate_centi),
        )
        self._wire: dict[int, WireFaults] = {unit: WireFaults() for unit in self._bank.units}
        self._tcp_listen = _listen_address(tcp)
        self._rtu_wanted = rtu or rtu_link is not None
        self._rtu_link = rtu_link
        self._baud = baud
        self._control_listen = _listen_address(control)
        self._control_journal = None if control_journal is None else Path(control_journal)
        self._wire_timing = wire_timing
        self.newera: NewEraLine | None = None
        if newera_pumps or newera_link is not None:
            # New Era pumps answer at addresses 1..N on their own pty; their delivery runs
            # on the bank's scaled clock, their Safe-mode watchdog on the wall clock.
            self.newera = NewEraLine(
                max(newera_pumps, 1),
                clock_now_s=self._scaled_now_s,
                baud=newera_baud,
                link_path=newera_link,
                wire_timing=wire_timing,
            )
        self.newera_path: str | None = None
        self.dulco: DulcoLine | None = None
        if dulco or dulco_link is not None:
            # A DULCO flex pump at unit 20 on its own RTU pty; delivery on the scaled
            # clock, its Modbus timeout on the wall clock.
            self.dulco = DulcoLine(
                clock_now_s=self._scaled_now_s,
                link_path=dulco_link,
                modbus_timeout_ms=dulco_timeout_ms,
                baud=dulco_baud,
                wire_timing=wire_timing,
            )
        self.dulco_path: str | None = None
        self._tcp_server: ModbusTcpServer | None = None
        self._proxy: TcpProxy | None = None
        self._rtu_line: RtuLine | None = None
        self._rtu_server: ModbusSerialServer | None = None
        self._control: ControlServer | None = None
        self._tick: asyncio.Task[None] | None = None
        self.tcp_address: Address | None = None
        self.rtu_path: str | None = None
        self.control_address: Address | None = None

    # ---------------------------------------------------------------- lifetime

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._tick is not None:
            raise SimulatorStateError("simulator already started")
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise

    async def _start_parts(self) -> None:
        from pumpsim.server import start_rtu_server, start_tcp_server

        self._tick = asyncio.create_task(self._tick_forever())
        if self._tcp_listen is not None:
            self._tcp_server, internal_port = await start_tcp_server(self._bank)
            self._proxy = TcpProxy(("127.0.0.1", internal_port), self._wire)
            self.tcp_address = await self._proxy.start(*self._tcp_listen)
        if self._rtu_wanted:
            self._rtu_line = RtuLine(
                self._wire, baud=self._baud, link_path=self._rtu_link, wire_timing=self._wire_timing
            )
            self._rtu_line.open()
            self._rtu_server = await start_rtu_server(
                self._bank, self._rtu_line.device_path, self._baud
            )
            self.rtu_path = self._rtu_line.path
        if self.newera is not None:
            await self.newera.start()
            self.newera_path = self.newera.path
        if self.dulco is not None:
            await self.dulco.start()
            self.dulco_path = self.dulco.path
        if self._control_listen is not None:
            self._control = ControlServer(self, self._control_journal)
            self.control_address = await self._control.start(*self._control_listen)

    async def stop(self) -> None:
        """Stop everything that was started; safe to call twice or after a failed start."""
        if self._control is not None:
            await self._control.close()
            self._control = None
        if self._proxy is not None:
            await self._proxy.close()
            self._proxy = None
        if self._tcp_server is not None:
            await self._tcp_server.shutdown()  # type: ignore[no-untyped-call]
            self._tcp_server = None
        if self._rtu_server is not None:
            await self._rtu_server.shutdown()  # type: ignore[no-untyped-call]
            self._rtu_server = None
        if self._rtu_line is not None:
            await self._rtu_line.close()
            self._rtu_line = None
        if self.newera is not None:
            await self.newera.stop()
        if self.dulco is not None:
            await self.dulco.stop()
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None

    async def _tick_forever(self) -> None:
        # Lazy physics already runs before every register access; the tick makes the
        # heartbeat failsafe and VTBI end happen when nobody is asking, too.
        while True:
            self._bank.sync_all()
            await asyncio.sleep(TICK_S)

    # ---------------------------------------------------------------- inspection

    @property
    def units(self) -> tuple[int, ...]:
        return self._bank.units

    @property
    def time_scale(self) -> float:
        return self._bank.clock.time_scale

    def _scaled_now_s(self) -> Fraction:
        """The bank's scaled clock, looked up at each call: the New Era and DULCO lines
        follow it even when the bank's clock is replaced after construction."""
        return self._bank.clock.now_s()

    def pump(self, unit: int) -> PumpModel:
        """The model of `unit`, brought to now (read it; change it only through faults)."""
        return self._bank.sync(unit)

    def peek(self, unit: int) -> PumpModel:
        """The model as the last access or periodic tick left it, without advancing it.

        For tests that must show something happened with no client asking (failsafe, VTBI).
        """
        return self._bank.model(unit)

    def wire_faults(self, unit: int) -> WireFaults:
        self._bank.model(unit)
        return self._wire[unit]

    def status(self, unit: int) -> dict[str, object]:
        snapshot = self.pump(unit).snapshot()
        snapshot["unit"] = unit
        snapshot["wire"] = self._wire[unit].as_json()
        return snapshot

    def command_log(self, unit: int | None = None) -> list[CommandRecord]:
        return self._bank.command_log(unit)

    # ---------------------------------------------------------------- faults

    def inject(
        self,
        unit: int,
        fault: Fault | str,
        on: bool = True,
        *,
        factor: Decimal | float | int | str | None = None,
        ms: int | None = None,
        probability: float | None = None,
        count: int | None = None,
        direction: str | None = None,
        address: int | None = None,
    ) -> None:
        """Switch a fault on or off; the request is checked whole before anything changes."""
        request = check_fault(
            fault,
            on,
            {
                "factor": factor,
                "ms": ms,
                "probability": probability,
                "count": count,
                "direction": direction,
                "address": address,
            },
        )
        model = self._bank.sync(unit)
        wire = self._wire[unit]
        which = request.fault
        if which in CONDITION_OF:
            model.set_condition(CONDITION_OF[which], request.on)
        elif which is Fault.LOW_BATTERY:
            model.set_low_battery(request.on)
        elif which is Fault.RUNAWAY:
            model.set_runaway(request.factor if request.on else None)
        elif which is Fault.STUCK_VOLUME:
            model.set_stuck_volume(request.on)
        elif which is Fault.IGNORE_COMMANDS:
            model.set_ignore_commands(request.on)
        elif which in WIRE_FAULTS:
            wire.apply(request)
        else:
            raise AssertionError("unreachable: every Fault is handled above")

    def press_alarm_key(self, unit: int) -> None:
        """Press the alarm key at the pump: its latched alarm is cleared and it goes IDLE.

        Refused with :class:`AlarmKeyRefused` (nothing changed) when the pump is not in
        alarm, or when an alarm condition is still present (clear the fault first).
        """
        model = self._bank.sync(unit)
        result = model.press_alarm_key()
        if result is CmdResult.REJECTED_STATE:
            raise AlarmKeyRefused(
                f"unit {unit} is {model.state.name}, not in alarm: the alarm key does nothing"
            )
        if result is CmdResult.REJECTED_ALARM:
            present = ", ".join(f.name or "" for f in AlarmFlag if f and f in model.conditions)
            raise AlarmKeyRefused(
                f"unit {unit} still has its alarm condition ({present}); clear the cause first"
            )

    def reboot(self, unit: int) -> None:
        """Power-cycle one pump: volumes 0, IDLE, uptime 0, last_cmd_seq 0; faults stay."""
        self._bank.sync(unit).reboot()

"""DULCO flex Control pumps on their own simulated RS-485 line (a pty pair, Modbus RTU).

The same machinery as the GIP-MB1 RTU line: pymodbus's `SimDevice` answers, its action is
the pump model, and the byte bridge between two ptys carries the wire faults (no answer =
`drop-link`). A Linux pty keeps no parity, so the line runs 8N1 whatever the pump's
registers say (pumpd's simulated configuration says `parity = "N"`).

Faults (`inject`): error bits (`metering-monitor`, `hose-rupture`, `level`,
`temperature`, or `error-bit` with a bit number) that stop the pump until reset;
`power-loss` (the pump comes up as its power-up behaviour says); `no-answer` (requests
are not delivered, so the pump's Modbus timeout runs out: it stops, and restarts by itself
on the next request unless start/stop was written to stop first); `modbus-timeout-ms`,
`power-up` and `word-order` change what is set at the pump's own keypad.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from fractions import Fraction

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from pumpsim import dulco_map as m
from pumpsim.bridge import RtuLine
from pumpsim.dulco_model import DulcoModel
from pumpsim.errors import FaultParameterError, UnknownFaultError, UnknownUnitError
from pumpsim.wire_faults import WireFaults

TICK_S = 0.02
_FIRST = m.BLOCKS[0][0]
_LAST = m.BLOCKS[-1][0] + m.BLOCKS[-1][1] - 1


class DulcoFault(enum.StrEnum):
    METERING_MONITOR = "metering-monitor"
    HOSE_RUPTURE = "hose-rupture"
    LEVEL = "level"
    TEMPERATURE = "temperature"
    ERROR_BIT = "error-bit"
    POWER_LOSS = "power-loss"
    NO_ANSWER = "no-answer"
    MODBUS_TIMEOUT_MS = "modbus-timeout-ms"
    POWER_UP = "power-up"
    WORD_ORDER = "word-order"


_ERROR_OF = {
    DulcoFault.METERING_MONITOR: m.ErrorBit.METERING_MONITOR,
    DulcoFault.HOSE_RUPTURE: m.ErrorBit.HOSE_RUPTURE,
    DulcoFault.LEVEL: m.ErrorBit.LEVEL,
    DulcoFault.TEMPERATURE: m.ErrorBit.TEMPERATURE_TOO_HIGH,
}
WORD_ORDERS = ("high_first", "low_first", "byte_swapped")


def _served(address: int, count: int) -> bool:
    return any(first <= address and address + count <= first + n for first, n in m.BLOCKS)


class DulcoLine:
    """One pty line with DULCO pumps at the given unit ids (default one, unit 20)."""

    def __init__(
        self,
        *,
        clock_now_s: Callable[[], Fraction],
        units: tuple[int, ...] = (m.DEFAULT_UNIT,),
        link_path: str | None = None,
        modbus_timeout_ms: int = 1000,
        baud: int = 19200,
        wire_timing: bool = True,
    ) -> None:
        self._now_s = clock_now_s
        self._baud = baud
        self.pumps = {u: DulcoModel(unit=u, modbus_timeout_ms=modbus_timeout_ms) for u in units}
        self.wire = {u: WireFaults() for u in units}
        self._link_path = link_path
        self._wire_timing = wire_timing
        self._line: RtuLine | None = None
        self._server: ModbusSerialServer | None = None
        self._tick: asyncio.Task[None] | None = None
        self.path = ""
        self.writes: list[dict[str, object]] = []
        """Every accepted write: unit, address, words, wall time (the command log)."""

    def pump(self, unit: int) -> DulcoModel:
        try:
            pump = self.pumps[unit]
        except KeyError:
            raise UnknownUnitError(f"no DULCO pump at unit {unit}") from None
        pump.advance_to(self._now_s())
        return pump

    # -------------------------------------------------------------- serving

    def _action(self, unit: int) -> SimAction:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code not in (3, 6, 16):
                return ExcCodes.ILLEGAL_FUNCTION
            if not _served(address, count):
                return ExcCodes.ILLEGAL_ADDRESS
            pump = self.pump(unit)
            wall = time.monotonic()
            if set_values is not None:
                if function_code == 3:
                    return ExcCodes.ILLEGAL_FUNCTION
                values = [int(v) for v in set_values]
                why = pump.check_write(address, values)
                if why == "address":
                    return ExcCodes.ILLEGAL_ADDRESS
                if why == "value":
                    return ExcCodes.ILLEGAL_VALUE
                pump.write(address, values)
                self.writes.append(
                    {"unit": unit, "address": address, "words": values, "t_monotonic": wall}
                )
            pump.request(wall)
            offset = address - start_address
            registers[offset : offset + count] = pump.image(address, count)
            return None

        return action

    async def start(self) -> None:
        self._line = RtuLine(
            self.wire, baud=self._baud, link_path=self._link_path, wire_timing=self._wire_timing
        )
        self._line.open()
        no_bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
        devices = [
            SimDevice(
                id=unit,
                simdata=(
                    no_bits,
                    list(no_bits),
                    [
                        SimData(
                            _FIRST,
                            count=_LAST - _FIRST + 1,
                            values=0,
                            datatype=DataType.REGISTERS,
                        )
                    ],
                    [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                ),
                action=self._action(unit),
            )
            for unit in self.pumps
        ]
        self._server = ModbusSerialServer(devices, port=self._line.device_path, baudrate=self._baud)
        await self._server.serve_forever(background=True)
        self.path = self._line.path
        self._tick = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        if self._line is not None:
            await self._line.close()
            self._line = None

    async def _tick_forever(self) -> None:
        # The watchdog and delivery run when nobody asks, too.
        while True:
            wall = time.monotonic()
            for unit in self.pumps:
                self.pump(unit).comm_tick(wall)
            await asyncio.sleep(TICK_S)

    # -------------------------------------------------------------- faults

    def inject(
        self, unit: int, fault: str, on: bool = True, *, value: int | str | None = None
    ) -> None:
        """Switch a fault on or off, or set a keypad setting (`value`)."""
        try:
            which = DulcoFault(fault)
        except ValueError:
            names = ", ".join(f.value for f in DulcoFault)
            raise UnknownFaultError(f"unknown DULCO fault {fault!r}; known: {names}") from None
        pump = self.pump(unit)
        takes_value = which in (
            DulcoFault.ERROR_BIT,
            DulcoFault.MODBUS_TIMEOUT_MS,
            DulcoFault.POWER_UP,
            DulcoFault.WORD_ORDER,
        )
        if takes_value and value is None:
            raise FaultParameterError(f"{which} needs a value")
        if not takes_value and value is not None:
            raise FaultParameterError(f"{which} takes no value")
        if which in _ERROR_OF:
            pump.set_error(_ERROR_OF[which], on)
        elif which is DulcoFault.ERROR_BIT:
            pump.set_error(_int(value, 0, 31, which), on)
        elif which is DulcoFault.POWER_LOSS:
            if on:
                pump.power_loss()
        elif which is DulcoFault.NO_ANSWER:
            self.wire[unit].drop = on
        elif which is DulcoFault.MODBUS_TIMEOUT_MS:
            pump.modbus_timeout_ms = _int(value, 0, m.MAX_TIMEOUT_MS, which)
        elif which is DulcoFault.POWER_UP:
            pump.power_up = _int(value, 0, 2, which)
        else:
            if value not in WORD_ORDERS:
                raise FaultParameterError(f"word-order is one of {', '.join(WORD_ORDERS)}")
            pump.word_order = str(value)


def _int(value: object, low: int, high: int, which: DulcoFault) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise FaultParameterError(f"{which}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise FaultParameterError(f"{which}: {number} is not in {low}..{high}")
    return number

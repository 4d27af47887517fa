"""The Modbus face of the pumps: pymodbus 3.16.1 `SimDevice`s whose action is the model.

Input and holding registers are separate address spaces (the four-block form of SimDevice),
so fc 4 at 100 or fc 3 at 0 is outside the map and SimRuntime itself answers exception 0x02
before the action runs. The action never awaits: in 3.16.1 an await inside it lets a second
request overwrite the handler's pending PDU and the reply leaves with the wrong transaction
id (stack-notes). Latency, drops and corruption live in the byte bridge instead.
"""

from __future__ import annotations

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from pumpsim import registers as reg
from pumpsim.bank import PumpBank

_WRITE_CODES = frozenset({reg.FC_WRITE_SINGLE, reg.FC_WRITE_MULTIPLE})
_HOLDING_CODES = frozenset({reg.FC_READ_HOLDING, *_WRITE_CODES})


def unit_action(bank: PumpBank, unit: int) -> SimAction:
    """The SimDevice action of one unit: bring the model to now, then serve its registers.

    A plain coroutine function, because SimDevice checks `inspect.iscoroutinefunction`.
    """

    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code not in reg.SUPPORTED_FUNCTION_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is not None:
            if function_code not in _WRITE_CODES:
                return ExcCodes.ILLEGAL_FUNCTION
            bank.write(unit, address, [int(v) for v in set_values])
        model = bank.sync(unit)
        if function_code in _HOLDING_CODES:
            image, first = model.holding_registers(), reg.HOLDING_FIRST
        else:
            image, first = model.input_registers(), reg.INPUT_FIRST
        # registers[0] is the block's first address; refresh the whole block from the model
        # so the reply (and SimRuntime's copy) is the pump's truth, not the last write.
        offset = first - start_address
        registers[offset : offset + len(image)] = image
        return None

    return action


def build_devices(bank: PumpBank) -> list[SimDevice]:
    """One SimDevice per unit, with the GIP-MB1 map as four separate blocks."""
    devices = []
    for unit in bank.units:
        # Coils and discrete inputs are not in the map; SimDevice needs a block for each, so
        # one bit block is declared and every bit function is refused by the action.
        no_bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
        holding = [
            SimData(
                reg.HOLDING_FIRST, count=reg.HOLDING_COUNT, values=0, datatype=DataType.REGISTERS
            )
        ]
        inputs = [
            SimData(reg.INPUT_FIRST, count=reg.INPUT_COUNT, values=0, datatype=DataType.REGISTERS)
        ]
        devices.append(
            SimDevice(
                id=unit,
                simdata=(no_bits, list(no_bits), holding, inputs),
                action=unit_action(bank, unit),
            )
        )
    return devices


async def start_tcp_server(bank: PumpBank, host: str = "127.0.0.1") -> tuple[ModbusTcpServer, int]:
    """A Modbus TCP server on an ephemeral port (clients reach it through the proxy)."""
    server = ModbusTcpServer(build_devices(bank), address=(host, 0))
    await server.serve_forever(background=True)
    transport = server.transport
    sockets = getattr(transport, "sockets", None)
    if not sockets:
        await server.shutdown()  # type: ignore[no-untyped-call]
        raise OSError(f"Modbus TCP server did not bind on {host}")
    port = int(sockets[0].getsockname()[1])
    return server, port


async def start_rtu_server(bank: PumpBank, port_path: str, baud: int) -> ModbusSerialServer:
    """A Modbus RTU server on the device side of the simulated serial line."""
    server = ModbusSerialServer(build_devices(bank), port=port_path, baudrate=baud)
    await server.serve_forever(background=True)
    return server

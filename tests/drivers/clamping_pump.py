"""A second, deliberately different GIP-MB1 device: it clamps rate_setpoint to 500 mL/h.

Real pumps do this (a device limit below the programmed rate). It is not the simulator —
it lives here so the driver's read-back check meets a pump that truly holds a value other
than the one written, on a real socket, with no race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

CLAMP_CENTI_ML_H = 50_000
MAX_RATE_CENTI_ML_H = 120_000
STATUS = [0] * 21
STATUS[0] = 1  # profile_version
STATUS[2] = 4242  # serial_number, low word
STATUS[17], STATUS[18] = MAX_RATE_CENTI_ML_H >> 16, MAX_RATE_CENTI_ML_H & 0xFFFF


async def _action(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    # The values are stored after the action returns, so clamping them here is what the
    # device keeps.
    if function_code == 16 and set_values is not None and address == 100 and count >= 2:
        rate = int(set_values[0]) << 16 | int(set_values[1])
        if rate > CLAMP_CENTI_ML_H:
            words = cast(list[int], set_values)
            words[0], words[1] = CLAMP_CENTI_ML_H >> 16, CLAMP_CENTI_ML_H & 0xFFFF
    return None


@asynccontextmanager
async def clamping_pump() -> AsyncIterator[tuple[str, int]]:
    bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
    holding = [SimData(100, count=14, values=0, datatype=DataType.REGISTERS)]
    inputs = [SimData(0, values=STATUS, datatype=DataType.REGISTERS)]
    device = SimDevice(id=1, simdata=(bits, list(bits), holding, inputs), action=_action)
    server = ModbusTcpServer([device], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        sockets = getattr(server.transport, "sockets", None)
        assert sockets, "the clamping pump did not bind"
        port = int(sockets[0].getsockname()[1])
        yield "127.0.0.1", port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]

"""Properties over the real wire: any representable program survives write and read-back
exactly, and the status decodes the pump's own numbers to the last count.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from pumpsim.harness import Simulator

from pumpd.drivers.base import PumpProgram
from pumpd.drivers.modbus import ModbusPumpDriver

from .conftest import tcp_config

U32 = (1 << 32) - 1
rates = st.integers(0, U32).map(lambda centi: Decimal(centi).scaleb(-2))
volumes = st.integers(0, U32)
programs = st.builds(
    PumpProgram,
    rate_ml_h=rates,
    vtbi_ul=volumes,
    kvo_rate_ml_h=rates,
    prime_volume_ul=volumes,
    prime_rate_ml_h=rates,
)


@given(many=st.lists(programs, min_size=1, max_size=8))
async def test_any_wire_representable_program_reads_back_exactly(
    many: list[PumpProgram],
) -> None:
    async with (
        Simulator(pumps=1, tcp=True) as sim,
        ModbusPumpDriver(tcp_config(sim)) as drv,
    ):
        for wanted in many:
            assert await drv.write_program(wanted) == wanted
            # The pump's own reading of its setpoints agrees with the driver's decoding.
            model = sim.pump(1)
            assert model.rate_setpoint_centi_ml_h == wanted.rate_ml_h * 100
            assert model.vtbi_ul == wanted.vtbi_ul
            assert model.kvo_rate_centi_ml_h == wanted.kvo_rate_ml_h * 100
            assert model.prime_volume_ul == wanted.prime_volume_ul
            assert model.prime_rate_centi_ml_h == wanted.prime_rate_ml_h * 100

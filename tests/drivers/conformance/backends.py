"""The backends the conformance suite runs over, each with its own simulator on its own wire.

A backend is one pump kind on one transport: how to start its simulator, how to build a
driver for it, what it can do, and every fault its simulator can inject with the way that
fault must surface through the driver contract. The cases in ``test_conformance.py`` are
written once against :class:`Rig`; adding a pump kind (a register-map profile over RTU,
say) is one more :class:`Rig` subclass here and one more entry in :data:`BACKENDS`.
"""

from __future__ import annotations

import abc
import contextlib
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from pumpsim.harness import Fault, Simulator
from pumpsim.newera import NeraFault

from pumpd.drivers.base import AlarmFlag, PumpDriver, PumpProgram, WarningFlag
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver

TIME_SCALE = 60.0
"""Delivery runs 60 times faster than the wall; watchdogs are armed in wall seconds."""


class Surface(enum.Enum):
    """How an injected fault must show through the driver contract."""

    ALARM = "the pump stops: state ALARM, the named flag latched until ACK_ALARM"
    WARNING = "a warning flag; the infusion goes on"
    RATE = "the measured rate departs from the setpoint"
    STUCK_VOLUME = "the volume counter stops while the pump says it infuses"
    UNREACHABLE = "reads raise PumpUnreachable, never an old or damaged value"
    RIGHT_OR_UNREACHABLE = "each read is this pump's true status or PumpUnreachable"
    RESTART = "the uptime falls, the volumes are 0, the pump is IDLE"
    UNCERTAIN = "a command raises CommandUncertain, never OK"


@dataclass(frozen=True, slots=True)
class FaultCase:
    """One simulator fault and the way it must surface."""

    name: str
    """The simulator's own name for it (its control channel's spelling)."""
    surface: Surface
    flag: AlarmFlag | WarningFlag | None = None
    once: bool = False
    """A counted fault that spoils only the next reply (then the link is good again)."""


@dataclass(frozen=True, slots=True)
class Abilities:
    """What this kind of pump can do and report, as the suite checks it.

    Where the driver also declares a capability record, the suite checks the record
    against these facts and these facts against the wire.
    """

    reports_pressure: bool
    reports_battery: bool
    heartbeat_echo: bool
    reports_max_rate: bool
    sequence_echo: bool
    """Commands confirmed by the pump's echo of the sequence number (else by read-back)."""
    kvo: bool
    priming: bool
    pump_vtbi_stop: bool
    watchdog: bool


class Rig(abc.ABC):
    """One running simulator of a backend, and the means to reach and hurt its pump."""

    name: ClassVar[str]
    abilities: ClassVar[Abilities]
    faults: ClassVar[tuple[FaultCase, ...]]
    other_wires: ClassVar[frozenset[str]] = frozenset()
    """The simulator's faults that belong to another transport (they cannot be injected
    here); with :attr:`faults` they must cover :meth:`catalogue` exactly."""
    watchdog_arm_s: ClassVar[int]
    """``set_heartbeat_timeout`` argument that arms a watchdog of about one wall second."""

    def __init__(self, sim: Simulator, tmp_path: Path) -> None:
        self.sim = sim
        self.tmp_path = tmp_path

    @classmethod
    @abc.abstractmethod
    def open(cls, tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Rig]:
        """Start this backend's simulator; the rig lives as long as the context."""

    @classmethod
    @abc.abstractmethod
    def catalogue(cls) -> frozenset[str]:
        """Every fault the simulator of this pump kind can inject."""

    @abc.abstractmethod
    def driver(self) -> PumpDriver:
        """A new, unconnected driver for the simulated pump."""

    @abc.abstractmethod
    def absent_driver(self) -> PumpDriver:
        """A driver configured for a pump that is not there."""

    @abc.abstractmethod
    def unrepresentable(self) -> tuple[PumpProgram, str]:
        """A program this pump cannot hold exactly, and the field the driver must name."""

    @abc.abstractmethod
    def held_setpoints(self) -> tuple[Decimal, int]:
        """The simulator's own view of the programmed rate (mL/h) and VTBI (µL)."""

    @abc.abstractmethod
    def inject(self, fault: FaultCase, on: bool) -> None:
        """Switch ``fault`` on or off (a one-shot fault ignores off)."""

    @abc.abstractmethod
    def cut_link(self, cut: bool) -> None:
        """Cut the pump off the wire, or put it back."""


def program(
    rate_ml_h: str = "60",
    vtbi_ul: int = 5_000,
    *,
    kvo_rate_ml_h: str = "0",
    prime_volume_ul: int = 0,
    prime_rate_ml_h: str = "0",
) -> PumpProgram:
    """A program every backend can hold exactly (4 digits, at most 2 decimals)."""
    return PumpProgram(
        rate_ml_h=Decimal(rate_ml_h),
        vtbi_ul=vtbi_ul,
        kvo_rate_ml_h=Decimal(kvo_rate_ml_h),
        prime_volume_ul=prime_volume_ul,
        prime_rate_ml_h=Decimal(prime_rate_ml_h),
    )


# ------------------------------------------------------------------- GIP-MB1

_GIP_ABILITIES = Abilities(
    reports_pressure=True,
    reports_battery=True,
    heartbeat_echo=True,
    reports_max_rate=True,
    sequence_echo=True,
    kvo=True,
    priming=True,
    pump_vtbi_stop=True,
    watchdog=True,
)

_GIP_FAULTS = (
    FaultCase(Fault.OCCLUSION_DOWNSTREAM, Surface.ALARM, AlarmFlag.OCCLUSION_DOWNSTREAM),
    FaultCase(Fault.OCCLUSION_UPSTREAM, Surface.ALARM, AlarmFlag.OCCLUSION_UPSTREAM),
    FaultCase(Fault.AIR_IN_LINE, Surface.ALARM, AlarmFlag.AIR_IN_LINE),
    FaultCase(Fault.DOOR_OPEN, Surface.ALARM, AlarmFlag.DOOR_OPEN),
    FaultCase(Fault.SYSTEM_FAULT, Surface.ALARM, AlarmFlag.SYSTEM_FAULT),
    FaultCase(Fault.BATTERY_DEPLETED, Surface.ALARM, AlarmFlag.BATTERY_DEPLETED),
    FaultCase(Fault.LOW_BATTERY, Surface.WARNING, WarningFlag.LOW_BATTERY),
    FaultCase(Fault.RUNAWAY, Surface.RATE),
    FaultCase(Fault.STUCK_VOLUME, Surface.STUCK_VOLUME),
    FaultCase(Fault.IGNORE_COMMANDS, Surface.UNCERTAIN),
    FaultCase(Fault.DROP_LINK, Surface.UNREACHABLE),
    FaultCase("reboot", Surface.RESTART),
)
_TCP_ONLY = (Fault.RESET_TCP, Fault.HALF_OPEN_TCP, Fault.SILENT_TCP)
_RTU_ONLY = (Fault.CORRUPT_RTU, Fault.TRUNCATE_RTU, Fault.NOISE_RTU, Fault.FOREIGN_FRAME_RTU)

_LATENCY_MS = 600
"""Beyond the driver's 0.2 s timeout: every reply comes too late to be taken."""


class _GipRig(Rig):
    abilities = _GIP_ABILITIES
    watchdog_arm_s = round(TIME_SCALE)  # pump seconds run at the time scale

    @classmethod
    def catalogue(cls) -> frozenset[str]:
        return frozenset(f.value for f in Fault) | {"reboot"}

    @abc.abstractmethod
    def config(self, unit: int) -> ModbusConfig: ...

    def driver(self) -> PumpDriver:
        return ModbusPumpDriver(self.config(1))

    def absent_driver(self) -> PumpDriver:
        return ModbusPumpDriver(self.config(7))  # no pump answers unit 7

    def unrepresentable(self) -> tuple[PumpProgram, str]:
        return program(vtbi_ul=2**32), "vtbi_ul"  # beyond the two-register VTBI

    def held_setpoints(self) -> tuple[Decimal, int]:
        snap = self.sim.pump(1).snapshot()
        rate = Decimal(int(str(snap["rate_setpoint_centi_ml_h"]))) / 100
        return rate, int(str(snap["vtbi_ul"]))

    def inject(self, fault: FaultCase, on: bool) -> None:
        if fault.name == "reboot":
            if on:
                self.sim.reboot(1)
            return
        if fault.once:
            if on:
                self.sim.inject(1, fault.name, True, count=1)
        elif fault.name == Fault.RUNAWAY:
            self.sim.inject(1, Fault.RUNAWAY, on, factor="1.5" if on else None)
        elif fault.name == Fault.LATENCY:
            self.sim.inject(1, Fault.LATENCY, on, ms=_LATENCY_MS if on else None)
        else:
            self.sim.inject(1, fault.name, on)

    def cut_link(self, cut: bool) -> None:
        self.sim.inject(1, Fault.DROP_LINK, cut)


class GipMb1Tcp(_GipRig):
    name = "gip-mb1-tcp"
    faults = (
        *_GIP_FAULTS,
        FaultCase(Fault.LATENCY, Surface.UNREACHABLE),  # the transaction id refuses it
        FaultCase(Fault.RESET_TCP, Surface.UNREACHABLE, once=True),
        FaultCase(Fault.SILENT_TCP, Surface.UNREACHABLE),
        FaultCase(Fault.HALF_OPEN_TCP, Surface.UNREACHABLE, once=True),
    )
    other_wires = frozenset(_RTU_ONLY)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, tmp_path: Path) -> AsyncIterator[Rig]:
        async with Simulator(pumps=1, tcp=True, time_scale=TIME_SCALE) as sim:
            yield cls(sim, tmp_path)

    def config(self, unit: int) -> ModbusConfig:
        assert self.sim.tcp_address is not None
        host, port = self.sim.tcp_address
        return ModbusConfig(
            transport="tcp",
            host=host,
            port=port,
            unit=unit,
            timeout_s=0.2,
            reconnect_delay_max_s=0.5,
        )


class GipMb1Rtu(_GipRig):
    name = "gip-mb1-rtu"
    faults = (
        *_GIP_FAULTS,
        # RTU has no transaction id, and the line holds its quiet period only for the
        # longest frame after a timeout (a halt must not wait behind a dead pump): a reply
        # later than that may answer the next read of the same pump, one poll old.
        FaultCase(Fault.LATENCY, Surface.RIGHT_OR_UNREACHABLE),
        FaultCase(Fault.CORRUPT_RTU, Surface.UNREACHABLE),
        FaultCase(Fault.TRUNCATE_RTU, Surface.UNREACHABLE),
        FaultCase(Fault.NOISE_RTU, Surface.RIGHT_OR_UNREACHABLE),
        FaultCase(Fault.FOREIGN_FRAME_RTU, Surface.RIGHT_OR_UNREACHABLE),
    )
    other_wires = frozenset(_TCP_ONLY)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, tmp_path: Path) -> AsyncIterator[Rig]:
        async with Simulator(
            pumps=1, tcp=False, rtu=True, baud=115_200, time_scale=TIME_SCALE
        ) as sim:
            yield cls(sim, tmp_path)

    def config(self, unit: int) -> ModbusConfig:
        assert self.sim.rtu_path is not None
        return ModbusConfig(
            transport="rtu",
            device=self.sim.rtu_path,
            baudrate=115_200,
            unit=unit,
            timeout_s=0.2,
            reconnect_delay_max_s=0.5,
        )


# ------------------------------------------------------------------- New Era


class NewEraSerial(Rig):
    name = "newera-serial"
    abilities = Abilities(
        reports_pressure=False,
        reports_battery=False,
        heartbeat_echo=False,
        reports_max_rate=False,
        sequence_echo=False,
        kvo=False,
        priming=True,
        pump_vtbi_stop=True,
        watchdog=True,
    )
    faults = (
        FaultCase(NeraFault.STALL, Surface.ALARM, AlarmFlag.OCCLUSION_DOWNSTREAM),
        FaultCase(NeraFault.WATCHDOG_EXPIRE, Surface.ALARM, AlarmFlag.COMM_LOSS),
        FaultCase(NeraFault.POWER_LOSS, Surface.RESTART),
        FaultCase(NeraFault.GARBLE, Surface.UNREACHABLE, once=True),
        FaultCase(NeraFault.BAD_CRC, Surface.UNREACHABLE, once=True),
        FaultCase(NeraFault.SILENT, Surface.UNREACHABLE),
        FaultCase(NeraFault.LOSE_COMMANDS, Surface.UNCERTAIN),
    )
    watchdog_arm_s = 1  # SAF counts wall seconds; the rig's clock_scale is 1

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, tmp_path: Path) -> AsyncIterator[Rig]:
        async with Simulator(
            pumps=1,
            tcp=False,
            newera_pumps=1,
            newera_link=str(tmp_path / "newera"),
            time_scale=TIME_SCALE,
        ) as sim:
            yield cls(sim, tmp_path)

    @classmethod
    def catalogue(cls) -> frozenset[str]:
        return frozenset(f.value for f in NeraFault)

    def config(self, device: str) -> NewEraConfig:
        return NewEraConfig(
            device=device,
            address=1,
            syringe_diameter_mm=Decimal("26.59"),
            heartbeat_timeout_s=10,
            timeout_s=0.3,
            reconnect_delay_s=0.05,
        )

    def driver(self) -> PumpDriver:
        assert self.sim.newera_path is not None
        return NewEraPumpDriver(self.config(self.sim.newera_path))

    def absent_driver(self) -> PumpDriver:
        return NewEraPumpDriver(self.config(str(self.tmp_path / "no-such-line")))

    def unrepresentable(self) -> tuple[PumpProgram, str]:
        return program(vtbi_ul=12_345), "vtbi_ul"  # 12.345 mL: the pump would keep 12.34

    def held_setpoints(self) -> tuple[Decimal, int]:
        assert self.sim.newera is not None
        pump = self.sim.newera.pump(1)
        return pump.rate_ml_h(), int(pump.volume_ul())

    def inject(self, fault: FaultCase, on: bool) -> None:
        assert self.sim.newera is not None
        if fault.once or fault.name in (NeraFault.WATCHDOG_EXPIRE, NeraFault.POWER_LOSS):
            if on:
                self.sim.newera.inject(1, fault.name)
            return
        self.sim.newera.inject(1, fault.name, on)

    def cut_link(self, cut: bool) -> None:
        assert self.sim.newera is not None
        self.sim.newera.inject(1, NeraFault.SILENT, cut)


BACKENDS: tuple[type[Rig], ...] = (GipMb1Tcp, GipMb1Rtu, NewEraSerial)
"""Every backend the suite runs over; a new pump kind is one more entry."""

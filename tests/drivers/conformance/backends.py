"""The backends the conformance suite runs over, each with its own simulator on its own wire.

A backend is one pump kind on one transport: how to start its simulator, how to build a
driver for it, what it can do, and every fault its simulator can inject with the way that
fault must surface through the driver contract. The cases in ``test_conformance.py`` are
written once against :class:`Rig`; adding a pump kind is one more :class:`Rig` subclass
here and one more entry in :data:`BACKENDS` (the DULCO flex register-map profile over RTU
was added that way).
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

from pumpsim.dulco import DulcoFault
from pumpsim.harness import Fault, Simulator
from pumpsim.newera import NeraFault

from pumpd.drivers.base import AlarmFlag, PumpDriver, PumpProgram, WarningFlag
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.regmap_driver import RegisterMapDriver, register_map

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
    RESTART = "the pump's own restart evidence shows it (uptime, switch-on count, reset alarm)"
    UNCERTAIN = "a command raises CommandUncertain, never OK"
    UNFIT = "a keypad setting pumpd cannot drive safely: connect stops the pump, refuses it"
    FORCED = "a keypad setting connect puts back: after a power loss the pump stays stopped"


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
    driver_vtbi_stop: bool
    """Without a VTBI of its own, the driver writes the stop at the programmed volume."""
    watchdog: bool
    volume_kept_over_power_loss: bool
    """The volume counter survives a power loss (the restart still shows in its evidence)."""


class Rig(abc.ABC):
    """One running simulator of a backend, and the means to reach and hurt its pump."""

    name: ClassVar[str]
    abilities: ClassVar[Abilities]
    faults: ClassVar[tuple[FaultCase, ...]]
    other_wires: ClassVar[frozenset[str]] = frozenset()
    """The simulator's faults that belong to another transport (they cannot be injected
    here); with :attr:`faults` they must cover :meth:`catalogue` exactly."""
    watchdog_arm_s: ClassVar[int]
    """``set_heartbeat_timeout`` argument that arms (or, for a watchdog set at the pump,
    accepts) a watchdog of :attr:`watchdog_wall_s` wall seconds."""
    watchdog_wall_s: ClassVar[float] = 1.0

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
    def held_setpoints(self) -> tuple[Decimal, int | None]:
        """The simulator's own view of the programmed rate (mL/h) and VTBI (µL); None for
        a pump that holds no VTBI."""

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
    driver_vtbi_stop=False,
    watchdog=True,
    volume_kept_over_power_loss=False,
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
"""Beyond the drivers' 0.35 s timeout: every reply comes too late to be taken."""


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

    def held_setpoints(self) -> tuple[Decimal, int | None]:
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
            timeout_s=0.35,
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
            timeout_s=0.35,
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
        driver_vtbi_stop=False,
        watchdog=True,
        volume_kept_over_power_loss=False,
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

    def held_setpoints(self) -> tuple[Decimal, int | None]:
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


# ------------------------------------------------------------------- DULCO flex

_DULCO_UNIT = 20
_DULCO_TIMEOUT_MS = 3000
"""The pump's Modbus timeout as set at its panel: long enough that a loaded machine's pause
between two requests is not a silence, short enough for the watchdog case."""

_DULCO_BAD_SETTING: dict[str, int | str] = {
    DulcoFault.ERROR_BIT: 20,  # a bit the profile names nothing for
    DulcoFault.MODBUS_TIMEOUT_MS: 0,  # off: the pump would run on when pumpd falls silent
    DulcoFault.WORD_ORDER: "byte_swapped",
    DulcoFault.POWER_UP: 1,  # "always on": a power loss would restart delivery
}
_DULCO_GOOD_SETTING: dict[str, int | str] = {
    DulcoFault.MODBUS_TIMEOUT_MS: _DULCO_TIMEOUT_MS,
    DulcoFault.WORD_ORDER: "high_first",
    DulcoFault.POWER_UP: 0,
}


class DulcoFlexRtu(Rig):
    """The prominent-dulcoflex register-map profile over RTU, pumpsim's DULCO line on a pty.

    A metering pump, not an IV pump: no prime over Modbus, no VTBI of its own (the driver
    stops it at the programmed volume), no pressure or battery reading, no KVO, and a
    communication timeout set at the pump's panel that pumpd reads and checks.
    """

    name = "prominent-dulcoflex-rtu"
    abilities = Abilities(
        reports_pressure=False,
        reports_battery=False,
        heartbeat_echo=False,
        reports_max_rate=True,
        sequence_echo=False,
        kvo=False,
        priming=False,
        pump_vtbi_stop=False,
        driver_vtbi_stop=True,
        watchdog=True,
        volume_kept_over_power_loss=True,
    )
    faults = (
        FaultCase(DulcoFault.METERING_MONITOR, Surface.ALARM, AlarmFlag.OCCLUSION_DOWNSTREAM),
        FaultCase(DulcoFault.HOSE_RUPTURE, Surface.ALARM, AlarmFlag.SYSTEM_FAULT),
        FaultCase(DulcoFault.LEVEL, Surface.ALARM, AlarmFlag.SYSTEM_FAULT),
        FaultCase(DulcoFault.TEMPERATURE, Surface.ALARM, AlarmFlag.SYSTEM_FAULT),
        FaultCase(DulcoFault.ERROR_BIT, Surface.ALARM, AlarmFlag.UNKNOWN),
        FaultCase(DulcoFault.POWER_LOSS, Surface.RESTART),
        FaultCase(DulcoFault.NO_ANSWER, Surface.UNREACHABLE),
        FaultCase(DulcoFault.MODBUS_TIMEOUT_MS, Surface.UNFIT),
        FaultCase(DulcoFault.WORD_ORDER, Surface.UNFIT),
        FaultCase(DulcoFault.POWER_UP, Surface.FORCED),
    )
    watchdog_wall_s = _DULCO_TIMEOUT_MS / 1000
    watchdog_arm_s = round(watchdog_wall_s * TIME_SCALE)  # the driver's clock_scale divides

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, tmp_path: Path) -> AsyncIterator[Rig]:
        async with Simulator(
            pumps=1,
            tcp=False,
            dulco=True,
            dulco_baud=115_200,
            dulco_timeout_ms=_DULCO_TIMEOUT_MS,
            time_scale=TIME_SCALE,
        ) as sim:
            yield cls(sim, tmp_path)

    @classmethod
    def catalogue(cls) -> frozenset[str]:
        return frozenset(f.value for f in DulcoFault)

    def config(self, device: str) -> ModbusConfig:
        return ModbusConfig(
            transport="rtu",
            device=device,
            baudrate=115_200,
            unit=_DULCO_UNIT,
            profile="prominent-dulcoflex",
            timeout_s=0.35,
            reconnect_delay_max_s=0.5,
        )

    def _driver(self, device: str) -> PumpDriver:
        rmap = register_map("prominent-dulcoflex")
        assert rmap is not None
        return RegisterMapDriver(
            self.config(device), rmap, heartbeat_timeout_s=10, clock_scale=TIME_SCALE
        )

    def driver(self) -> PumpDriver:
        assert self.sim.dulco_path is not None
        return self._driver(self.sim.dulco_path)

    def absent_driver(self) -> PumpDriver:
        return self._driver(str(self.tmp_path / "no-such-line"))

    def unrepresentable(self) -> tuple[PumpProgram, str]:
        # 1000 l/h in a float32 is not exact to 0.01 mL/h: refused, never rounded.
        return program("1000000.01"), "rate_ml_h"

    def held_setpoints(self) -> tuple[Decimal, int | None]:
        assert self.sim.dulco is not None
        target_l_h = self.sim.dulco.pump(_DULCO_UNIT).target_l_h
        rate = Decimal(target_l_h.numerator) / Decimal(target_l_h.denominator) * 1000
        return rate.quantize(Decimal("0.01")), None  # the pump holds no VTBI

    def inject(self, fault: FaultCase, on: bool) -> None:
        assert self.sim.dulco is not None
        line = self.sim.dulco
        if fault.name == DulcoFault.POWER_LOSS:
            if on:
                line.inject(_DULCO_UNIT, fault.name)
        elif fault.name == DulcoFault.ERROR_BIT:
            line.inject(_DULCO_UNIT, fault.name, on, value=_DULCO_BAD_SETTING[fault.name])
        elif fault.name in _DULCO_GOOD_SETTING:
            setting = _DULCO_BAD_SETTING if on else _DULCO_GOOD_SETTING
            line.inject(_DULCO_UNIT, fault.name, value=setting[fault.name])
        else:
            line.inject(_DULCO_UNIT, fault.name, on)

    def cut_link(self, cut: bool) -> None:
        assert self.sim.dulco is not None
        self.sim.dulco.inject(_DULCO_UNIT, DulcoFault.NO_ANSWER, cut)


BACKENDS: tuple[type[Rig], ...] = (GipMb1Tcp, GipMb1Rtu, NewEraSerial, DulcoFlexRtu)
"""Every backend the suite runs over; a new pump kind is one more entry."""

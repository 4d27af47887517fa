"""The driver backends by transport: a pump's ``transport`` key chooses its driver.

Modelled on python-can's ``Bus(interface=...)``: each driver module registers a factory
for the transports it speaks (`register_backend`), and `make_driver` builds the driver a
pump's configuration names. With the factory a backend registers the ``[[pump]]`` keys it
owns (`PumpKeys`: their types, its checks, what simulation mode demands of them), so the
configuration reads only the keys every pump has and hands the backend the rest. The
daemon never names a driver class and the configuration never names a transport's key,
so a new transport is one new module that registers itself: listed in
`BUILT_IN_MODULES`, or shipped by another package under the ``pumpd.drivers`` entry-point
group (its module registers on import).

Modules are imported on the first lookup, not at start-up of this module, so a driver
module may import this one to register without a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from pumpd.drivers.base import PumpDriver
from pumpd.drivers.rtu_config import SerialKeys

BUILT_IN_MODULES = ("pumpd.drivers.modbus_backend", "pumpd.drivers.newera_backend")
"""The driver modules shipped with pumpd; each registers its transports on import."""
ENTRY_POINT_GROUP = "pumpd.drivers"


class PumpSettings(Protocol):
    """What a backend may read from one checked ``[[pump]]`` entry (pumpd.config.PumpConfig)."""

    @property
    def transport(self) -> str: ...
    @property
    def unit(self) -> int: ...
    @property
    def profile(self) -> str: ...
    @property
    def heartbeat_timeout_s(self) -> int: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def device(self) -> str | None: ...
    @property
    def baudrate(self) -> int | None: ...
    @property
    def syringe_diameter_mm(self) -> Decimal | None: ...
    @property
    def serial(self) -> SerialKeys: ...


DriverFactory = Callable[[PumpSettings, float], PumpDriver]
"""Builds the driver of one pump: (its settings, the daemon's time scale). No I/O: the
driver connects later, so a factory may run at start-up to learn capabilities."""


Problem = tuple[str, str]
"""``(key, message)``, the key as the configuration names it: ``pump[0].address``."""


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """What a backend's check makes of its keys: the transport's part of a checked pump
    (pumpd.config.PumpConfig adds the keys every pump has)."""

    unit: int
    """The pump's id on its line: a Modbus unit id, a New Era network address."""
    profile: str
    host: str | None = None
    port: int | None = None
    device: str | None = None
    baudrate: int | None = None
    syringe_diameter_mm: Decimal | None = None
    """newera-serial only: from ``syringe_diameter_mm`` or the syringe table."""
    syringe: str | None = None
    syringe_capacity_ul: int | None = None
    """newera-serial only: from the syringe table, or ``syringe_capacity_ml`` beside a
    bare diameter (the order's volume and prime are checked against it)."""
    serial: SerialKeys = SerialKeys()  # noqa: RUF009 (frozen, immutable)
    """modbus-rtu only: parity, stop bits, data bits."""
    unit_key: str = "unit"
    """The key that names the pump on its line, for the configuration's messages."""
    scaled_watchdog: bool = True
    """The pump's own watchdog counts the controller's (scaled) seconds, as a simulated
    Modbus pump does; False for one that counts wall seconds (New Era's SAF)."""


K = TypeVar("K", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class PumpKeys(Generic[K]):
    """The ``[[pump]]`` keys one transport owns and how they are checked.

    ``model`` types them (a strict pydantic model that forbids other keys: its errors are
    reported with the file's other type errors, before any check runs). ``check`` turns a
    typed table into `TransportSettings`, appending ``(key, message)`` for each problem; it
    gets ``at`` (``pump[0]``) and the pump's ``heartbeat_timeout_s``, whose limits are the
    transport's. A key another transport owns is refused as "only for transport ..."
    naming its owners, unless ``refused`` gives this transport's own sentence for it.
    ``simulated`` says what simulation mode refuses of a checked pump (a line that could
    be real hardware).
    """

    model: type[K]
    check: Callable[[str, K, int, list[Problem]], TransportSettings | None]
    refused: Mapping[str, str] = field(default_factory=dict)
    simulated: Callable[[str, PumpSettings], list[Problem]] | None = None

    def refusal(self, key: str) -> str | None:
        """Why `key`, another transport's, is refused here; None for one of this
        transport's own keys or a key no transport has (a typo, the model's to report)."""
        if key in self.refused:
            return self.refused[key]
        if key in self.model.model_fields:
            return None
        owners = key_owners(key)
        return f"only for transport {', '.join(owners)}" if owners else None


@dataclass(frozen=True, slots=True)
class Backend:
    transport: str
    make: DriverFactory
    module: str
    keys: PumpKeys[Any] | None = None


class UnknownTransport(LookupError):
    """No backend registered for a transport; the message names the known ones."""

    def __init__(self, transport: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"no pump driver for transport {transport!r}; known: {', '.join(known) or 'none'}"
        )
        self.transport = transport
        self.known = known


class DuplicateBackend(ValueError):
    """Two modules registered the same transport."""


_BACKENDS: dict[str, Backend] = {}
_loaded = False


def register_backend(
    transport: str, make: DriverFactory, keys: PumpKeys[Any] | None = None
) -> None:
    """Register `make` as the driver factory for `transport` (a module calls it on import),
    and `keys`, the ``[[pump]]`` keys it owns; without them the transport is made from
    code only, and a configuration naming it is refused.

    Registering the same factory again (a module reloaded) is harmless; a different one
    for a taken transport is refused, so one pump kind can never silently replace another.
    """
    module = getattr(make, "__module__", "?")
    held = _BACKENDS.get(transport)
    if held is not None and (held.module, held.make.__qualname__) != (
        module,
        getattr(make, "__qualname__", ""),
    ):
        raise DuplicateBackend(
            f"transport {transport!r} is already served by {held.module}; {module} "
            "cannot take it over"
        )
    _BACKENDS[transport] = Backend(transport, make, module, keys)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for name in BUILT_IN_MODULES:
        importlib.import_module(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
    _loaded = True


def transports() -> tuple[str, ...]:
    """Every registered transport, sorted."""
    _load()
    return tuple(sorted(_BACKENDS))


def registered_transports() -> tuple[str, ...]:
    """Every registered transport, in the order the backends registered."""
    _load()
    return tuple(_BACKENDS)


def key_owners(key: str) -> tuple[str, ...]:
    """The transports whose ``[[pump]]`` keys include `key`, in registration order."""
    _load()
    return tuple(
        b.transport
        for b in _BACKENDS.values()
        if b.keys is not None and key in b.keys.model.model_fields
    )


def pump_keys(transport: str) -> PumpKeys[Any]:
    """The ``[[pump]]`` keys `transport`'s backend owns; `UnknownTransport` (naming, in
    registration order, every transport a configuration may name) if there are none."""
    _load()
    held = _BACKENDS.get(transport)
    if held is None or held.keys is None:
        raise UnknownTransport(
            transport, tuple(b.transport for b in _BACKENDS.values() if b.keys is not None)
        )
    return held.keys


def backend(transport: str) -> Backend:
    _load()
    try:
        return _BACKENDS[transport]
    except KeyError:
        raise UnknownTransport(transport, tuple(sorted(_BACKENDS))) from None


def make_driver(pump: PumpSettings, time_scale: float = 1.0) -> PumpDriver:
    """The driver for a pump's transport, not yet connected."""
    return backend(pump.transport).make(pump, time_scale)

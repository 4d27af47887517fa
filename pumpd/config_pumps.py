"""The ``[[pump]]`` entries: the keys every pump has, the rest handed to the backend its
``transport`` names (which owns, types and checks them: pumpd.drivers.registry), the
limits a simulation puts on them, and pumps that would share one endpoint.

A table is read in two passes, like the rest of the file: first every key's type
(`transport_key_problems`, reported with the file's other type errors), then the checks
(`_pump`), so one run names every problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpd.drivers import (
    PumpKeys,
    TransportSettings,
    UnknownTransport,
    pump_keys,
)
from pumpd.drivers import is_loopback as is_loopback
from pumpd.drivers import parse_host_port as parse_host_port

PUMP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
Problem = tuple[str, str]


class PumpSection(BaseModel):
    """One ``[[pump]]``: the keys every pump has. The others belong to its transport's
    backend, which types them in the second half of the first pass."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    id: str
    transport: str
    heartbeat_timeout_s: Annotated[int, Field(ge=1, le=600)] = 10
    accept_no_pump_watchdog: bool = False


COMMON_KEYS = frozenset(PumpSection.model_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpConfig(TransportSettings):
    """A checked pump: its transport's part as the backend checked it (``host``/``port``
    for TCP, ``device``/``baudrate`` for a serial line, ...) and the keys every pump has."""

    id: str
    transport: str
    heartbeat_timeout_s: int
    accept_no_pump_watchdog: bool = False
    """The site accepts, for this pump, that it has no watchdog of its own: without it
    such a pump is refused for live use (docs/driver.md, "Capabilities")."""
    keys: BaseModel | None = None
    """The transport's own keys as its backend typed them: a backend whose driver needs
    more than the fields above reads them here."""

    @property
    def address(self) -> str:
        """As the control socket shows it: ``127.0.0.1:5020`` or ``/dev/pts/3@19200``."""
        if self.host is not None:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"{host}:{self.port}"
        if self.device is not None:
            return f"{self.device}@{self.baudrate}"
        return self.transport


def _choices(names: Sequence[str]) -> str:
    quoted = [repr(name) for name in names]
    if not quoted:
        return "a registered transport (none is)"
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _pump_keys(transport: str) -> PumpKeys[Any] | str:
    """The keys `transport`'s backend owns, or the sentence refusing the transport."""
    try:
        return pump_keys(transport)
    except UnknownTransport as exc:
        return f"Input should be {_choices(exc.known)}, got {transport!r}"


def _own(table: Mapping[str, Any], keys: PumpKeys[Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k not in COMMON_KEYS and keys.refusal(k) is None}


def transport_key_problems(
    tables: object, problems_of: Callable[[ValidationError, tuple[int | str, ...]], list[Problem]]
) -> list[Problem]:
    """The first pass over each pump's transport keys: the transport known, and every key
    of its own of the type its backend gives (`problems_of` words pydantic's errors, their
    keys under the prefix it is given). Tables the file's model cannot read are its."""
    if not isinstance(tables, list):
        return []
    problems: list[Problem] = []
    for index, table in enumerate(tables):
        if not isinstance(table, dict) or not isinstance(table.get("transport"), str):
            continue
        keys = _pump_keys(table["transport"])
        if isinstance(keys, str):
            problems.append((f"pump[{index}].transport", keys))
            continue
        try:
            keys.model.model_validate(_own(table, keys))
        except ValidationError as exc:
            problems.extend(problems_of(exc, ("pump", index)))
    return problems


def _pump(index: int, raw: PumpSection, problems: list[Problem]) -> PumpConfig | None:
    """The second pass: the common keys checked, the rest by the transport's backend."""
    at = f"pump[{index}]"
    start = len(problems)
    if not PUMP_ID.fullmatch(raw.id):
        problems.append(
            (f"{at}.id", f"expected 1-40 of a-z 0-9 _ - (starting a-z or 0-9), got {raw.id!r}")
        )
    keys = _pump_keys(raw.transport)
    if isinstance(keys, str):
        problems.append((f"{at}.transport", keys))
        return None
    table = raw.model_extra or {}
    for key in table:
        if (why := keys.refusal(key)) is not None:
            problems.append((f"{at}.{key}", why))
    own = keys.model.model_validate(_own(table, keys))
    settings = keys.check(at, own, raw.heartbeat_timeout_s, problems)
    if len(problems) > start or settings is None:
        return None
    return PumpConfig(
        id=raw.id,
        transport=raw.transport,
        heartbeat_timeout_s=raw.heartbeat_timeout_s,
        accept_no_pump_watchdog=raw.accept_no_pump_watchdog,
        keys=own,
        **{f.name: getattr(settings, f.name) for f in fields(settings)},
    )


def _simulation_pump(pump: PumpConfig, index: int, problems: list[Problem]) -> None:
    """In simulation mode a pump must not be reachable real hardware: its backend says
    what of its line could be; a backend that cannot say is refused."""
    at = f"pump[{index}]"
    keys = pump_keys(pump.transport)
    if keys.simulated is None:
        problems.append(
            (
                f"{at}.transport",
                f"simulation = true accepts only transports that can tell the simulator's "
                f"line from real hardware; {pump.transport} cannot",
            )
        )
        return
    problems.extend(keys.simulated(at, pump))


def _same_endpoint(pumps: Sequence[PumpConfig], problems: list[tuple[str, str]]) -> None:
    """Two pumps on one line need different unit ids, and one serial line one baud rate."""
    units: dict[tuple[str, str], int] = {}
    bauds: dict[str, tuple[int, int | None]] = {}
    kinds: dict[str, tuple[int, str]] = {}
    for index, pump in enumerate(pumps):
        serial_line = pump.device is not None
        line = os.path.realpath(pump.device or "") if serial_line else pump.address
        key = (line, str(pump.unit))
        name = pump.unit_key
        if key in units:
            problems.append(
                (
                    f"pump[{index}].{name}",
                    f"{name} {pump.unit} on {line} is already pump[{units[key]}]",
                )
            )
        units.setdefault(key, index)
        if serial_line:
            first_kind = kinds.setdefault(line, (index, pump.transport))
            first = bauds.setdefault(line, (index, pump.baudrate))
            if first_kind[1] != pump.transport:
                problems.append(
                    (
                        f"pump[{index}].transport",
                        f"{line} carries {first_kind[1]} for pump[{first_kind[0]}]; "
                        "one line, one protocol",
                    )
                )
            if first[1] != pump.baudrate:
                problems.append(
                    (
                        f"pump[{index}].baudrate",
                        f"{line} is driven at {first[1]} by pump[{first[0]}]; one line, one rate",
                    )
                )

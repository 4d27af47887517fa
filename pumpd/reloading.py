"""What a configuration reload (SIGHUP, ``config.reload``) takes over, and what waits for a
restart: read from a marker on each configuration field, so a new setting is classified
where it is declared and never silently ignored by a list kept elsewhere.

A field whose metadata is ``APPLIED`` is taken from the re-read file; one marked ``RESTART`` keeps
its running value and a change to it is reported by name; an unmarked field is neither
(the file's own path).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_MARKER = "pumpd.on_reload"


class OnReload(enum.Enum):
    APPLIED = "applied"
    """Taken over by a reload."""
    RESTART = "restart"
    """Kept until the daemon restarts; a changed value is reported as needing a restart."""


APPLIED: Mapping[str, Any] = MappingProxyType({_MARKER: OnReload.APPLIED})
"""Field metadata: ``field(metadata=APPLIED)``."""
RESTART: Mapping[str, Any] = MappingProxyType({_MARKER: OnReload.RESTART})
"""Field metadata: ``field(metadata=RESTART)``."""

Config = TypeVar("Config", bound="DataclassInstance")


def marked(config_type: type[DataclassInstance], kind: OnReload) -> tuple[str, ...]:
    """The names of the fields marked ``kind``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(config_type) if f.metadata.get(_MARKER) is kind)


def needing_restart(running: Config, loaded: Config) -> list[str]:
    """The fields marked ``RESTART`` whose value in ``loaded`` differs from the running one."""
    return [
        name
        for name in marked(type(running), OnReload.RESTART)
        if getattr(loaded, name) != getattr(running, name)
    ]


def reloaded(running: Config, loaded: Config) -> Config:
    """The running configuration with every ``APPLIED`` field taken from ``loaded``."""
    applied = {name: getattr(loaded, name) for name in marked(type(running), OnReload.APPLIED)}
    return dataclasses.replace(running, **applied)

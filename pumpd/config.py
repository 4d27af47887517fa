"""The daemon's configuration file (``pumpd.toml``): read, validated, hashed.

Strict on purpose: an unknown key is refused (a typo would silently drop a setting), every
error names the key path (``pump[1].address``, pumps counted from 0) and the problem, and
all problems of a file are reported together so an administrator fixes them in one go.
Checks that protect patients live here too: a time scale above 1 only in simulation mode,
and in simulation mode no pump that could be a real device (only loopback TCP addresses
and pseudo-terminals, the simulator's lines, are accepted).

docs/daemon.md is the reference of every key.
"""

from __future__ import annotations

import grp
import hashlib
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import make_url

from pumpd.central.settings import ForwardSettings
from pumpd.clinictime import UnknownZone, system_zone_name, zone_of
from pumpd.config_pumps import PumpConfig as PumpConfig
from pumpd.config_pumps import (
    PumpSection,
    _pump,
    _same_endpoint,
    _simulation_pump,
    transport_key_problems,
)
from pumpd.config_pumps import is_loopback as is_loopback
from pumpd.config_pumps import parse_host_port as parse_host_port
from pumpd.db import DatabaseUrlError, normalize_url
from pumpd.protocols import default_path
from pumpd.reloading import APPLIED, RESTART

ROLES = ("nurse", "auditor", "admin")
"""The roles the control socket knows; none implies another (docs/control-socket.md)."""

DEFAULT_ROLES: Mapping[str, tuple[str, ...]] = {
    "nurse": ("pumpd-nurse",),
    "auditor": ("pumpd-audit",),
    "admin": ("pumpd-admin",),
}
MAX_TIME_SCALE = 10_000.0
GROUP_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
DEFAULT_AUDIT_SPOOL = "/var/lib/pumpd/spool/audit.spool"
"""In its own directory (the unit's ``StateDirectory=pumpd/spool``) so an administrator can
mount another file system there: a full disk under an SQLite database must not also fill the
spool (docs/audit-spool.md)."""
SPOOL_OFF = "off"
DEFAULT_FORWARD_MARK = "/var/lib/pumpd/forward.mark"
SITE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""A site's id at the central store (the centre's ``central_site`` checks the same)."""


class ConfigError(Exception):
    """A configuration file pumpd refuses; names every bad key and its problem.

    ``problems`` is a list of ``(key, message)``; ``key`` and ``message`` are the first.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], path: Path | None = None) -> None:
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.problems = list(problems)
        self.path = path
        self.key, self.message = self.problems[0]
        super().__init__("\n".join(f"{key}: {message}" for key, message in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DaemonSection(_Strict):
    """``[daemon]``: where things are and how the daemon runs."""

    socket: str = "/run/pumpd/pumpd.sock"
    socket_group: str | None = None
    database: str = "sqlite:////var/lib/pumpd/audit.db"
    audit_spool: str = DEFAULT_AUDIT_SPOOL
    protocols: str | None = None
    poll_hz: Annotated[float, Field(ge=1, le=50)] = 10.0
    simulation: bool = False
    time_scale: Annotated[float, Field(gt=0, le=MAX_TIME_SCALE)] = 1.0
    upgrade_schema: bool = True
    loop_stale_s: Annotated[float, Field(ge=0.5, le=60)] = 5.0
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    timezone: Annotated[str, Field(max_length=64)] | None = None


class StaffSection(_Strict):
    """``[staff]``: the staff registry's login and lock-out settings (minutes)."""

    idle_timeout_min: Annotated[float, Field(gt=0, le=720)] = 10.0
    max_failures: Annotated[int, Field(ge=1, le=20)] = 5
    lockout_min: Annotated[float, Field(gt=0, le=1440)] = 15.0


DEFAULT_CHECKPOINT_EVERY_EVENTS = 100
DEFAULT_CHECKPOINT_EVERY_S = 10.0
"""A cut tail or a rebuilt chain is caught only behind a published head: the newest events
since the last one are the exposure. One head at most every 10 s or 100 events (whichever
comes first, and only when the head moved) keeps that to about one session checkpoint
period, at one log line (~300 bytes) each: ~3 MB a day at the busiest (docs/audit.md)."""


class AuditSection(_Strict):
    """``[audit]``: the chain key and how often the chain head is published."""

    key_file: str | None = None
    checkpoint_every_events: Annotated[int, Field(ge=1, le=1_000_000)] = (
        DEFAULT_CHECKPOINT_EVERY_EVENTS
    )
    checkpoint_every_s: Annotated[float, Field(ge=0.1, le=86_400)] = DEFAULT_CHECKPOINT_EVERY_S


class ForwardSection(_Strict):
    """``[forward]``: store-and-forward of the audit log to a central PostgreSQL."""

    url: str
    site: str
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1000
    alert_after_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 900.0
    mark_file: str = DEFAULT_FORWARD_MARK
    interval_s: Annotated[float, Field(ge=0.05, le=300)] = 1.0
    retry_max_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    connect_timeout_s: Annotated[float, Field(ge=1, le=120)] = 10.0
    duty_cycle: Annotated[float, Field(ge=0.05, le=1.0)] = 0.25


class _File(_Strict):
    daemon: DaemonSection = DaemonSection()
    roles: dict[str, list[str]] | None = None
    staff: StaffSection = StaffSection()
    forward: ForwardSection | None = None

    audit: AuditSection = AuditSection()
    pump: list[PumpSection] = Field(default_factory=list)
    board: dict[str, Any] | None = None
    """``[board]`` belongs to ``pumpd-board`` (docs/board.md), which checks it; the daemon
    accepts the section and ignores it, so both read one file."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The whole checked file, with its path and the sha256 of its exact bytes.

    Each field's metadata says what a reload does with it (``pumpd.reloading``): ``APPLIED``
    is taken from the re-read file, ``RESTART`` keeps its running value and a change is reported.
    """

    path: Path
    sha256: str = field(metadata=APPLIED)
    socket: Path = field(metadata=RESTART)
    socket_group: str | None = field(metadata=RESTART)
    database: str = field(metadata=RESTART)
    audit_spool: Path | None = field(metadata=RESTART)
    """Where audit events wait while the database is away; None: switched off ("off")."""
    protocols: Path = field(metadata=APPLIED)
    poll_hz: float = field(metadata=RESTART)
    simulation: bool = field(metadata=RESTART)
    time_scale: float = field(metadata=RESTART)
    upgrade_schema: bool = field(metadata=RESTART)
    loop_stale_s: float = field(metadata=RESTART)
    log_format: Literal["auto", "json", "console"] = field(metadata=RESTART)
    log_level: Literal["debug", "info", "warning", "error"] = field(metadata=RESTART)
    timezone: str = field(metadata=RESTART)
    """The clinic's IANA time zone: every time a person reads is shown in it (the audit
    log stays UTC)."""
    roles: Mapping[str, frozenset[str]] = field(metadata=APPLIED)
    staff_idle_timeout_s: float = field(metadata=APPLIED)
    staff_max_failures: int = field(metadata=APPLIED)
    staff_lockout_s: float = field(metadata=APPLIED)
    pumps: tuple[PumpConfig, ...] = field(metadata=RESTART)
    forward: ForwardSettings | None = field(default=None, metadata=RESTART)
    """``[forward]``: None when this site does not forward its log (docs/central.md)."""

    audit_key_file: Path | None = field(default=None, metadata=RESTART)
    """``[audit] key_file``: the chain's HMAC key; None runs unkeyed (loudly)."""
    checkpoint_every_events: int = field(default=DEFAULT_CHECKPOINT_EVERY_EVENTS, metadata=RESTART)
    checkpoint_every_s: float = field(default=DEFAULT_CHECKPOINT_EVERY_S, metadata=RESTART)


def _key(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _pydantic_problems(
    exc: ValidationError, prefix: tuple[int | str, ...] = ()
) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown key (a typo here would silently drop a setting, so it is refused)"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            if "input" in error and error["type"] not in ("model_type", "dict_type"):
                message += f", got {error['input']!r}"
        problems.append((_key(loc), message))
    return problems


def _roles(
    raw: dict[str, list[str]] | None, problems: list[tuple[str, str]]
) -> dict[str, frozenset[str]]:
    if raw is None:
        return {role: frozenset(groups) for role, groups in DEFAULT_ROLES.items()}
    out: dict[str, frozenset[str]] = {role: frozenset() for role in ROLES}
    for role, groups in raw.items():
        if role not in ROLES:
            problems.append((f"roles.{role}", f"unknown role; the roles are {', '.join(ROLES)}"))
            continue
        for i, group in enumerate(groups):
            if not GROUP_NAME.fullmatch(group):
                problems.append(
                    (f"roles.{role}[{i}]", f"expected a Unix group name, got {group!r}")
                )
            elif group in ("root", "wheel", "sudo", "adm"):
                problems.append(
                    (
                        f"roles.{role}[{i}]",
                        f"{group!r} is an administrators' group; roles are granted by "
                        "dedicated groups only (no implicit superuser)",
                    )
                )
        out[role] = frozenset(groups)
    return out


def _daemon(raw: DaemonSection, base: Path, problems: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sock = raw.socket
    if not sock.startswith("/"):
        problems.append(("daemon.socket", f"expected an absolute path, got {sock!r}"))
    elif len(os.fsencode(sock)) > SOCKET_PATH_MAX:
        problems.append(("daemon.socket", f"longer than {SOCKET_PATH_MAX} bytes: {sock!r}"))
    out["socket"] = Path(sock)
    if raw.socket_group is not None and not GROUP_NAME.fullmatch(raw.socket_group):
        problems.append(
            ("daemon.socket_group", f"expected a Unix group name, got {raw.socket_group!r}")
        )
    try:
        url = normalize_url(raw.database)
    except DatabaseUrlError as exc:
        problems.append(("daemon.database", str(exc)))
    else:
        out["database"] = url.render_as_string(hide_password=False)
    out["audit_spool"] = _audit_spool(raw, out.get("database"), problems)
    if raw.protocols is None:
        out["protocols"] = default_path()
    else:
        path = Path(raw.protocols)
        out["protocols"] = path if path.is_absolute() else (base / path)
    if not math.isfinite(raw.time_scale):
        problems.append(("daemon.time_scale", "must be a finite number"))
    elif raw.time_scale != 1 and not raw.simulation:
        problems.append(
            (
                "daemon.time_scale",
                f"{raw.time_scale:g} is allowed only with simulation = true: a scaled clock "
                "next to a real pump would make every timeout and volume estimate wrong",
            )
        )
    out["timezone"] = _timezone(raw.timezone, problems)
    return out


def _timezone(name: str | None, problems: list[tuple[str, str]]) -> str:
    """The clinic's zone: the one named, checked against the IANA database, or the
    system's own when none is named."""
    if name is None:
        return system_zone_name()
    try:
        zone_of(name)
    except UnknownZone as exc:
        problems.append(("daemon.timezone", str(exc)))
    return name


def _audit_spool(
    raw: DaemonSection, database: str | None, problems: list[tuple[str, str]]
) -> Path | None:
    """The spool file's path, or None when switched off. Only what the text can tell is
    checked here; that its directory exists and is writable is checked at start-up (the
    file may be checked on another machine than the one that runs the daemon)."""
    text = raw.audit_spool
    if text == SPOOL_OFF:
        return None
    key = "daemon.audit_spool"
    path = Path(text)
    if not text.startswith("/"):
        problems.append((key, f'expected an absolute path or "{SPOOL_OFF}", got {text!r}'))
        return None
    if text.endswith("/") or path.name in ("", ".", ".."):
        problems.append((key, f"expected the path of a file, not of a directory, got {text!r}"))
        return None
    if database is not None and database.startswith("sqlite"):
        db_file = make_url(database).database or ""
        if db_file and os.path.normpath(db_file) == os.path.normpath(text):
            problems.append((key, "is the SQLite database file itself; give the spool its own"))
    if os.path.normpath(text) == os.path.normpath(raw.socket):
        problems.append((key, "is the control socket's path; give the spool its own file"))
    return path


def _forward(
    raw: ForwardSection | None, daemon: dict[str, Any], problems: list[tuple[str, str]]
) -> ForwardSettings | None:
    if raw is None:
        return None
    start = len(problems)
    url = ""
    try:
        parsed = normalize_url(raw.url)
    except DatabaseUrlError as exc:
        problems.append(("forward.url", str(exc)))
    else:
        if parsed.get_backend_name() != "postgresql":
            problems.append(
                ("forward.url", "the central store is PostgreSQL: expected postgresql://...")
            )
        url = parsed.render_as_string(hide_password=False)
        if url == daemon.get("database"):
            problems.append(
                ("forward.url", "is this site's own audit database; name the central store")
            )
    if not SITE_ID.fullmatch(raw.site):
        problems.append(
            (
                "forward.site",
                f"expected 1-64 of a-z 0-9 . _ - (starting a-z or 0-9), got {raw.site!r}",
            )
        )
    mark = raw.mark_file
    if not mark.startswith("/") or mark.endswith("/"):
        problems.append(("forward.mark_file", f"expected an absolute file path, got {mark!r}"))
    elif os.path.normpath(mark) in {
        os.path.normpath(str(daemon.get("audit_spool") or "")),
        os.path.normpath(str(daemon.get("socket") or "")),
    }:
        problems.append(("forward.mark_file", "is the spool's or the socket's path"))
    if len(problems) > start:
        return None
    return ForwardSettings(
        url=url,
        site=raw.site,
        batch_size=raw.batch_size,
        alert_after_s=raw.alert_after_s,
        mark_file=Path(mark),
        interval_s=raw.interval_s,
        retry_max_s=raw.retry_max_s,
        connect_timeout_s=raw.connect_timeout_s,
        duty_cycle=raw.duty_cycle,
    )


def _nul_problems(node: Any, loc: tuple[int | str, ...] = ()) -> list[tuple[str, str]]:
    """Every string holding a NUL (TOML allows ``\\u0000``): no path, URL or name may have
    one, and the OS calls behind them would fail with ValueError long after ``--check``."""
    if isinstance(node, str):
        return [(_key(loc), "contains a NUL character")] if "\x00" in node else []
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _nul_problems(v, (*loc, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _nul_problems(v, (*loc, i))]
    return []


def parse_config(text: str, *, path: Path) -> DaemonConfig:
    """Check a configuration document; ``path`` is where it came from (relative protocol
    paths are taken from its directory)."""
    data = text.encode("utf-8")
    try:
        raw_doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", str(exc))], path) from None
    nul = _nul_problems(raw_doc)
    typed = transport_key_problems(raw_doc.get("pump"), _pydantic_problems)
    try:
        raw = _File.model_validate(raw_doc)
    except ValidationError as exc:
        raise ConfigError(nul + _pydantic_problems(exc) + typed, path) from None
    if nul or typed:
        raise ConfigError(nul + typed, path)
    problems: list[tuple[str, str]] = []
    daemon = _daemon(raw.daemon, path.parent, problems)
    roles = _roles(raw.roles, problems)
    forward = _forward(raw.forward, daemon, problems)
    if not raw.pump:
        problems.append(("pump", "at least one [[pump]] is needed"))
    pumps: list[PumpConfig] = []
    seen: dict[str, int] = {}
    for index, section in enumerate(raw.pump):
        pump = _pump(index, section, problems)
        if section.id in seen:
            problems.append(
                (f"pump[{index}].id", f"{section.id!r} is already pump[{seen[section.id]}]")
            )
        seen.setdefault(section.id, index)
        if pump is None:
            continue
        if raw.daemon.simulation:
            _simulation_pump(pump, index, problems)
        # A watchdog that counts wall seconds (New Era's SAF) is never scaled.
        scale = raw.daemon.time_scale if pump.scaled_watchdog else 1.0
        scaled = pump.heartbeat_timeout_s * scale
        if scaled > 0xFFFF:
            problems.append(
                (
                    f"pump[{index}].heartbeat_timeout_s",
                    f"{pump.heartbeat_timeout_s} s at time_scale {raw.daemon.time_scale:g} is "
                    f"{scaled:g} pump seconds, more than the pump's 65535",
                )
            )
        if pump.heartbeat_timeout_s * raw.daemon.poll_hz < 2:
            problems.append(
                (
                    f"pump[{index}].heartbeat_timeout_s",
                    "must cover at least two polls, or the pump's failsafe trips between polls",
                )
            )
        pumps.append(pump)
    _same_endpoint(pumps, problems)
    key_file = _audit_key_file(raw.audit, path.parent, problems)
    if problems:
        raise ConfigError(problems, path)
    staff = raw.staff
    return DaemonConfig(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        socket=daemon["socket"],
        socket_group=raw.daemon.socket_group,
        database=daemon["database"],
        audit_spool=daemon["audit_spool"],
        protocols=daemon["protocols"],
        poll_hz=raw.daemon.poll_hz,
        simulation=raw.daemon.simulation,
        time_scale=raw.daemon.time_scale,
        upgrade_schema=raw.daemon.upgrade_schema,
        loop_stale_s=raw.daemon.loop_stale_s,
        log_format=raw.daemon.log_format,
        log_level=raw.daemon.log_level,
        timezone=daemon["timezone"],
        roles=roles,
        staff_idle_timeout_s=staff.idle_timeout_min * 60,
        staff_max_failures=staff.max_failures,
        staff_lockout_s=staff.lockout_min * 60,
        pumps=tuple(pumps),
        forward=forward,
        audit_key_file=key_file,
        checkpoint_every_events=raw.audit.checkpoint_every_events,
        checkpoint_every_s=raw.audit.checkpoint_every_s,
    )


def _audit_key_file(raw: AuditSection, base: Path, problems: list[tuple[str, str]]) -> Path | None:
    """The key file's path (relative to the configuration's directory). That it exists and
    is readable only by its owner is checked at start-up, where the daemon refuses to start
    without it (the file may be checked on another machine)."""
    if raw.key_file is None:
        return None
    if not raw.key_file or raw.key_file.endswith("/"):
        problems.append(("audit.key_file", f"expected the path of a file, got {raw.key_file!r}"))
        return None
    path = Path(raw.key_file)
    return path if path.is_absolute() else base / path


def load_config(path: Path | str) -> DaemonConfig:
    """Read and check ``path``; :class:`ConfigError` names every problem by key."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {file}: {exc.strerror}")], file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("(encoding)", f"not UTF-8: {exc.reason}")], file) from None
    return parse_config(text, path=file.absolute())


def group_exists(name: str) -> bool:
    """Whether the system knows group ``name`` (checked at start-up, not at load)."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True

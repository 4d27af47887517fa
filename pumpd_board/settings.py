"""The board's settings: ``[board]`` of the daemon's own ``pumpd.toml``, plus what it needs of
``[daemon]`` (the control socket's path, the clinic's time zone).

The file is first checked as the daemon checks it (``pumpd.config.load_config``), so the
board never reads a socket path from a file the daemon would refuse. ``[board]`` is strict
like the rest: an unknown key is refused, every problem names its key.

A board that listens beyond loopback needs an access token: a wall screen on the LAN is
reached through a TLS reverse proxy with its own authentication (docs/board.md), and the
token keeps the bare port closed to anyone who finds it.
"""

from __future__ import annotations

import hmac
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpd.clinictime import UnknownZone, system_zone_name, zone_of
from pumpd.config import ConfigError, is_loopback, load_config, parse_host_port

DEFAULT_LISTEN = "127.0.0.1:8470"
TOKEN_MIN_CHARS = 16


class BoardSection(BaseModel):
    """``[board]``: every key with its default (docs/board.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    listen: str = DEFAULT_LISTEN
    mask_patient_ref: bool = True
    access_token_file: str | None = None
    alarm_tone: bool = True
    poll_interval_s: Annotated[float, Field(ge=0.2, le=5)] = 0.5
    stale_after_s: Annotated[float, Field(ge=1, le=60)] = 3.0
    max_clients: Annotated[int, Field(ge=1, le=256)] = 16
    title: Annotated[str, Field(min_length=1, max_length=80)] = "Infusion chairs"
    allowed_hosts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]{1,253}$")]] = []
    """Host names the page may be asked for besides loopback and ``listen``'s host (the
    name a reverse proxy passes on)."""


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """What ``pumpd-board`` runs with, checked."""

    config_path: Path
    socket: Path
    timezone: str
    host: str
    port: int
    mask_patient_ref: bool
    access_token: str | None
    alarm_tone: bool
    poll_interval_s: float
    stale_after_s: float
    max_clients: int
    title: str
    allowed_hosts: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def token_matches(self, offered: str | None) -> bool:
        """Constant-time comparison; True when no token is configured."""
        if self.access_token is None:
            return True
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode("utf-8"), self.access_token.encode("utf-8"))


def _known_zone(name: str) -> bool:
    try:
        zone_of(name)
    except UnknownZone:
        return False
    return True


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append((f"board.{loc}", str(err["msg"])))
    return out


def load_settings(path: Path | str) -> BoardSettings:
    """Read and check the file; :class:`pumpd.config.ConfigError` names every problem."""
    file = Path(path)
    daemon = load_config(file)
    raw = tomllib.loads(file.read_text(encoding="utf-8"))
    return settings_from(raw, file.absolute(), daemon.socket)


def settings_from(raw: dict[str, Any], path: Path, socket: Path) -> BoardSettings:
    """``raw`` is the parsed TOML document; ``socket`` the daemon's checked socket path."""
    problems: list[tuple[str, str]] = []
    board_raw = raw.get("board", {})
    try:
        board = BoardSection.model_validate(board_raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc), path) from None
    zone = raw.get("daemon", {}).get("timezone")
    if zone is None:
        zone = system_zone_name()
    elif not isinstance(zone, str) or not _known_zone(zone):
        problems.append(("daemon.timezone", f"not a known IANA time zone: {zone!r}"))
    host, port = "", 0
    try:
        host, port = _listen(board.listen)
    except ValueError as exc:
        problems.append(("board.listen", str(exc)))
    token = None
    if board.access_token_file is not None:
        token = _read_token(board.access_token_file, path.parent, problems)
    if host and not is_loopback(host) and board.access_token_file is None:
        problems.append(
            (
                "board.listen",
                f"{host!r} is not loopback: a board reachable from the network needs "
                "access_token_file, and a TLS reverse proxy in front of it (docs/board.md)",
            )
        )
    if problems:
        raise ConfigError(problems, path)
    return BoardSettings(
        config_path=path,
        socket=socket,
        timezone=str(zone),
        host=host,
        port=port,
        mask_patient_ref=board.mask_patient_ref,
        access_token=token,
        alarm_tone=board.alarm_tone,
        poll_interval_s=board.poll_interval_s,
        stale_after_s=board.stale_after_s,
        max_clients=board.max_clients,
        title=board.title,
        allowed_hosts=tuple(board.allowed_hosts),
    )


def _listen(text: str) -> tuple[str, int]:
    """``host:port``; port 0 lets the system choose (tests, the demo)."""
    if text.endswith(":0"):
        host, _ = parse_host_port(text[:-2] + ":1")
        return host, 0
    return parse_host_port(text)


def _read_token(name: str, base: Path, problems: list[tuple[str, str]]) -> str | None:
    path = Path(name) if Path(name).is_absolute() else base / name
    key = "board.access_token_file"
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append((key, f"cannot read {path}: {exc.strerror}"))
        return None
    except UnicodeDecodeError:
        problems.append((key, f"{path} is not UTF-8 text"))
        return None
    if mode & 0o007:
        problems.append((key, f"{path} is readable by every user; chmod o-rwx it"))
    if len(token) < TOKEN_MIN_CHARS or not token.isprintable() or " " in token:
        problems.append(
            (key, f"the token must be at least {TOKEN_MIN_CHARS} visible characters, no spaces")
        )
    return token

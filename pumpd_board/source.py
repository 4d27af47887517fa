"""The board's only line to pumpd: a read-only poll of ``status`` over the control socket.

The control socket has no subscription, so the board asks for ``status`` every
``poll_interval_s`` on one kept-open connection and publishes each answer as a
:class:`Snapshot` to every open page. The client it uses can send nothing but the read
methods in :data:`READ_METHODS`: the board cannot command a pump even if its account held
the nurse role. When pumpd does not answer, the snapshot says so (``link_ok`` False) and
keeps the last good tiles, which the page then shows under a DISCONNECTED overlay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from pydantic import ValidationError

from pumpd.cli.client import Client, ClientError, RpcError

from .settings import BoardSettings
from .tiles import PumpView, Tile, build_tile

log = structlog.get_logger("pumpd_board")

READ_METHODS: Final = frozenset({"whoami", "status", "session.checklist"})
CALL_TIMEOUT_S: Final = 3.0


class BadStatus(Exception):
    """pumpd's answer is not a list of pump views."""


class NotARead(PermissionError):
    """The board was asked to send a method that is not a read; it never does."""


class ReadOnlyClient:
    """The control-socket client, restricted to the read methods; blocking (run in a thread)."""

    def __init__(self, path: str, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._client = Client(path, timeout_s=timeout_s)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if method not in READ_METHODS:
            raise NotARead(f"the board sends only {', '.join(sorted(READ_METHODS))}: {method!r}")
        try:
            return self._client.call(method, params)
        except RpcError:
            raise  # an answer: the connection is fine
        except ClientError:
            self._client.close()  # a fresh connection on the next call
            raise

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    tiles: tuple[Tile, ...]
    link_ok: bool
    problem: str | None
    last_ok_utc: dt.datetime | None
    last_ok_mono: float | None

    def age_s(self, now_mono: float) -> float | None:
        return None if self.last_ok_mono is None else max(0.0, now_mono - self.last_ok_mono)


@dataclass
class Hub:
    """Polls pumpd and hands the newest snapshot to whoever waits for one."""

    settings: BoardSettings
    client_factory: Callable[[], ReadOnlyClient] | None = None
    latest: Snapshot = field(init=False)
    roles: tuple[str, ...] = field(default=(), init=False)
    _changed: asyncio.Event = field(init=False)
    _client: ReadOnlyClient | None = field(default=None, init=False)
    _discharge: dict[str, str | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.latest = Snapshot(0, (), False, "not asked yet", None, None)
        self._changed = asyncio.Event()
        self.zone = zoneinfo.ZoneInfo(self.settings.timezone)

    def _new_client(self) -> ReadOnlyClient:
        if self.client_factory is not None:
            return self.client_factory()
        return ReadOnlyClient(str(self.settings.socket))

    async def run(self) -> None:
        """Poll until cancelled; every outcome, good or bad, is published."""
        try:
            while True:
                started = time.monotonic()
                try:
                    await self.poll_once()
                except Exception:  # a bug must not silence the board: it shows as a problem
                    log.exception("board poll failed")
                    self._publish_problem("the board could not read pumpd's answer (logged)")
                elapsed = time.monotonic() - started
                await asyncio.sleep(max(0.05, self.settings.poll_interval_s - elapsed))
        finally:
            if self._client is not None:
                self._client.close()

    async def poll_once(self) -> None:
        try:
            views, discharge = await asyncio.to_thread(self._fetch)
        except (ClientError, ValidationError, BadStatus, OSError) as exc:
            self._publish_problem(_problem_text(exc))
            return
        now = dt.datetime.now(dt.UTC)
        tiles = tuple(
            build_tile(
                v,
                now=now,
                zone=self.zone,
                mask=self.settings.mask_patient_ref,
                discharge_at=discharge.get(v.session_id or ""),
            )
            for v in views
        )
        self._publish(Snapshot(self.latest.seq + 1, tiles, True, None, now, time.monotonic()))

    def _fetch(self) -> tuple[list[PumpView], dict[str, str | None]]:
        """One poll, in a worker thread: ``status``, and for a session in observation whose
        status lacks it, its earliest discharge (asked once per session)."""
        if self._client is None:
            client = self._new_client()
            who = client.call("whoami")
            self._client = client
            self._note_roles(who)
        try:
            raw = self._client.call("status")
        except ClientError:
            self._client = None
            raise
        if not isinstance(raw, list):
            raise BadStatus("pumpd's status is not a list")
        views = [PumpView.model_validate(item) for item in raw]
        current = {v.session_id for v in views if v.session_id}
        self._discharge = {k: v for k, v in self._discharge.items() if k in current}
        for v in views:
            sid = v.session_id
            if (
                sid
                and v.session_state == "OBSERVATION"
                and v.earliest_discharge_at is None
                and sid not in self._discharge
            ):
                try:
                    got = self._client.call("session.checklist", {"pump": v.pump_id})
                except RpcError:  # the session moved on meanwhile: ask again next poll
                    continue
                at = got.get("earliest_discharge_at") if isinstance(got, dict) else None
                self._discharge[sid] = at if isinstance(at, str) else None
        return views, dict(self._discharge)

    def _note_roles(self, who: Any) -> None:
        roles = tuple(sorted(who.get("roles", []))) if isinstance(who, dict) else ()
        if roles != self.roles:
            self.roles = roles
            extra = sorted(set(roles) - {"auditor"})
            if extra:
                log.warning(
                    "board account holds more than the auditor role; it reads only",
                    roles=list(roles),
                )
            else:
                log.info("board connected to pumpd", roles=list(roles))

    def _publish_problem(self, problem: str) -> None:
        prev = self.latest
        if prev.link_ok or prev.problem != problem:
            log.warning("pumpd not answering the board", problem=problem)
        self._publish(
            Snapshot(prev.seq + 1, prev.tiles, False, problem, prev.last_ok_utc, prev.last_ok_mono)
        )

    def _publish(self, snap: Snapshot) -> None:
        self.latest = snap
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next_after(self, seq: int) -> Snapshot:
        """The first snapshot newer than ``seq`` (at once if there is one)."""
        while True:
            changed = self._changed
            if self.latest.seq > seq:
                return self.latest
            await changed.wait()


def _problem_text(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "pumpd's status could not be read (unexpected shape)"
    text = str(exc) or type(exc).__name__
    return text[:200]

"""The checkpoint: the session's whole state, written, read back and recovered here.

A ``session.checkpointed`` carries the session's snapshot and, typed here as
:class:`CheckpointAccounting`, the controller's figures: the independent account (with
the UTC moment it was taken) and the pump's counter, uptime and command number at that
moment. The controller writes one when the session's content changed and periodically
while drug flows (:class:`Checkpointer`); after a restart the newest one is read back
(``pumpd/recovery.py``) and its figures judged here: did the pump restart or lose its
counter meanwhile, and may the expected volume be carried across the downtime.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pumpd.audit.catalogue import SessionCheckpointed
from pumpd.clock import Clock
from pumpd.drivers import PumpStatus
from pumpd.session import Session, State
from safety.pump import restart_evidence_of

from .accounting import UL_PER_S_PER_ML_H, VolumeAccount
from .config import ControllerConfig


class CheckpointUnreadable(ValueError):
    """A stored ``session.checkpointed`` payload that is no checkpoint pumpd ever wrote: the
    message names the key, so a report or a recovery says what is wrong, not ``KeyError``."""


_NO_DEFAULT: Any = object()


def _whole(data: Mapping[str, Any], key: str, default: int = _NO_DEFAULT) -> int:
    if key not in data:
        if default is _NO_DEFAULT:
            raise CheckpointUnreadable(f"accounting.{key} is missing")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CheckpointUnreadable(f"accounting.{key} is {value!r}, not a whole number")
    try:
        return int(value)
    except ValueError:
        raise CheckpointUnreadable(f"accounting.{key} is {value!r}, not a whole number") from None


def _optional_whole(data: Mapping[str, Any], key: str) -> int | None:
    """A figure only some pumps keep (an uptime, a switch-on count): None when absent."""
    return None if data.get(key) is None else _whole(data, key)


def _decimal(data: Mapping[str, Any], key: str) -> Decimal:
    if key not in data:
        raise CheckpointUnreadable(f"accounting.{key} is missing")
    value = data[key]
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite():
        raise CheckpointUnreadable(f"accounting.{key} is {value!r}, not a number")
    return number


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """The independent account at a checkpoint (no floats: the audit refuses them)."""

    volume_at_start_ul: int
    delivered_before_ul: int
    rate_ml_h: Decimal
    expected_ul: int
    delivery_elapsed_ms: int
    at_utc: str | None = None

    @classmethod
    def of(cls, account: VolumeAccount, now_s: float, now_utc: str | None) -> AccountRecord:
        return cls(
            volume_at_start_ul=account.volume_at_start_ul,
            delivered_before_ul=account.delivered_before_ul,
            rate_ml_h=account.rate_ml_h,
            expected_ul=account.expected_ul(now_s),
            delivery_elapsed_ms=int(account.delivery_elapsed_s(now_s) * 1000),
            at_utc=now_utc,
        )

    @property
    def start_counter_ul(self) -> int:
        """delivered = counter − this (a restart seen before is in delivered_before)."""
        return self.volume_at_start_ul - self.delivered_before_ul

    def carried(self, bridge_s: float, now_s: float) -> VolumeAccount:
        """Supervision taken over after a restart, the independent figure carried across.

        The checkpoint's expected volume plus its commanded rate for ``bridge_s``, the time
        since the checkpoint as UTC measures it (the only clock a restart leaves; the
        caller bounds it). The kernel then judges the pump's counter against it as on any
        tick, so a pump that ran away while pumpd was down is an over-infusion.
        """
        bridge = max(0.0, bridge_s)
        expected = Decimal(self.expected_ul) + self.rate_ml_h * UL_PER_S_PER_ML_H * Decimal(bridge)
        elapsed = self.delivery_elapsed_ms / 1000 + (bridge if self.rate_ml_h > 0 else 0.0)
        return VolumeAccount(
            volume_at_start_ul=self.volume_at_start_ul,
            rate_ml_h=self.rate_ml_h,
            rate_since_s=now_s,
            closed_ul=expected,
            closed_delivery_s=elapsed,
            delivered_before_ul=self.delivered_before_ul,
        )

    def resumed(self, delivered_ul: int, now_s: float) -> VolumeAccount:
        """Supervision taken over after a restart.

        The downtime was not accounted independently, so the expected volume is re-anchored
        on the pump's counter (``delivered_ul``); from here on the accounting is independent
        again. The checkpoint's own figure is kept in the audit record of the recovery.
        """
        return VolumeAccount(
            volume_at_start_ul=self.volume_at_start_ul,
            rate_ml_h=self.rate_ml_h,
            rate_since_s=now_s,
            closed_ul=Decimal(delivered_ul),
            closed_delivery_s=self.delivery_elapsed_ms / 1000,
            delivered_before_ul=self.delivered_before_ul,
        )


@dataclass(frozen=True, slots=True)
class PumpRecord:
    """The pump's own figures at a checkpoint (counter and command number 0, the restart
    evidence None, when it had not been read).

    The evidence kept is what the pump itself keeps across a daemon restart: its uptime
    or its switch-on count. A driver's count of reported resets is not kept: it belongs to
    that driver's life, and the next one counts from 0 at its connect.
    """

    counter_ul: int = 0
    uptime_s: int | None = None
    last_cmd_seq: int = 0
    switch_on_count: int | None = None

    @classmethod
    def of(cls, status: PumpStatus) -> PumpRecord:
        return cls(
            status.volume_infused_ul,
            status.uptime_s,
            status.last_cmd_seq,
            status.switch_on_count,
        )


@dataclass(frozen=True, slots=True)
class CheckpointAccounting:
    """The ``accounting`` of a ``session.checkpointed``: the account (None before the
    start) and the pump's figures (None when it had not been read).

    ``expected_ul`` and ``delivery_elapsed_ms`` are the account's, for the report and the
    timeline; they are also read from an accounting that has them without the rest of an
    account (no ``volume_at_start_ul``): recovery cannot carry such an account, and takes
    the checkpoint as written before the start, as it always did, but its figures are
    still shown.
    """

    account: AccountRecord | None
    pump: PumpRecord | None
    expected_ul: int | None = None
    delivery_elapsed_ms: int | None = None

    def __post_init__(self) -> None:
        if self.account is not None:
            object.__setattr__(self, "expected_ul", self.account.expected_ul)
            object.__setattr__(self, "delivery_elapsed_ms", self.account.delivery_elapsed_ms)

    def as_dict(self) -> dict[str, Any] | None:
        """The payload's ``accounting``: the account's keys, then the pump's."""
        out: dict[str, Any] = {}
        if (a := self.account) is not None:
            if a.at_utc is not None:
                out["at_utc"] = a.at_utc
            out |= {
                "volume_at_start_ul": a.volume_at_start_ul,
                "delivered_before_ul": a.delivered_before_ul,
                "rate_ml_h": format(a.rate_ml_h, "f"),
                "expected_ul": a.expected_ul,
                "delivery_elapsed_ms": a.delivery_elapsed_ms,
            }
        if (p := self.pump) is not None:
            out["pump_counter_ul"] = p.counter_ul
            if p.uptime_s is not None:
                out["pump_uptime_s"] = p.uptime_s
            out["pump_last_cmd_seq"] = p.last_cmd_seq
            if p.switch_on_count is not None:
                out["pump_switch_on_count"] = p.switch_on_count
        return out if self.account is not None or self.pump is not None else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CheckpointAccounting:
        """The ``accounting`` of a stored checkpoint, of any shape pumpd has written.

        The first checkpoints had neither ``delivered_before_ul`` (no pump restart was
        counted), ``at_utc`` (no downtime bridged) nor ``pump_last_cmd_seq`` (0: no command
        number known); those read as the defaults. No account keys: written before the start;
        no pump keys: the pump had not been read. Anything else that is not a figure is
        :class:`CheckpointUnreadable`, naming the key.
        """
        if data is None:
            return cls(None, None)
        if not isinstance(data, Mapping):
            raise CheckpointUnreadable(f"accounting is {type(data).__name__}, not an object")
        account = None
        if "volume_at_start_ul" in data:
            raw_at = data.get("at_utc")
            account = AccountRecord(
                volume_at_start_ul=_whole(data, "volume_at_start_ul"),
                delivered_before_ul=_whole(data, "delivered_before_ul", 0),
                rate_ml_h=_decimal(data, "rate_ml_h"),
                expected_ul=_whole(data, "expected_ul"),
                delivery_elapsed_ms=_whole(data, "delivery_elapsed_ms"),
                at_utc=raw_at if isinstance(raw_at, str) else None,
            )
        figures = [
            None if key not in data else _whole(data, key)
            for key in ("expected_ul", "delivery_elapsed_ms")
        ]
        pump = None
        if "pump_counter_ul" in data:
            pump = PumpRecord(
                _whole(data, "pump_counter_ul"),
                _optional_whole(data, "pump_uptime_s"),
                _whole(data, "pump_last_cmd_seq", 0),
                _optional_whole(data, "pump_switch_on_count"),
            )
        return cls(account, pump, *figures)

    @property
    def last_pump(self) -> PumpRecord:
        return self.pump or PumpRecord()

    def pump_lost(self, status: PumpStatus | None) -> tuple[bool, bool]:
        """(lost, rebooted): did the pump restart, or its counter go below the
        checkpoint's, while pumpd was down? Nothing is known of a pump that does not
        answer.

        Judged on the pump's own evidence only (``restart_evidence_of``): its uptime or
        switch-on count against the checkpoint's, and the power-on resets it reported to
        this driver since its connect (the previous driver's count does not carry over, so
        the comparison is with 0). The daemon's own restart renews none of them."""
        if status is None:
            return False, False
        evidence = self.restart_evidence(status)
        rebooted = evidence is not None
        return rebooted or status.volume_infused_ul < self.last_pump.counter_ul, rebooted

    def restart_evidence(self, status: PumpStatus) -> str | None:
        """How ``status`` shows the pump restarted since the checkpoint, or None."""
        last = self.last_pump
        return restart_evidence_of(
            last.uptime_s,
            last.last_cmd_seq,
            status.uptime_s,
            status.last_cmd_seq,
            switch_on_before=last.switch_on_count,
            switch_on=status.switch_on_count,
            resets_before=0,
            resets=status.resets_seen,
        )

    def downtime_bridge_s(self, now_utc: dt.datetime, limit_s: float) -> float | None:
        """Clock seconds from the checkpoint to now, through UTC; None when UTC cannot be
        trusted to bridge them.

        Only UTC survives a restart, and it can be stepped. A step back (or a checkpoint
        from the future) is refused: carrying a too-short downtime would call the pump's
        real delivery an over-infusion. So is a downtime longer than a pump can deliver
        without pumpd (``limit_s``: the checkpoint interval, plus the pump's own heartbeat
        failsafe, plus the kernel's comm timeout): a pump found still infusing after that
        means the clock stepped forward (or the failsafe failed) and the figure means
        nothing. Then the expected volume is re-anchored on the counter as before, and the
        recovery event says so; a step forward within the bound errs towards
        under-infusion (a pause), never towards missing an over-infusion.
        """
        raw = None if self.account is None else self.account.at_utc
        if raw is None:
            return None
        try:
            then = dt.datetime.fromisoformat(raw)
        except ValueError:
            return None
        if then.tzinfo is None:
            return None
        bridge_s = (now_utc - then).total_seconds()
        if not 0 <= bridge_s <= limit_s:
            return None
        return bridge_s


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A stored ``session.checkpointed`` read back: the session's state and snapshot (the
    session's own business, :meth:`Session.restore`) and the typed accounting."""

    state: str
    snapshot: dict[str, Any]
    accounting: CheckpointAccounting

    @classmethod
    def read(cls, payload: str | Mapping[str, Any]) -> CheckpointRecord:
        """The one reading of a stored payload (its JSON text, or that text parsed) for
        recovery, the report and the timeline; :class:`CheckpointUnreadable` if it is not
        one."""
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                raise CheckpointUnreadable(f"payload is not JSON: {exc}") from None
        if not isinstance(payload, Mapping):
            raise CheckpointUnreadable(f"payload is {type(payload).__name__}, not an object")
        state, snapshot = payload.get("state"), payload.get("snapshot")
        if not isinstance(state, str):
            raise CheckpointUnreadable(f"state is {state!r}, not a session state")
        if not isinstance(snapshot, dict):
            raise CheckpointUnreadable("snapshot is missing or not an object")
        return cls(state, snapshot, CheckpointAccounting.from_dict(payload.get("accounting")))


def bridge_limit_s(config: ControllerConfig) -> float:
    """The longest a pump can deliver since a checkpoint without pumpd."""
    return config.checkpoint_every_s + config.heartbeat_timeout_s + config.policy.comm_timeout_s


class Checkpointer:
    """Decides when a checkpoint is due and makes its payload."""

    def __init__(self, clock: Clock, every_s: float) -> None:
        self._clock = clock
        self._every_s = every_s
        self._mark: tuple[int, State, Decimal | None] | None = None
        self._written: tuple[dict[str, Any], Decimal | None] | None = None
        self._written_at_s = clock.monotonic()

    def due(self, s: Session, account: VolumeAccount | None) -> dict[str, Any] | None:
        """The session's snapshot when a checkpoint is due now, else None.

        "Changed" is judged on the content, not on the object: a command repeated in ALARM
        gives the session new data equal to the old, and the last checkpoint is still the
        latest state. A real change is never deferred (docs/controller.md, "Checkpoints").
        """
        now = self._clock.monotonic()
        rate = None if account is None else account.rate_ml_h
        due = now - self._written_at_s >= self._every_s
        periodic = due and account is not None and account.rate_ml_h > 0
        mark = (id(s.data), s.state, rate)
        if mark == self._mark and not periodic:
            return None
        self._mark = mark
        snapshot = s.snapshot()
        if (snapshot, rate) == self._written and not periodic:
            return None
        self._written, self._written_at_s = (snapshot, rate), now
        return snapshot

    def payload(
        self,
        s: Session,
        snapshot: dict[str, Any],
        account: VolumeAccount | None,
        status: PumpStatus | None,
    ) -> SessionCheckpointed:
        now = self._written_at_s  # the moment ``due`` judged
        accounting = CheckpointAccounting(
            None
            if account is None
            else AccountRecord.of(account, now, self._clock.now_utc().isoformat()),
            None if status is None else PumpRecord.of(status),
        )
        return SessionCheckpointed(
            state=s.state.value, snapshot=snapshot, accounting=accounting.as_dict()
        )

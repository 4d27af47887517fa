"""The controller's lines in the daemon's log (journald): what the person on call reads.

The audit log is the record; these lines are for ``journalctl -u pumpd``: an alarm raised
or acknowledged (with its priority and the nurse's sentence), a session changing state, a
pump command sent, confirmed, uncertain or failed, an interlock. Never one per poll: only
facts that happen, once. Each line names its pump and session itself, because a nurse's
command runs in the control socket's task, where the daemon has not bound ``pump``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from pumpd.audit.store import NewEvent
from pumpd.session import Step

_log = structlog.get_logger("pumpd.controller")

# IEC 60601-1-8 priority → log level: a high alarm is what `journalctl -p err` must show.
_ALARM_LEVEL = {"high": logging.ERROR, "medium": logging.WARNING, "low": logging.INFO}
_COMMAND_RESULT = {
    "pump.command.confirmed": (logging.INFO, "pump command confirmed"),
    "pump.command.uncertain": (logging.WARNING, "pump command uncertain"),
    "pump.command.failed": (logging.ERROR, "pump command failed"),
}
_KEPT = ("command", "reason_codes", "observed_state", "latency_ms", "detail", "error_code")


def _where(event: NewEvent) -> dict[str, Any]:
    where: dict[str, Any] = {"pump": event.pump_id}
    if event.session_id is not None:
        where["session"] = event.session_id
    if event.correlation_id is not None:
        where["correlation_id"] = event.correlation_id
    return where


def events(written: Sequence[NewEvent]) -> None:
    """One line for each event worth a person's attention, as it is queued."""
    for event in written:
        raw = event.payload
        p: Mapping[str, Any] = raw if isinstance(raw, Mapping) else raw.model_dump()
        kind = event.event_type
        if kind == "alarm.raised":
            _log.log(
                _ALARM_LEVEL.get(str(p.get("priority")), logging.WARNING),
                "alarm raised",
                alarm_code=p.get("alarm_code"),
                priority=p.get("priority"),
                source=p.get("source"),
                message=p.get("message"),
                **_where(event),
            )
        elif kind == "alarm.acknowledged":
            _log.info(
                "alarm acknowledged",
                alarm_code=p.get("alarm_code"),
                by=event.actor.name,
                note=p.get("note"),
                **_where(event),
            )
        elif kind == "interlock.triggered":
            _log.warning(
                "interlock triggered",
                action=p.get("action"),
                reason_codes=p.get("reason_codes"),
                detail=p.get("detail"),
                **_where(event),
            )
        elif kind == "pump.command.requested":
            _log.info(
                "pump command requested",
                by=event.actor.name,
                **{k: p[k] for k in _KEPT if k in p},
                **_where(event),
            )
        elif kind in _COMMAND_RESULT:
            level, text = _COMMAND_RESULT[kind]
            _log.log(level, text, **{k: p[k] for k in _KEPT if k in p}, **_where(event))


def command_sent(pump_id: str, session_id: str | None, command: str, correlation: str) -> None:
    """The moment the command goes on the wire (its intent is already queued or durable)."""
    _log.info(
        "pump command sent",
        command=command,
        pump=pump_id,
        session=session_id,
        correlation_id=correlation,
    )


def step(pump_id: str, session_id: str, done: Step, by: str) -> None:
    """A session state change; a step that stays in its state writes nothing here."""
    if done.source is done.dest:
        return
    _log.info(
        "session state changed",
        from_state=done.source.value,
        to_state=done.dest.value,
        trigger=done.trigger,
        by=by,
        pump=pump_id,
        session=session_id,
    )

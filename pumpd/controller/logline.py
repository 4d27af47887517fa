"""The controller's lines in the daemon's log (journald): what the person on call reads.

The audit log is the record; these lines are for ``journalctl -u pumpd``: an alarm raised
or acknowledged (with its priority and the nurse's sentence), a session changing state, a
pump command sent, confirmed, uncertain or failed, an interlock, a pump that stopped
answering. Never one per poll: only
facts that happen, once. Each line names its pump and session itself, because a nurse's
command runs in the control socket's task, where the daemon has not bound ``pump``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog

from pumpd.audit import Actor, NewEvent
from pumpd.session import Step

_log = structlog.get_logger("pumpd.controller")

_HELD: contextvars.ContextVar[list[tuple[int, str, dict[str, Any]]] | None] = (
    contextvars.ContextVar("logline_held", default=None)
)


@contextlib.contextmanager
def held_while_halting() -> Iterator[None]:
    """Lines written inside this block (in this task) are written when it ends, in order.

    A halt's lines (the alarm, the interlock, the session's step, the command sent) are
    each a structured log record rendered on the pump loop's thread: a millisecond or so
    between the kernel's decision and the STOP or PAUSE on the wire. The audit events are
    queued there as before (the record, and the write-ahead intent); the person on call's
    lines follow once the command has gone out and been confirmed, in the same order."""
    held: list[tuple[int, str, dict[str, Any]]] = []
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
        for level, text, fields in held:
            _write(level, text, fields)


def _write(level: int, text: str, fields: dict[str, Any]) -> None:
    held = _HELD.get()
    if held is not None:
        held.append((level, text, fields))
    else:
        _log.log(level, text, **fields)


# IEC 60601-1-8 priority → log level: a high alarm is what `journalctl -p err` must show.
_ALARM_LEVEL = {"high": logging.ERROR, "medium": logging.WARNING, "low": logging.INFO}
_COMMAND = ("command", "reason_codes", "observed_state", "latency_ms", "detail", "error_code")
# event type → (line, level, the payload fields it carries); alarm.raised's level is its
# priority's.
_LINES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "alarm.raised": (
        "alarm raised",
        logging.WARNING,
        ("alarm_code", "priority", "source", "message"),
    ),
    "alarm.acknowledged": ("alarm acknowledged", logging.INFO, ("alarm_code", "note")),
    "interlock.triggered": (
        "interlock triggered",
        logging.WARNING,
        ("action", "reason_codes", "detail"),
    ),
    "pump.command.requested": ("pump command requested", logging.INFO, _COMMAND),
    "pump.command.confirmed": ("pump command confirmed", logging.INFO, _COMMAND),
    "pump.command.uncertain": ("pump command uncertain", logging.WARNING, _COMMAND),
    "pump.command.failed": ("pump command failed", logging.ERROR, _COMMAND),
    # Once when reads start failing (not at every failed poll): on call, the log then says
    # why a pump fell silent before the kernel's comm-loss alarm does.
    "pump.unreachable": ("pump unreachable", logging.WARNING, ("error_code", "detail")),
}


def events(written: Sequence[NewEvent]) -> None:
    """One line for each event worth a person's attention, as it is queued."""
    for event in written:
        line = _LINES.get(event.event_type)
        if line is None:
            continue
        text, level, keys = line
        raw = event.payload
        p: Mapping[str, Any] = raw if isinstance(raw, Mapping) else raw.model_dump()
        if event.event_type == "alarm.raised":
            level = _ALARM_LEVEL.get(str(p.get("priority")), level)
        fields: dict[str, Any] = {k: p[k] for k in keys if k in p}
        if event.actor.kind == "person" or event.event_type == "pump.command.requested":
            fields["by"] = event.actor.name
        fields["pump"] = event.pump_id
        if event.session_id is not None:
            fields["session"] = event.session_id
        if event.correlation_id is not None:
            fields["correlation_id"] = event.correlation_id
        _write(level, text, fields)


def command_sent(pump_id: str, session_id: str | None, command: str, correlation: str) -> None:
    """The moment the command goes on the wire (its intent is already queued or durable)."""
    _write(
        logging.INFO,
        "pump command sent",
        {"command": command, "pump": pump_id, "session": session_id, "correlation_id": correlation},
    )


def step(pump_id: str, session_id: str, done: Step, by: Actor) -> None:
    """A session state change; a step that stays in its state writes nothing here."""
    if done.source is done.dest:
        return
    _write(
        logging.INFO,
        "session state changed",
        {
            "from_state": done.source.value,
            "to_state": done.dest.value,
            "trigger": done.trigger,
            "by": by.name,
            "pump": pump_id,
            "session": session_id,
        },
    )

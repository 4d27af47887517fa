"""The daemon's log lines: structlog for ours, the same renderer for pymodbus and SQLAlchemy.

On a terminal the lines are for a person (console renderer); anywhere else (journald, a
pipe, a test) each line is one JSON object. Under journald (``$JOURNAL_STREAM`` set) each
line starts with the syslog priority ``<N>`` so ``journalctl -p err`` works
(``SyslogLevelPrefix=`` is on by default). Every line carries ``pump`` (bound in each
pump's task, so pymodbus's own lines get it too) and ``session`` (looked up from the pump's
controller when the line is written), and ``simulated: true`` in simulation mode.
pymodbus repeats the same error, with raw frames, at every failed poll: its lines are cut to
their first line and a repeat within ``window_s`` is counted instead of printed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
QUIET_LOGGERS = ("pymodbus", "sqlalchemy", "alembic", "asyncio", "transitions")


def syslog_priority(levelno: int) -> int:
    for threshold in sorted(SYSLOG_PRIORITY, reverse=True):
        if levelno >= threshold:
            return SYSLOG_PRIORITY[threshold]
    return 7


class RepeatLimiter(logging.Filter):
    """Lets the first of a repeated line through, then counts repeats for ``window_s``.

    Applies only to loggers under ``prefix`` (pymodbus); their messages are cut to the
    first line (pymodbus appends the last raw frames to every error).

    Some of those first lines carry values (transaction ids, the bytes flushed from a
    serial line), so over a clinic day the distinct lines are unbounded. A line is
    therefore forgotten once its window has ended, or one window later if repeats of it
    were counted (so a line that recurs soon still says how often it was held back):
    lines are swept at most once per window, so what is remembered is at most the
    distinct lines of the last three windows.
    """

    def __init__(
        self,
        prefix: str = "pymodbus",
        window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefix = prefix
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._swept_at = clock()

    @property
    def remembered(self) -> int:
        """How many distinct lines the limiter holds (each with its window and count)."""
        return len(self._seen)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == self._prefix or record.name.startswith(self._prefix + ".")):
            return True
        first_line = record.getMessage().strip().splitlines()[0] if record.getMessage() else ""
        key = (record.name, record.levelno, first_line[:200])
        now = self._clock()
        since, repeats = self._seen.get(key, (-float("inf"), 0))
        if now - since < self._window_s:
            self._seen[key] = (since, repeats + 1)
            return False
        self._seen[key] = (now, 0)
        self._forget_old(now)
        suffix = f" (repeated {repeats} times in {self._window_s:g} s)" if repeats else ""
        record.msg, record.args = first_line + suffix, ()
        record.exc_info = None
        return True

    def _forget_old(self, now: float) -> None:
        """Drop the lines whose window has ended (with repeats: one window later); at most
        one pass per window, so the cost per line stays constant."""
        if now - self._swept_at < self._window_s:
            return
        self._swept_at = now
        window = self._window_s
        self._seen = {
            key: (since, repeats)
            for key, (since, repeats) in self._seen.items()
            if now - since < (2 * window if repeats else window)
        }


class JournalFormatter(structlog.stdlib.ProcessorFormatter):
    """Prefixes each rendered line with ``<N>`` when ``prefix`` is set."""

    def __init__(self, *args: Any, prefix: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self._prefix:
            return text
        return f"<{syslog_priority(record.levelno)}>{text}"


SessionLookup = Callable[[str], str | None]
_session_of: SessionLookup | None = None


def set_session_lookup(lookup: SessionLookup | None) -> None:
    """How to find a pump's current session id (the daemon gives its controllers')."""
    global _session_of
    _session_of = lookup


def _add_session(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    pump = event.get("pump")
    if isinstance(pump, str) and "session" not in event and _session_of is not None:
        session = _session_of(pump)
        if session is not None:
            event["session"] = session
    return event


_FIRST = ("timestamp", "level", "event", "logger", "pump", "session")


def _order(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Time, level, message, logger, pump, session first: what a reader scans for."""
    ordered = {key: event[key] for key in _FIRST if key in event}
    ordered.update((key, value) for key, value in event.items() if key not in ordered)
    return ordered


def _flag_simulated(simulated: bool) -> Processor:
    def add(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        if simulated:
            event["simulated"] = True
        return event

    return add


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    stream: TextIO | None = None,
    simulated: bool = False,
    journald: bool | None = None,
) -> logging.Handler:
    """Route structlog and the stdlib loggers to one handler on ``stream`` (stdout).

    Returns the handler (the daemon removes it on exit). ``journald`` defaults to whether
    ``$JOURNAL_STREAM`` is set.
    """
    out = sys.stdout if stream is None else stream
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    prefix = (not console) and (
        bool(os.environ.get("JOURNAL_STREAM")) if journald is None else journald
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_session,
        _flag_simulated(simulated),
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    formatter = JournalFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _order,
            renderer,
        ],
        prefix=prefix,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_pumpd", False):
            root.removeHandler(old)
    handler._pumpd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return handler


def unconfigure(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)


def bound(**values: Any) -> Mapping[str, Any]:
    """Bind context for the current task (and tasks it creates from now on)."""
    return structlog.contextvars.bind_contextvars(**values)

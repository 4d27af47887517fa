"""Log lines: JSON off a terminal, console on one, the journald priority prefix, pymodbus
and SQLAlchemy routed through the same renderer, pump and session on every pump line, and
pymodbus's repeated errors counted instead of printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from pumpd.daemon import logs


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_pumpd", False):
            root.removeHandler(handler)
    root.setLevel(level)
    logs.set_session_lookup(None)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_off_a_terminal_with_simulated_flag() -> None:
    out = io.StringIO()
    logs.configure("auto", stream=out, simulated=True, journald=False)
    structlog.get_logger("pumpd.daemon").info("pumpd ready", pumps=2)
    (line,) = lines(out)
    entry = json.loads(line)
    assert entry["event"] == "pumpd ready"
    assert entry["level"] == "info"
    assert entry["logger"] == "pumpd.daemon"
    assert entry["pumps"] == 2
    assert entry["simulated"] is True
    assert entry["timestamp"].endswith("Z")
    assert list(entry)[:3] == ["timestamp", "level", "event"]


def test_journald_gets_the_syslog_priority_prefix() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out, journald=True)
    log = structlog.get_logger("pumpd.daemon")
    log.info("fine")
    log.warning("hmm")
    log.error("bad")
    prefixes = [line[:3] for line in lines(out)]
    assert prefixes == ["<6>", "<4>", "<3>"]
    assert json.loads(lines(out)[2][3:])["event"] == "bad"


def test_console_lines_for_people() -> None:
    out = io.StringIO()
    logs.configure("console", stream=out)
    structlog.get_logger("pumpd.daemon").warning("pump not reachable", pump="chair-2")
    (line,) = lines(out)
    assert not line.startswith("{")
    assert "pump not reachable" in line
    assert "pump=chair-2" in line


def test_pump_and_session_on_every_line_of_a_pump_task_including_stdlib_ones() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out, journald=False)
    logs.set_session_lookup(lambda pump: "S-7" if pump == "chair-1" else None)
    structlog.contextvars.bind_contextvars(pump="chair-1")
    structlog.get_logger("pumpd.daemon").info("ours")
    logging.getLogger("pumpd.drivers.line").warning("stdlib line")
    structlog.contextvars.bind_contextvars(pump="chair-2")
    structlog.get_logger("pumpd.daemon").info("no session")
    entries = [json.loads(line) for line in lines(out)]
    assert [(e["pump"], e.get("session")) for e in entries] == [
        ("chair-1", "S-7"),
        ("chair-1", "S-7"),
        ("chair-2", None),
    ]
    assert entries[1]["logger"] == "pumpd.drivers.line"


def test_pymodbus_errors_are_one_line_and_repeats_are_counted() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out, journald=False)
    pymodbus = logging.getLogger("pymodbus.logging")
    for _ in range(50):
        pymodbus.error("No response received after 0 retries\n>>>>> send: 0x0 0x1 0x0\n")
    pymodbus.error("ERROR: request ask for id=2 but got id=1, Skipping.")
    entries = [json.loads(line) for line in lines(out)]
    assert [e["event"] for e in entries] == [
        "No response received after 0 retries",
        "ERROR: request ask for id=2 but got id=1, Skipping.",
    ]
    assert entries[0]["level"] == "error"


def test_sqlalchemy_is_routed_and_kept_quiet_below_warning() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out, journald=False)
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")
    logging.getLogger("sqlalchemy.engine").warning("pool overflow")
    assert [json.loads(line)["event"] for line in lines(out)] == ["pool overflow"]


def test_repeat_limiter_window_with_a_manual_clock() -> None:
    now = [0.0]
    limiter = logs.RepeatLimiter(window_s=30, clock=lambda: now[0])

    def record(msg: str, name: str = "pymodbus.logging") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)

    assert limiter.filter(record("link down"))
    assert not limiter.filter(record("link down"))
    assert not limiter.filter(record("link down"))
    assert limiter.filter(record("other error"))
    assert limiter.filter(record("not pymodbus", name="pumpd.daemon"))
    assert limiter.filter(record("not pymodbus", name="pumpd.daemon"))
    now[0] = 31.0
    again = record("link down")
    assert limiter.filter(again)
    assert again.getMessage() == "link down (repeated 2 times in 30 s)"


def test_repeat_limiter_forgets_lines_whose_window_ended() -> None:
    """pymodbus's first lines carry transaction ids: a day of late replies makes ever new
    lines, and the limiter must not keep every one it has seen."""
    now = [0.0]
    limiter = logs.RepeatLimiter(window_s=30, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("pymodbus.logging", logging.ERROR, __file__, 1, msg, (), None)

    for n in range(20_000):  # one new line every 50 ms: 1,000 s, 600 lines per window
        now[0] = n * 0.05
        assert limiter.filter(record(f"ERROR: request ask for transaction_id={n} but got id=0"))
        assert limiter.remembered <= 3 * 600
    assert limiter.remembered >= 600  # the last window's lines are still held


def test_repeat_limiter_still_counts_a_line_that_recurs_after_a_sweep() -> None:
    now = [0.0]
    limiter = logs.RepeatLimiter(window_s=30, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("pymodbus.logging", logging.ERROR, __file__, 1, msg, (), None)

    assert limiter.filter(record("link down"))
    assert not limiter.filter(record("link down"))
    now[0] = 31.0
    assert limiter.filter(record("other error"))  # a sweep: "link down" has repeats, kept
    now[0] = 45.0
    again = record("link down")
    assert limiter.filter(again)
    assert again.getMessage() == "link down (repeated 1 times in 30 s)"

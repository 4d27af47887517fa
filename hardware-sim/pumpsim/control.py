"""The control channel: fault injection and inspection as one JSON object per line over TCP.

Request:  {"op": "<operation>", "id": <anything, echoed>, ...fields}
Reply:    {"ok": true, "id": ..., ...}  or  {"ok": false, "id": ..., "error": {"type", "message"}}

Operations: ping, status {unit}, reboot {unit}, press_alarm_key {unit}, log {unit?,
since?}, faults, and fault {unit, fault, on, factor|ms|probability|count|direction|address};
for the New Era line: newera-status {address}, newera-fault {address, fault, on, count?};
for the DULCO flex line: dulco-status {unit}, dulco-fault {unit, fault, on, value?},
dulco-log {unit?}, dulco-panel-reset {unit} (the error reset key at the pump).
docs/pumpsim.md is the reference.

With a journal (``pumpsim --control-journal PATH``) every request that changes a pump
(``JOURNAL_OPS``) is written there as it arrives, one JSON object a line: its
``t_monotonic`` and ``t_utc``, the request as told and whether it was taken. A soak's
fault injections can so be checked against what the simulator itself was told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pumpsim.errors import ControlProtocolError, ControlRequestFailed, SimError
from pumpsim.faults import Fault

if TYPE_CHECKING:
    from pumpsim.harness import Simulator

MAX_LINE_BYTES = 64 * 1024
_FAULT_PARAMS = ("factor", "ms", "probability", "count", "direction", "address")
JOURNAL_OPS = frozenset(
    {"fault", "reboot", "press_alarm_key", "newera-fault", "dulco-fault", "dulco-panel-reset"}
)
"""The requests that change a pump (the others only read it): what the journal keeps."""


def _require_unit(request: dict[str, object]) -> int:
    unit = request.get("unit")
    if isinstance(unit, bool) or not isinstance(unit, int):
        raise ControlProtocolError(f"'unit' must be an integer, got {unit!r}")
    return unit


def dispatch(sim: Simulator, request: dict[str, object]) -> dict[str, object]:
    """Run one control request against `sim`; raises SimError subclasses on refusal."""
    op = request.get("op")
    if op == "ping":
        return {"units": list(sim.units), "time_scale": sim.time_scale}
    if op == "status":
        return {"status": sim.status(_require_unit(request))}
    if op == "fault":
        unit = _require_unit(request)
        on = request.get("on", True)
        if not isinstance(on, bool):
            raise ControlProtocolError(f"'on' must be true or false, got {on!r}")
        name = request.get("fault")
        if not isinstance(name, str):
            raise ControlProtocolError(f"'fault' must be a fault name, got {name!r}")
        unknown = set(request) - {"op", "id", "unit", "fault", "on", *_FAULT_PARAMS}
        if unknown:
            raise ControlProtocolError(f"unknown field(s): {', '.join(sorted(unknown))}")
        sim.inject(
            unit,
            name,
            on,
            factor=_opt_number(request, "factor"),
            ms=_opt_int(request, "ms"),
            probability=_opt_float(request, "probability"),
            count=_opt_int(request, "count"),
            direction=_opt_str(request, "direction"),
            address=_opt_int(request, "address"),
        )
        return {"status": sim.status(unit)}
    if op == "reboot":
        unit = _require_unit(request)
        sim.reboot(unit)
        return {"status": sim.status(unit)}
    if op == "press_alarm_key":
        unit = _require_unit(request)
        sim.press_alarm_key(unit)
        return {"status": sim.status(unit)}
    if op == "log":
        log_unit = None if request.get("unit") is None else _require_unit(request)
        since = request.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise ControlProtocolError(f"'since' must be a non-negative integer, got {since!r}")
        records = sim.command_log(log_unit)
        return {"records": [r.as_json() for r in records[since:]], "next": len(records)}
    if op == "faults":
        return {"faults": [f.value for f in Fault]}
    if op in ("newera-status", "newera-fault"):
        return _newera(sim, op, request)
    if op in ("dulco-status", "dulco-fault", "dulco-log", "dulco-panel-reset"):
        return _dulco(sim, op, request)
    raise ControlProtocolError(f"unknown op {op!r}")


def _newera(sim: Simulator, op: str, request: dict[str, object]) -> dict[str, object]:
    """New Era pumps are named by their network address (0-99), not by a unit id."""
    line = sim.newera
    if line is None:
        raise ControlProtocolError("this simulator serves no New Era line (--newera-link)")
    address = request.get("address")
    if isinstance(address, bool) or not isinstance(address, int):
        raise ControlProtocolError(f"'address' must be an integer, got {address!r}")
    if op == "newera-fault":
        unknown = set(request) - {"op", "id", "address", "fault", "on", "count"}
        if unknown:
            raise ControlProtocolError(f"unknown field(s): {', '.join(sorted(unknown))}")
        name = request.get("fault")
        on = request.get("on", True)
        if not isinstance(name, str) or not isinstance(on, bool):
            raise ControlProtocolError("'fault' must be a name and 'on' true or false")
        line.inject(address, name, on, count=_opt_int(request, "count"))
    return {"status": line.pump(address).snapshot()}


def _dulco(sim: Simulator, op: str, request: dict[str, object]) -> dict[str, object]:
    """DULCO flex pumps are named by their Modbus unit id on their own line."""
    line = sim.dulco
    if line is None:
        raise ControlProtocolError("this simulator serves no DULCO line (--dulco-link)")
    if op == "dulco-log":
        unit = request.get("unit")
        return {"records": [w for w in line.writes if unit is None or w["unit"] == unit]}
    unit = _require_unit(request)
    if op == "dulco-fault":
        unknown = set(request) - {"op", "id", "unit", "fault", "on", "value"}
        if unknown:
            raise ControlProtocolError(f"unknown field(s): {', '.join(sorted(unknown))}")
        name = request.get("fault")
        on = request.get("on", True)
        value = request.get("value")
        if not isinstance(name, str) or not isinstance(on, bool):
            raise ControlProtocolError("'fault' must be a name and 'on' true or false")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise ControlProtocolError(f"'value' must be an integer or a name, got {value!r}")
        line.inject(unit, name, on, value=value)
    if op == "dulco-panel-reset":
        line.pump(unit).panel_reset()
    snapshot = line.pump(unit).snapshot()
    snapshot["wire"] = line.wire[unit].as_json()
    return {"status": snapshot}


def _opt_number(request: dict[str, object], key: str) -> str | int | float | None:
    value = request.get(key)
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    raise ControlProtocolError(f"'{key}' must be a number, got {value!r}")


def _opt_int(request: dict[str, object], key: str) -> int | None:
    value = request.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ControlProtocolError(f"'{key}' must be an integer, got {value!r}")


def _opt_str(request: dict[str, object], key: str) -> str | None:
    value = request.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ControlProtocolError(f"'{key}' must be a string, got {value!r}")


def _opt_float(request: dict[str, object], key: str) -> float | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ControlProtocolError(f"'{key}' must be a number, got {value!r}")


def handle_line(sim: Simulator, line: bytes) -> dict[str, object]:
    """One reply for one request line; never raises for a bad request."""
    request_id: object = None
    try:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ControlProtocolError(f"request is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise ControlProtocolError("request must be a JSON object")
        request_id = request.get("id")
        reply: dict[str, object] = {"ok": True, "id": request_id}
        reply.update(dispatch(sim, request))
        return reply
    except SimError as exc:
        return {
            "ok": False,
            "id": request_id,
            "error": {"type": type(exc).__name__, "message": str(exc)},
        }


def journal_record(
    line: bytes, reply: dict[str, object], t_monotonic: float, t_epoch: float
) -> dict[str, object] | None:
    """The journal's line for one request (None: a request that only reads)."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict) or request.get("op") not in JOURNAL_OPS:
        return None
    request.pop("id", None)
    record: dict[str, object] = {
        "t_monotonic": t_monotonic,
        "t_utc": datetime.fromtimestamp(t_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request": request,
        "ok": reply.get("ok") is True,
    }
    if "error" in reply:
        record["error"] = reply["error"]
    return record


class ControlServer:
    def __init__(self, sim: Simulator, journal: Path | None = None) -> None:
        self._sim = sim
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._journal_path = journal
        self._journal: IO[str] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        if self._journal_path is not None:
            self._journal = self._journal_path.open("a", encoding="utf-8", buffering=1)
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE_BYTES)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE_BYTES: refuse and hang up
                    reply = handle_line(self._sim, b"")
                    reply["error"] = {
                        "type": "ControlProtocolError",
                        "message": f"request longer than {MAX_LINE_BYTES} bytes",
                    }
                    writer.write(json.dumps(reply).encode() + b"\n")
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                t_monotonic, t_epoch = time.monotonic(), time.time()
                reply = handle_line(self._sim, line)
                self._note(line, reply, t_monotonic, t_epoch)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _note(
        self, line: bytes, reply: dict[str, object], t_monotonic: float, t_epoch: float
    ) -> None:
        if self._journal is None:
            return
        record = journal_record(line, reply, t_monotonic, t_epoch)
        if record is not None:
            self._journal.write(json.dumps(record, sort_keys=True) + "\n")

    async def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(OSError):
            await self._server.wait_closed()
        self._server = None


class ControlClient:
    """A blocking client for the control channel (the CLI; any script or test)."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._file = self._sock.makefile("rwb")

    def request(self, op: str, **fields: object) -> dict[str, object]:
        """Send one request; the reply on success, ControlRequestFailed on refusal."""
        payload = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
        self._file.write(json.dumps(payload).encode() + b"\n")
        self._file.flush()
        line = self._file.readline(MAX_LINE_BYTES * 16)
        if not line:
            raise ControlProtocolError("control channel closed without a reply")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ControlProtocolError(f"reply is not a JSON object: {line!r}")
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise ControlRequestFailed(
                str(error.get("type", "unknown")), str(error.get("message", ""))
            )
        return reply

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

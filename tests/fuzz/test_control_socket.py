"""Fuzzing the control socket (JSON-RPC 2.0 over the Unix socket) of a real daemon.

The rig is tests/control's: a real ControlServer on a real socket in front of a real
Supervisor whose controllers drive the simulator over Modbus TCP, with a real SQLite audit
store. Hypothesis runs in a worker thread and sends its lines through the rig's event loop
(``run_coroutine_threadsafe``), so one rig serves every example and the server must survive
all of them:

- random bytes, random JSON values, and valid-looking requests for every method with
  random params (quantities in odd forms, wrong types, unknown keys, odd ids, bad auth);
- framing: several requests in one write, a partial line then end of input, CRLF, an
  overlong line.

For every line: one JSON-RPC answer; an error has a standard or application code, its
``data.kind``, and a specific message (an ``invalid_params`` names the parameter); the same
connection then answers a good request; and a refused request changed nothing — no
session, staff or login state moved and the audit log gained at most the request's own
record (``control.request.served`` or ``access.denied``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from control.conftest import PROGRAM, Client, Rig, rig  # noqa: F401 (the rig fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pumpd.audit import DAEMON_NAME
from pumpd.audit.schema import audit_event
from pumpd.control.methods import METHODS
from pumpd.control.rpc import MAX_LINE_BYTES, Code
from pumpd.staff import staff_member

from .budget import examples, report

T = TypeVar("T")
OWN_RECORDS = frozenset({"control.request.served", "access.denied"})
SUPERVISION_RECORDS = frozenset(
    {"pump.unreachable", "alarm.raised", "reminder.issued", "session.checkpointed"}
)
"""What a controller writes on its own (as the daemon) when a poll of this loaded machine
times out: the rig runs on the real clock at 600x. No request writes these as the daemon;
a session they change is judged by the snapshot comparison."""
CODES = {int(c): c for c in Code}

# -- strategies -----------------------------------------------------------------------------

numbers = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=2).map(lambda d: format(d, "f")),
    st.integers(min_value=-500, max_value=10**12).map(str),
    st.sampled_from(["82,5", "1e2", "NaN", "-0", "+82", "٨٢", "８２", "8 2", ".5", "", " "]),
)
units = st.sampled_from(
    ["kg", "KG", " kg", "lb", "g", "mg/kg", "µg/kg", "μg/kg", "min", " min", "h", "", "cm", "m"]
)
quantity = st.one_of(st.builds(lambda n, u: n + u, numbers, units), st.text(max_size=45))
words = st.one_of(st.text(max_size=20), st.just(""), st.just("x" * 501), st.just("stop\x00now"))
blood_pressure = st.one_of(
    st.sampled_from(
        ["132/84", "132 / 84", "132/", "/84", "132", "١٣٢/٨٤", "999/99", "60/90", "1320/84"]
    ),
    st.builds(lambda a, b: f"{a}/{b}", st.integers(-10, 400), st.integers(-10, 400)),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "pump": st.sampled_from(["chair-1", "chair-2", "chair-9", "", "CHAIR-1", "chair-1 ", "x" * 81]),
    "patient_ref": st.sampled_from(["P-0117", "P-0118", "", "p 1", "ü", "x" * 70]),
    "weight": quantity,
    "height": quantity,
    "dose": quantity,
    "duration": quantity,
    "sex": st.sampled_from(["male", "female", "other", ""]),
    "protocol": st.sampled_from(["ketamine-trd-standard", "ketamine-chronic-pain", "nope", ""]),
    "version": st.sampled_from([1, 2, 0, -1, 10**20, True]),
    "witness": st.one_of(
        st.fixed_dictionaries({"staff_id": st.text(max_size=8), "pin": st.text(max_size=8)}),
        json_value,
    ),
    "line_disconnected": st.sampled_from([True, False, "true", 1]),
    "reason": words,
    "note": words,
    "text": words,
    "override_reason": words,
    "bp": blood_pressure,
    "hr": st.integers(-5, 500),
    "spo2": st.integers(-5, 150),
    "rr": st.integers(-5, 250),
    "confirmed": st.lists(st.text(max_size=10), max_size=3),
    "staff_id": st.sampled_from(["s1", "", "nurse.ada", "x" * 41]),
    "pin": st.sampled_from(["1234", "", "x" * 65]),
    "name": words,
    "role": st.sampled_from(["nurse", "auditor", "admin", "root"]),
}


@st.composite
def params_for(draw: st.DrawFn, method: str) -> dict[str, Any]:
    """Every field of the method's model: left out, plausible, or any JSON; plus extras."""
    model = METHODS[method].params if method in METHODS else None
    fields = list(model.model_fields) if model is not None else []
    out: dict[str, Any] = {}
    for name in fields:
        how = draw(st.sampled_from(["omit", "plausible", "plausible", "any"]))
        if how == "plausible":
            out[name] = draw(PLAUSIBLE.get(name, json_value))
        elif how == "any":
            out[name] = draw(json_value)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.text(min_size=1, max_size=8))] = draw(json_value)
    if draw(st.integers(0, 9)) == 0:
        out["auth"] = draw(
            st.one_of(st.fixed_dictionaries({"token": st.text(max_size=8)}), json_value)
        )
    return out


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A valid-looking request: usually a real method with fuzzed params."""
    unknown = draw(st.integers(0, 9)) == 0  # one in ten: a method that does not exist
    method = draw(st.text(max_size=12) if unknown else st.sampled_from(sorted(METHODS)))
    odd = draw(st.integers(0, 19)) == 0  # one request in twenty gets a bad envelope
    body: dict[str, Any] = {
        "jsonrpc": draw(st.sampled_from(["1.0", 2, None])) if odd else "2.0",
        "id": draw(json_value) if odd else draw(st.integers(0, 2**40) | st.text(max_size=10)),
        "method": method,
    }
    if draw(st.integers(0, 9)) > 0:
        body["params"] = draw(params_for(method)) if not odd else draw(json_value)
    if odd and draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=6))] = 1
    if odd and draw(st.booleans()):
        del body["id"]
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


lines = st.one_of(
    requests(),
    requests(),
    requests(),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    requests().flatmap(lambda r: st.integers(0, len(r)).map(lambda cut: r[:cut])),
)
"""One request line's content (no newline yet)."""


# -- the rig, driven from the hypothesis thread ---------------------------------------------


@dataclass
class Before:
    sessions: dict[str, Any]
    staff_rows: int
    logins: int
    programmed: dict[str, int]
    seq: int


class Driver:
    """Runs the rig's coroutines on its loop, for a hypothesis test in a worker thread."""

    def __init__(self, made: Rig, loop: asyncio.AbstractEventLoop, client: Client) -> None:
        self.rig = made
        self.loop = loop
        self.client = client
        self.examples = 0
        self.answered = 0
        self.framed = 0
        self.refused: dict[str, int] = {}

    def run(self, make: Callable[[], Awaitable[T]], within_s: float = 60.0) -> T:
        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(within_s)

    async def before(self) -> Before:
        await self.rig.server.recorder.flush()
        svc = self.rig.server.service
        with self.rig.store.engine.connect() as conn:
            seq = conn.execute(select(func.coalesce(func.max(audit_event.c.seq), 0))).scalar_one()
            staff = conn.execute(select(func.count()).select_from(staff_member)).scalar_one()
        return Before(
            sessions={
                pid: None if ctl.session is None else ctl.session.snapshot()
                for pid, ctl in self.rig.supervisor.controllers.items()
            },
            staff_rows=staff,
            logins=len(svc.tokens._logins),
            programmed=dict(svc.programmed_from_uid),
            seq=seq,
        )

    async def new_events(self, since: int) -> list[tuple[str, dict[str, Any]]]:
        """Events since ``since`` but for the controllers' own supervision records."""
        await self.rig.server.recorder.flush()
        with self.rig.store.engine.connect() as conn:
            rows = conn.execute(
                select(audit_event.c.event_type, audit_event.c.payload, audit_event.c.actor_kind)
                .where(audit_event.c.seq > since)
                .order_by(audit_event.c.seq)
            ).all()
        return [
            (t, json.loads(p))
            for t, p, actor in rows
            if not (actor == "daemon" and t in SUPERVISION_RECORDS)
        ]


@pytest.fixture
def all_roles(rig: Rig) -> Rig:  # noqa: F811 (the imported fixture)
    """Every role, so the admin methods reach their params and handlers too."""
    rig.use_roles("nurse", "admin", "auditor")
    return rig


def _param_names(line: bytes) -> set[str]:
    """The params the request gave and the ones its method knows."""
    try:
        obj = json.loads(line)
    except ValueError:
        return set()
    if not isinstance(obj, dict):
        return set()
    params = obj.get("params")
    method = METHODS.get(obj.get("method")) if isinstance(obj.get("method"), str) else None
    known = set(method.params.model_fields) if method is not None else set()
    return known | (set(params) if isinstance(params, dict) else set())


def check_error(answer: dict[str, Any], line: bytes) -> str:
    """A JSON-RPC error with a known code, its kind, and a specific message; returns the kind."""
    err = answer["error"]
    assert set(answer) == {"jsonrpc", "id", "error"}, answer
    assert isinstance(err["code"], int), err
    assert err["code"] in CODES, err
    code = CODES[err["code"]]
    assert err["data"]["kind"] == code.kind, err
    message = err["message"]
    assert isinstance(message, str), err
    assert len(message.strip()) >= 8, err
    assert "Traceback" not in message, err
    assert "\n" not in message, err
    assert code is not Code.INTERNAL_ERROR, f"an unexpected exception behind {line[:200]!r}: {err}"
    if code is Code.INVALID_PARAMS:
        names = _param_names(line) | {"params", "auth", "vitals"}
        param_named = err["data"].get("param") or re.split(r"[:\s]", message, maxsplit=1)[0]
        # A nested field is named by its path (vitals.bp); a parameter whose own name has a
        # dot (".", found by make fuzz) is named whole.
        named = param_named in names or param_named.split(".")[0] in names
        assert named, f"does not name the parameter: {err} for {line!r}"
    return code.kind


def exchange(drv: Driver, line: bytes) -> None:
    """Send one line, check its answer, that a refusal changed nothing, and that the
    connection still serves a good request."""
    drv.examples += 1
    before = drv.run(drv.before)
    wire = line.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n"
    if not wire.strip():
        drv.run(lambda: _send(drv.client, wire))
    else:
        answer = drv.run(lambda: drv.client.raw(wire))
        assert answer.get("jsonrpc") == "2.0", answer
        assert ("result" in answer) != ("error" in answer), answer
        drv.answered += 1
        if "error" in answer:
            kind = check_error(answer, wire)
            drv.refused[kind] = drv.refused.get(kind, 0) + 1
            after = drv.run(drv.before)
            for pump, was in before.sessions.items():
                now = after.sessions.get(pump)
                assert same_but_for_the_kernel(was, now), (
                    f"{wire!r} changed {pump}'s session: {_difference(was, now)}"
                )
            assert (after.staff_rows, after.logins, after.programmed) == (
                before.staff_rows,
                before.logins,
                before.programmed,
            ), f"{wire!r} was refused but changed staff or logins"
            # (A live view's opening, from an earlier answered read, may land meanwhile.)
            events = [
                (t, p)
                for t, p in drv.run(lambda: drv.new_events(before.seq))
                if t != "control.view.opened"
            ]
            types = [t for t, _ in events]
            assert len(types) <= 1, (wire, types)
            assert set(types) <= OWN_RECORDS, (wire, types)
            if types == ["control.request.served"]:
                assert events[0][1]["outcome_code"] == kind, events
    who = drv.run(lambda: drv.client.ok("whoami"))
    assert who["roles"] == ["admin", "auditor", "nurse"]


def _without_alarms(snapshot: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    data = dict(snapshot["data"])
    alarms = data.pop("alarms", [])
    return {**snapshot, "data": data}, list(alarms)


def same_but_for_the_kernel(was: dict[str, Any] | None, now: dict[str, Any] | None) -> bool:
    """Equal, or equal but for alarms latched meanwhile and the ALARM state they cause.

    No request raises an alarm: the kernel's tick, the pump and the controller do, on their
    own (the control rig runs on the real scaled clock, 600x, so a stall of this shared
    machine longer than 0.4 s is a comm timeout). A refused request must not clear one
    either (an acknowledgement that was refused acknowledged nothing)."""
    if was is None or now is None:
        return was == now
    (a, before), (b, after) = _without_alarms(was), _without_alarms(now)
    if any(alarm not in after for alarm in before):
        return False
    if len(after) > len(before) and b["state"] == "ALARM":
        a, b = {**a, "state": None}, {**b, "state": None}
        a, b = _without_the_kernels_stop(a, b, [x for x in after if x not in before])
    a, b = _without_the_halts_confirmation(a, b, now)
    return bool(a == b)


_STOP_FIELDS = ("stop_reason", "stop_reason_code", "stop_requested_by")


def _without_the_kernels_stop(
    was: dict[str, Any], now: dict[str, Any], raised: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set aside the stop a newly latched kernel alarm recorded: requested by the daemon
    itself, its reason code that alarm's code, where there was no stop before."""
    a, b = dict(was["data"]), dict(now["data"])
    codes = {x["code"] for x in raised if x.get("source") == "kernel"}
    if (
        all(a.get(k) is None for k in _STOP_FIELDS)
        and b.get("stop_requested_by") == DAEMON_NAME
        and b.get("stop_reason_code") in codes
    ):
        for k in _STOP_FIELDS:
            a.pop(k, None)
            b.pop(k, None)
    return {**was, "data": a}, {**now, "data": b}


def _without_the_halts_confirmation(
    was: dict[str, Any], now: dict[str, Any], original: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set aside the confirmation of the daemon's own halt under a latched alarm: the pump
    read idle after the kernel's STOP records ``stopped_at`` (and settles the STOP that was
    pending), whenever that read lands. A refused request sends no command, so it cannot
    confirm a halt; any other change, and a stop that is not the daemon's, still fails
    (``original`` is the session as read now, before any field was set aside)."""
    a, b = dict(was["data"]), dict(now["data"])
    if (
        original["state"] == "ALARM"
        and original["data"].get("stop_requested_by") == DAEMON_NAME
        and a.get("stopped_at") is None
        and b.get("stopped_at") is not None
    ):
        a.pop("stopped_at", None)
        b.pop("stopped_at", None)
        if b.get("pending_command") is None:
            a.pop("pending_command", None)
            b.pop("pending_command", None)
    return {**was, "data": a}, {**now, "data": b}


def _difference(was: dict[str, Any] | None, now: dict[str, Any] | None) -> str:
    """What differs between two snapshots, for the failure message."""
    if was is None or now is None:
        return f"{was!r} -> {now!r}"
    changed = [f"state {was['state']} -> {now['state']}"] if was["state"] != now["state"] else []
    a, b = was["data"], now["data"]
    changed += [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted({*a, *b}) if a.get(k) != b.get(k)
    ]
    return "; ".join(changed)[:2000]


async def _send(client: Client, data: bytes) -> None:
    client.writer.write(data)
    await client.writer.drain()


async def run_in_thread(made: Rig, test: Callable[[Driver], None]) -> Driver:
    client = await made.client()
    drv = Driver(made, asyncio.get_running_loop(), client)
    await asyncio.to_thread(test, drv)
    return drv


# -- the tests ------------------------------------------------------------------------------

FUZZ_SETTINGS = settings(
    max_examples=examples(0.25),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)


async def test_fuzzed_lines_are_answered_specifically_and_refusals_change_nothing(
    all_roles: Rig, pytestconfig: pytest.Config
) -> None:
    @FUZZ_SETTINGS
    @given(line=lines)
    def fuzz(drv: Driver, line: bytes) -> None:
        exchange(drv, line)

    drv = await run_in_thread(all_roles, lambda d: fuzz(d))
    report(
        pytestconfig,
        f"control socket, lines: {drv.examples} examples, {drv.answered} answered, {drv.refused}",
    )
    assert drv.answered > 0


async def test_fuzzed_requests_for_a_programmed_session_change_nothing_when_refused(
    all_roles: Rig, pytestconfig: pytest.Config
) -> None:
    """The same with a session on chair-1, so the session methods reach the machine."""
    c = await all_roles.client()
    await c.ok("session.program", **PROGRAM)

    @FUZZ_SETTINGS
    @given(line=requests())
    def fuzz(drv: Driver, line: bytes) -> None:
        exchange(drv, line)

    drv = await run_in_thread(all_roles, lambda d: fuzz(d))
    report(pytestconfig, f"control socket, programmed: {drv.examples} examples, {drv.refused}")


@st.composite
def framings(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    how = draw(st.sampled_from(["pipelined", "crlf", "partial", "overlong"]))
    reqs = draw(st.lists(requests(), min_size=1, max_size=4))
    return how, reqs


async def test_framing_faults_are_answered_and_other_connections_go_on(
    all_roles: Rig, pytestconfig: pytest.Config
) -> None:
    """Several requests in one write (answered in order), CRLF endings, a partial line then
    end of input (answered, closed), an overlong line (answered, closed)."""
    rig_ = all_roles
    bystander = await rig_.client()

    @settings(
        max_examples=examples(0.05),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        deadline=None,
    )
    @given(framing=framings())
    def fuzz(drv: Driver, framing: tuple[str, list[bytes]]) -> None:
        how, reqs = framing
        drv.run(lambda: _framed(rig_, how, [r.replace(b"\n", b" ") for r in reqs]))
        drv.framed += 1
        assert drv.run(lambda: bystander.ok("whoami"))["roles"] == ["admin", "auditor", "nurse"]

    drv = await run_in_thread(rig_, lambda d: fuzz(d))
    report(
        pytestconfig,
        f"control socket, framing: {drv.framed} framings, each with a bystander request",
    )


async def _framed(made: Rig, how: str, reqs: list[bytes]) -> None:
    c = await Client.connect(made.path)
    try:
        if how in ("pipelined", "crlf"):
            end = b"\r\n" if how == "crlf" else b"\n"
            c.writer.write(b"".join(r + end for r in reqs))
            await c.writer.drain()
            for _ in [r for r in reqs if r.strip()]:
                raw = await asyncio.wait_for(c.reader.readline(), 30)
                answer = json.loads(raw)
                assert ("result" in answer) != ("error" in answer), answer
            return
        if how == "partial":
            c.writer.write(reqs[0][: max(1, len(reqs[0]) // 2)])
            await c.writer.drain()
            c.writer.write_eof()
        else:
            c.writer.write(reqs[0] + b" " * (MAX_LINE_BYTES + 1 - len(reqs[0])) + b"\n")
            await c.writer.drain()
        rest = await asyncio.wait_for(c.reader.read(), 30)  # answered, then closed
        if rest.strip():
            answer = json.loads(rest)
            assert answer["error"]["code"] == Code.INVALID_REQUEST, answer
            assert answer["error"]["message"].startswith(("request too large", "the request line"))
    finally:
        await c.close()


@pytest.mark.parametrize(
    "key", ["\n", "pump\r\nx", " ", "\u202e"], ids=["lf", "crlf", "space", "rlo"]
)
async def test_an_odd_parameter_name_is_named_quoted_on_one_line(all_roles: Rig, key: str) -> None:
    """Regression (found by the fuzz test): a parameter named "\\n" gave the message
    "\\n: unknown parameter" — a line break inside the one-line refusal."""
    c = await all_roles.client()
    err = await c.err("status", **{key: None})
    assert err["message"] == f"{key!r}: unknown parameter"
    assert err["data"]["param"] == key
    assert "\n" not in err["message"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"weight": "80", "height": "180cm"}, "weight"),
        ({"weight": "80kg", "height": "180"}, "height"),
        ({"weight": "80kg", "height": "180cm", "sex": "x"}, "sex"),
        ({"dose": "0.5mg/kg", "duration": "40mins"}, "duration"),
        ({"dose": "0.5MG/KG", "duration": "40min"}, "dose"),
    ],
)
async def test_a_bad_quantity_is_refused_naming_its_own_field(
    all_roles: Rig, params: dict[str, str], param: str
) -> None:
    """Regression (found while fuzzing): a height without unit was refused as "weight: ...",
    a bad duration next to a good dose as "dose: ..."."""
    c = await all_roles.client()
    err = await c.err("session.plan", **{**PROGRAM, **params})
    assert err["data"]["param"] == param, err
    assert err["message"].startswith(f"{param}: "), err
    assert all_roles.supervisor.controllers["chair-1"].session is None


def test_the_session_oracle_tells_a_change_from_the_kernels_alarms() -> None:
    """The check above can fail: a changed field, a cleared alarm, a state change without a
    new alarm; and lets through only alarms latched meanwhile and the ALARM they cause."""
    alarm = {"code": "tick.comm.lost", "source": "kernel"}
    other = {"code": "pump.state_lost", "source": "daemon"}
    was = {"state": "PROGRAMMED", "data": {"confirmed_by": None, "alarms": [alarm]}}

    def now(state: str, alarms: list[Any], **data: Any) -> dict[str, Any]:
        return {"state": state, "data": {"confirmed_by": None, **data, "alarms": alarms}}

    assert same_but_for_the_kernel(was, now("PROGRAMMED", [alarm]))
    assert same_but_for_the_kernel(was, now("ALARM", [alarm, other]))
    assert not same_but_for_the_kernel(was, now("PROGRAMMED", [alarm], confirmed_by="x"))
    assert not same_but_for_the_kernel(was, now("PROGRAMMED", []))
    assert not same_but_for_the_kernel(was, now("VERIFIED", [alarm]))
    assert not same_but_for_the_kernel(was, now("ALARM", [other]))
    assert "confirmed_by: None -> 'x'" in _difference(
        was, now("PROGRAMMED", [alarm], confirmed_by="x")
    )
    # The stop a newly latched kernel alarm records is the kernel's; any other is a change.
    quiet = {"state": "PROGRAMMED", "data": {"confirmed_by": None, "alarms": []}}
    stop = {"stop_reason": "No answer", "stop_reason_code": "tick.comm.lost"}
    assert same_but_for_the_kernel(
        quiet, now("ALARM", [alarm], **stop, stop_requested_by=DAEMON_NAME)
    )
    assert not same_but_for_the_kernel(
        quiet, now("ALARM", [alarm], **stop, stop_requested_by="nurse1")
    )
    assert not same_but_for_the_kernel(
        quiet,
        now("ALARM", [alarm], **{**stop, "stop_reason_code": "x"}, stop_requested_by=DAEMON_NAME),
    )
    assert not same_but_for_the_kernel(
        quiet, now("ALARM", [other], **stop, stop_requested_by=DAEMON_NAME)
    )
    assert not same_but_for_the_kernel(
        quiet, now("PROGRAMMED", [], **stop, stop_requested_by=DAEMON_NAME)
    )
    # The daemon's halt under a latched alarm is confirmed whenever the pump is read idle:
    # its stopped_at (and the STOP no longer pending) land meanwhile; a nurse's does not.
    at = {"mono_s": "1.5", "utc": "2026-12-07T15:45:15Z"}
    halted = {**stop, "stop_requested_by": DAEMON_NAME}
    latched = now("ALARM", [alarm], **halted, stopped_at=None, pending_command="stop")
    assert same_but_for_the_kernel(
        latched, now("ALARM", [alarm], **halted, stopped_at=at, pending_command=None)
    )
    assert same_but_for_the_kernel(
        quiet, now("ALARM", [alarm], **halted, stopped_at=at, pending_command=None)
    )
    assert not same_but_for_the_kernel(
        latched, now("ALARM", [alarm], **halted, stopped_at=at, pending_command="start")
    )
    by_nurse = {**stop, "stop_requested_by": "nurse1"}
    assert not same_but_for_the_kernel(
        now("ALARM", [alarm], **by_nurse, stopped_at=None),
        now("ALARM", [alarm], **by_nurse, stopped_at=at),
    )
    assert not same_but_for_the_kernel(
        now("ALARM", [alarm], **halted, stopped_at=None),
        now("STOPPED", [alarm], **halted, stopped_at=at),
    )

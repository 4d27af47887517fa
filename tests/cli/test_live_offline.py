"""pumpctl's live commands where no daemon is needed: exit codes, the token file, rendering.

The end-to-end behaviour against a real pumpd is in tests/e2e/. Here: the exit-code map
is the contract's table (read from docs/control-socket.md, so the two cannot drift), an
absent or silent daemon exits 5, a peer that answers garbage exits 1, bad usage exits 2
before anything is sent, a token file anyone else could read is never used.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from pumpd.cli import client as rpc
from pumpd.cli.live import common, login, render

ROOT = Path(__file__).resolve().parents[2]
PUMPCTL = Path(sys.executable).parent / "pumpctl"


def pumpctl(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PUMPCTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def contract_exit_codes() -> dict[int, int]:
    table: dict[int, int] = {}
    row = re.compile(r"^\|\s*(-32\d{3})\s*\|\s*\w+\s*\|.*\|\s*(\d)\s*\|\s*$")
    for line in (ROOT / "docs" / "control-socket.md").read_text(encoding="utf-8").splitlines():
        m = row.match(line)
        if m:
            table[int(m.group(1))] = int(m.group(2))
    return table


def test_every_error_code_of_the_contract_maps_to_its_exit_code() -> None:
    table = contract_exit_codes()
    assert len(table) >= 13, table
    for code, exit_code in table.items():
        assert rpc.RpcError(code, "x").exit_code == exit_code, code
    assert rpc.RpcError(-1, "an unknown code").exit_code == rpc.EXIT_OTHER


def test_missing_socket_exits_5_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    result = pumpctl("--socket", str(path), "status")
    assert result.returncode == rpc.EXIT_UNREACHABLE
    assert str(path) in result.stderr
    assert result.stderr.startswith("Error: pumpd is not running")


def test_socket_env_var_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "from-env.sock"
    result = pumpctl("pumps", env={"PUMPD_SOCKET": str(path)})
    assert result.returncode == rpc.EXIT_UNREACHABLE
    assert str(path) in result.stderr


def test_socket_file_without_a_listener_exits_5(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a crashed daemon leaves
    result = pumpctl("--socket", str(path), "alarms", "--json")
    assert result.returncode == rpc.EXIT_UNREACHABLE, result.stderr


@pytest.fixture
def garbage_peer(tmp_path: Path) -> Iterator[Path]:
    """A socket whose peer answers every line with something that is not JSON-RPC."""
    path = tmp_path / "garbage.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"hello, I am not pumpd\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()
    thread.join(timeout=10)


def test_a_reply_that_is_not_json_rpc_exits_1(garbage_peer: Path) -> None:
    result = pumpctl("--socket", str(garbage_peer), "status")
    assert result.returncode == rpc.EXIT_OTHER
    assert "not JSON" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["vitals", "chair-1"], "at least one of"),
        (["vitals", "chair-1", "--bp", "132-84"], "systolic/diastolic"),
        (["adjust", "chair-1", "--reason", "x"], "--duration or --dose"),
        (["confirm", "chair-1", "--weight", "82kg", "--pin-stdin"], "--witness"),
        (["vitals", "chair-1", "--spo2", "101"], "101"),
        (["stop", "chair-1"], "--reason"),
    ],
)
def test_bad_usage_exits_2_before_anything_is_sent(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    result = pumpctl("--socket", str(tmp_path / "none.sock"), *args)
    assert result.returncode == rpc.EXIT_USAGE, result.stderr
    assert needle in result.stderr


def test_prime_unconfirmed_is_not_sent(tmp_path: Path) -> None:
    # "n" at the question: nothing is sent, so even a missing daemon is not reached (not 5).
    result = pumpctl("--socket", str(tmp_path / "none.sock"), "prime", "chair-1", stdin="n\n")
    assert result.returncode == rpc.EXIT_OTHER
    assert "not primed" in result.stderr


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def test_token_file_round_trip_is_private(runtime_dir: Path) -> None:
    entry = login.StaffLogin(token="t0k", staff_id="N001", name="Ana", role="nurse")
    path = login.save(entry)
    assert path == runtime_dir / "pumpctl" / f"login-{os.getuid()}"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert login.load() == entry
    assert login.forget() is True
    assert login.load() is None
    assert login.forget() is False


def test_token_file_readable_by_others_is_ignored(runtime_dir: Path) -> None:
    path = login.save(login.StaffLogin(token="t0k", staff_id="N001", name="Ana", role="nurse"))
    path.chmod(0o644)
    assert login.load() is None


def test_damaged_token_file_is_ignored(runtime_dir: Path) -> None:
    path = login.save(login.StaffLogin(token="t0k", staff_id="N001", name="Ana", role="nurse"))
    path.write_text("{not json", encoding="utf-8")
    assert login.load() is None


def _text(renderable: object, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_pump_view_shows_what_a_nurse_needs() -> None:
    view = {
        "pump_id": "chair-1",
        "reachable": True,
        "pump_state": "INFUSING",
        "session_id": "s-1",
        "session_state": "INFUSING",
        "patient_ref": "P-0042",
        "protocol_id": "ketamine-trd-standard@1",
        "drug": "ketamine",
        "concentration_mg_ml": "0.41",
        "delivered_ul": 25_000,
        "expected_ul": 25_100,
        "vtbi_ul": 100_000,
        "delivered_mg": "10.25",
        "prescribed_mg": "41.000",
        "rate_ml_h": "150.00",
        "dose_rate_mg_h": "61.5",
        "remaining_s": 1800,
        "alarms": [
            {"code": "pump.occlusion", "priority": "high", "message": "Occlusion on chair-1."}
        ],
        "reminders": [{"code": "vitals.due", "message": "Vitals due."}],
        "vitals_due_in_s": -90,
        "audit_backlog": 0,
        "simulated": True,
    }
    text = _text(render.pump_view(view))
    for needle in (
        "chair-1",
        "SIMULATION",
        "25.000 of 100.000 mL (25 %)",
        "25.100 mL",
        "10.25 of 41.00 mg ketamine",
        "150.00 mL/h | 61.500 mg/h",
        "infused",
        "time remaining          30 min 00 s",
        "overdue by 1 min 30 s",
        "ALARM HIGH Occlusion on chair-1. (pump.occlusion)",
        "REMINDER Vitals due. (vitals.due)",
    ):
        assert needle in text, (needle, text)


def test_unreachable_pump_and_idle_pump_view() -> None:
    text = _text(render.pump_view({"pump_id": "chair-2", "reachable": False}))
    assert "NOT ANSWERING" in text
    assert "volume" not in text  # no session: no invented figures


def test_plan_view_shows_refusal_and_override() -> None:
    plan = {
        "protocol": "ketamine-trd-standard@1",
        "dose_mg": "41",
        "rate_ml_h": "150",
        "vtbi_ul": 100000,
        "refused": False,
        "override": {
            "required": True,
            "codes": ["dose_per_kg.above_soft_max"],
            "second_person": True,
        },
    }
    verdicts = [
        {
            "severity": "soft",
            "message": "Dose above the usual.",
            "code": "dose_per_kg.above_soft_max",
        }
    ]
    text = _text(render.plan_view(plan, verdicts))
    assert "41 mg" in text
    assert "100000 µL" in text
    assert "SOFT Dose above the usual. (dose_per_kg.above_soft_max)" in text
    assert "NEEDS OVERRIDE: a reason and a second person" in text
    refused = _text(render.plan_view({**plan, "refused": True}, []))
    assert "REFUSED" in refused


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59, "59 s"), (61, "1 min 01 s"), (2077, "34 min 37 s"), (3725, "1 h 02 min")],
)
def test_duration_carries_its_units(seconds: int, shown: str) -> None:
    # "34:37" on a screen next to a pump showing h:mm could be read as hours.
    assert render.duration(seconds) == shown
    assert render.duration(-seconds) == (f"-{shown}" if seconds else shown)


@pytest.mark.parametrize(
    ("wire", "zone", "shown"),
    [
        ("2026-12-04T20:27:03.313862+00:00", "UTC", "2026-12-04 20:28 UTC"),
        ("2026-12-04T20:27:00+00:00", "UTC", "2026-12-04 20:27 UTC"),
        ("2026-12-04T23:59:30Z", "UTC", "2026-12-05 00:00 UTC"),
        ("2026-12-04T21:27:00.5+01:00", "UTC", "2026-12-04 20:28 UTC"),
        ("2026-12-04T20:27:03Z", "America/Chicago", "2026-12-04 14:28 CST"),
        ("2026-07-04T20:27:03Z", "Europe/Vienna", "2026-07-04 22:28 CEST"),
        (None, "UTC", "-"),
    ],
)
def test_a_not_before_time_is_shown_in_the_clinics_zone_to_the_minute_rounded_up(
    wire: str | None, zone: str, shown: str
) -> None:
    assert render.local_minute(wire, zone) == shown


def test_whoami_view_shows_the_acting_persons_roles() -> None:
    me = {
        "user": "station1",
        "uid": 1007,
        "groups": ["pumpd", "pumpd-admin", "pumpd-nurse"],
        "groups_source": "so_peergroups",
        "roles": ["admin", "nurse"],
        "acting": "staff:N001",
        "acting_roles": ["nurse"],
        "simulated": False,
    }
    text = _text(render.whoami_view(me))
    assert re.search(r"acting person\s+│ staff:N001 ", text), text
    assert re.search(r"acting roles\s+│ nurse ", text), text
    assert "SO_PEERGROUPS" in text
    assert "SIMULATION" not in text
    nobody = _text(render.whoami_view({**me, "roles": [], "acting_roles": []}))
    assert re.search(r"acting roles\s+│ none ", nobody), nobody


def test_alarms_are_listed_highest_priority_first() -> None:
    alarms = [
        {"pump_id": "chair-1", "priority": "low", "code": "a"},
        {"pump_id": "chair-1", "priority": "high", "code": "b"},
        {"pump_id": "chair-2", "priority": "medium", "code": "c"},
        {"pump_id": "chair-2", "priority": "high", "code": "d"},
    ]
    assert [a["code"] for a in render.by_priority(alarms)] == ["b", "d", "c", "a"]
    listed = _text(render.alarms_table(render.by_priority(alarms)))
    assert listed.index("(b,") < listed.index("(c,") < listed.index("(a,")


def test_the_pumps_table_folds_rather_than_cuts_at_a_narrow_terminal() -> None:
    pump = {
        "pump_id": "chair-1",
        "transport": "modbus-tcp",
        "address": "127.0.0.1:33267",
        "unit": 1,
        "reachable": True,
        "pump_state": "INFUSING",
        "session_state": "START_REQUESTED",
    }
    text = _text(render.pumps_table([pump]), width=60)
    assert "…" not in text  # folded over lines where it must be, never shortened
    assert all(part in text for part in ("INFUS", "START_", "TED", "33", "267")), text
    wide = _text(render.pumps_table([pump]), width=100)
    assert "│ chair-1 │ yes     │ INFUSING   │ START_REQUESTED │" in wide


def test_an_alarm_is_never_squeezed_out_of_a_narrow_terminal() -> None:
    alarm = {
        "pump_id": "chair-2",
        "priority": "high",
        "code": "tick.pump.alarm.occlusion_downstream",
        "source": "pump",
        "message": "Downstream occlusion on chair-2: infusion stopped at 9.3 of 100 mL.",
    }
    text = " ".join(_text(render.alarms_table([alarm]), width=40).split())
    assert (
        "HIGH chair-2: Downstream occlusion on chair-2: infusion stopped at 9.3 of 100 mL." in text
    )
    assert "(tick.pump.alarm.occlusion_downstream, from pump)" in text


def _refusal(*messages: str) -> rpc.RpcError:
    verdicts = [
        {"rule": f"r{i}", "code": f"rule.code_{i}", "severity": "hard", "message": m}
        for i, m in enumerate(messages)
    ]
    return rpc.RpcError(
        -32010, "confirm refused: " + " ".join(messages), {"kind": "refused", "verdicts": verdicts}
    )


def test_an_error_with_one_reason_is_one_sentence_with_its_code() -> None:
    message, details = common.error_text(_refusal("A second person must confirm."))
    assert message == "confirm refused: A second person must confirm (rule.code_0)."
    assert details == []


def test_an_error_with_several_reasons_lists_each_once() -> None:
    message, details = common.error_text(_refusal("No vitals.", "Not primed."))
    assert message == "confirm refused for 2 reasons:"
    assert details == ["HARD No vitals. (rule.code_0)", "HARD Not primed. (rule.code_1)"]
    plain, none = common.error_text(rpc.RpcError(-32013, "pump chair-1 has no open session"))
    assert (plain, none) == ("pump chair-1 has no open session.", [])


def _login_error(reason: str) -> bytes:
    message = {"pin_refused": "staff id or PIN not accepted"}.get(reason, "the login expired")
    error = {
        "code": -32002,
        "message": message,
        "data": {"kind": "login_required", "reason": reason},
    }
    return json.dumps(error).encode()


def test_log_in_again_is_advised_only_when_this_terminals_login_was_refused(
    tmp_path: Path, runtime_dir: Path
) -> None:
    login.save(login.StaffLogin(token="t0k", staff_id="N001", name="Ana", role="nurse"))
    path = tmp_path / "peer.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    replies = [_login_error("pin_refused"), _login_error("token_expired")]

    def serve() -> None:
        for reply in replies:
            conn, _ = server.accept()
            with conn:
                request = json.loads(conn.recv(65536))
                answer = {"jsonrpc": "2.0", "id": request["id"], "error": json.loads(reply)}
                conn.sendall(json.dumps(answer).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    try:
        witness = pumpctl(
            "--socket", str(path), "confirm", "chair-1", "--weight", "82kg",
            "--witness", "N002", "--pin-stdin", stdin="000000\n", env=env,
        )  # fmt: skip
        expired = pumpctl("--socket", str(path), "start", "chair-1", env=env)
    finally:
        thread.join(timeout=10)
        server.close()
    assert witness.returncode == rpc.EXIT_NOT_AUTHORIZED, witness.stderr
    assert witness.stderr.strip() == "Error: staff id or PIN not accepted."
    assert expired.returncode == rpc.EXIT_NOT_AUTHORIZED, expired.stderr
    assert "pumpctl login N001" in expired.stderr
    assert "pumpctl logout" in expired.stderr


def test_pumpctl_names_the_library_variable_of_pumpd_protocols() -> None:
    from pumpd.cli import pumpctl
    from pumpd.protocols import ENV_VAR

    assert pumpctl.ENV_VAR == ENV_VAR


def test_a_refused_plan_is_not_offered_for_confirmation(tmp_path: Path) -> None:
    """The daemon's preview says REFUSED: pumpctl asks nothing ("y" would not be read) and
    sends the program anyway, so the daemon's refusal is the answer (exit 3)."""
    path = tmp_path / "daemon.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    asked: list[str] = []
    refusal = {
        "code": -32010,
        "message": "program refused: The total dose of 400 mg is above the hard limit.",
        "data": {"kind": "refused", "verdicts": []},
    }

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as f:
            for _ in range(2):
                request = json.loads(f.readline())
                asked.append(request["method"])
                if request["method"] == "session.plan":
                    answer: dict[str, object] = {
                        "result": {"plan": {"protocol": "x@1"}, "verdicts": [], "refused": True}
                    }
                else:
                    answer = {"error": refusal}
                f.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], **answer}).encode())
                f.write(b"\n")
                f.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = pumpctl(
            "--socket", str(path), "program", "chair-1", "--patient", "P-1",
            "--weight", "800kg", "--protocol", "ketamine-trd-standard", stdin="y\n",
        )  # fmt: skip
    finally:
        thread.join(timeout=10)
        server.close()
    assert asked == ["session.plan", "session.program"]
    assert "?" not in result.stdout  # no "Program chair-1 … with this plan?"
    assert result.returncode == rpc.EXIT_REFUSED, result.stderr
    assert "program refused" in result.stderr


def test_countdowns_are_read_in_the_clinics_zone_from_the_daemons_clock() -> None:
    view = {
        "pump_id": "chair-1",
        "session_id": "S-1",
        "session_state": "PAUSED",
        "timezone": "America/Chicago",
        # The daemon's clock, not the terminal's: countdowns are the difference of the two.
        "as_of": "2026-12-04T20:00:00Z",
        "pause_auto_stop_at": "2026-12-04T20:12:30Z",
        "vitals_due_at": "2026-12-04T19:58:00Z",
        "vitals_due_in_s": -120,
        "earliest_discharge_at": None,
    }
    text = _text(render.pump_view(view))
    assert re.search(r"pause auto-stop\s+in 12 min 30 s \(at 14:12:30 CST\) unless resumed", text)
    assert re.search(r"vitals due\s+overdue by 2 min 00 s \(since 13:58:00 CST\)", text), text
    assert "UTC" not in text
    observing = {
        **view,
        "session_state": "OBSERVATION",
        "pause_auto_stop_at": None,
        "vitals_due_at": None,
        "vitals_due_in_s": None,
        "earliest_discharge_at": "2026-12-04T21:05:03Z",
    }
    text = _text(render.pump_view(observing))
    wanted = r"earliest discharge\s+in 1 h 05 min \(not before 2026-12-04 15:06 CST\)"
    assert re.search(wanted, text), text
    over = _text(render.pump_view({**observing, "as_of": "2026-12-04T21:05:04Z"}))
    assert re.search(r"earliest discharge\s+now", over), over


def test_the_bell_is_for_a_new_high_alarm_only() -> None:
    from pumpd.cli.live.live_view import high_alarms

    quiet = [{"pump_id": "chair-1", "alarms": [{"code": "low.battery", "priority": "low"}]}]
    loud = [
        {
            "pump_id": "chair-1",
            "alarms": [
                {"code": "low.battery", "priority": "low"},
                {"code": "pump.occlusion_downstream", "priority": "HIGH"},
            ],
        }
    ]
    assert high_alarms(quiet) == set()
    assert high_alarms(loud) == {("chair-1", "pump.occlusion_downstream")}


def test_a_session_that_ended_by_itself_shows_why_and_since_when() -> None:
    view = {
        "pump_id": "chair-1",
        "session_id": "S-1",
        "session_state": "ALARM",
        "timezone": "America/Chicago",
        "as_of": "2026-12-04T20:00:00Z",
        "delivery_ended": {
            "rule": "continue.ended",
            "reason": "Delivery was interrupted by tick.volume.over_infusion: …",
            "interrupted_by": ["tick.volume.over_infusion"],
            "observation_started_at": "2026-12-04T19:59:30Z",
        },
    }
    text = _text(render.pump_view(view))
    wanted = (
        r"delivery ended\s+OBSERVATION since 13:59:30 CST: ended by "
        r"tick\.volume\.over_infusion \(rule continue\.ended\)"
    )
    assert re.search(wanted, text), text
    assert "delivery ended" not in _text(render.pump_view({**view, "delivery_ended": None}))

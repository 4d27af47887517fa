"""The evidence keeps the soak's fault injections, paired on to off with their daemon life,
and a violation names the faults on its pump in the window before it. Fast: no processes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from soak import invariants
from soak.causes import faults_before_overrun
from soak.evidence import (
    FAULT_WINDOW_S,
    UTC_FORMAT,
    AuditEvent,
    Evidence,
    FaultInjection,
    Life,
    Sample,
)
from soak.injections import paired
from soak.report import excess_faults_text, violation_text
from soak.world import DaemonLife, Injection


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(UTC_FORMAT)


def test_requests_are_paired_on_to_off_with_the_daemon_life_of_each() -> None:
    lives = [
        DaemonLife(1, pid=1, started_mono=0.0, ready_mono=1.0, rss_kib_at_ready=0),
        DaemonLife(2, pid=2, started_mono=12.0, ready_mono=13.0, rss_kib_at_ready=0),
    ]
    lives[0].ended_mono, lives[0].ended_by = 10.0, "KILL"
    e = 1_800_000_000.0  # epoch at monotonic 0
    requests = [
        Injection(2.0, 1, "latency", True, {"ms": 300}, e + 2.0),
        Injection(4.0, 101, "reboot", True, {}, e + 4.0),
        Injection(5.5, 1, "latency", False, {}, e + 5.5),
        Injection(11.0, 201, "no-answer", True, {}, e + 11.0),  # no daemon up
        Injection(14.0, 201, "no-answer", False, {}, e + 14.0),
    ]
    got = paired(
        requests,
        {"chair-1": 1, "chair-2": 101, "chair-3": 201},
        {"chair-1": "tcp", "chair-2": "newera", "chair-3": "dulco"},
        lives,
    )
    assert got == [
        FaultInjection(
            "chair-1", "tcp", 1, "latency", {"ms": 300}, 2.0, utc(e + 2), 1, 5.5, utc(e + 5.5), 1
        ),
        FaultInjection("chair-2", "newera", 101, "reboot", {}, 4.0, utc(e + 4), 1),
        FaultInjection(
            "chair-3", "dulco", 201, "no-answer", {}, 11.0, utc(e + 11), None, 14.0, utc(e + 14), 2
        ),
    ]


def injection(
    pump: str, fault: str, on: float, off: float | None, **params: object
) -> FaultInjection:
    wall = time.time() - time.monotonic()
    return FaultInjection(
        pump, "tcp", int(pump[-1]), fault, dict(params), on, utc(on + wall), 1,
        off, None if off is None else utc(off + wall), None if off is None else 1,
    )  # fmt: skip


def test_a_violation_names_the_faults_on_its_pump_just_before_it(tmp_path: Path) -> None:
    now = time.monotonic()
    wall = time.time() - now
    t0 = now - 60
    ev = Evidence(
        scale=240.0,
        heartbeat_timeout_s=3.0,
        units={"chair-1": 1, "chair-2": 2},
        events=[
            AuditEvent(
                1, utc(now - 100 + wall), "i-1", "daemon.started", None, None, None, "daemon", {}
            )
        ],
        offsets=[(now - 100, wall), (now, wall)],
        lives=[Life(1, now - 100, None, None)],
    )
    # chair-1 infuses for 5 s while its session is in ALARM (B = 4 s): seen at about t0 + 4.1.
    ev.samples = [Sample(t0 + k * 0.1, 1, "INFUSING", 0.0, True, "S-1", "ALARM") for k in range(51)]
    ev.injections = [
        injection("chair-1", "latency", t0 - 80, t0 - 40, ms=300),  # over before the window
        injection("chair-1", "reboot", t0 - 20, None),  # one act, inside the window
        injection("chair-2", "door-open", t0, t0 + 1),  # another pump
        injection("chair-1", "no-answer", t0 - 1, t0 + 3.4),  # on as it began
    ]
    [v] = invariants.check_all(ev)
    assert v.kind == "delivery.unsupervised"
    assert v.pump_id == "chair-1"
    assert v.t_mono is not None
    assert t0 + 4 < v.t_mono < t0 + 4.3
    assert v.faults is not None
    assert [i.fault for i in v.faults] == ["reboot", "no-answer"]
    text = violation_text(v)
    assert f"faults on chair-1 in the {FAULT_WINDOW_S:g} s before" in text
    assert ev.injections[1].on_utc in text
    assert "never turned off" in text
    assert ev.injections[3].on_utc in text
    assert str(ev.injections[3].off_utc) in text
    assert "latency" not in text
    assert "door-open" not in text

    ev.dump(tmp_path / "evidence.json")
    again = Evidence.load(tmp_path / "evidence.json")
    assert again.injections == ev.injections
    assert invariants.check_all(again) == [v]

    ev.injections = []
    [v] = invariants.check_all(ev)
    assert f"no fault injected on chair-1 in the {FAULT_WINDOW_S:g} s before" in violation_text(v)
    # Evidence kept before the injections were: nothing is claimed about faults.
    (tmp_path / "old.json").write_text(
        json.dumps({k: v for k, v in json.loads((tmp_path / "evidence.json").read_text()).items()
                    if k not in ("injections", "injections_kept")}),
        encoding="utf-8",
    )  # fmt: skip
    [v] = invariants.check_all(Evidence.load(tmp_path / "old.json"))
    assert v.faults is None
    assert "fault" not in violation_text(v)


def test_the_largest_overrun_is_named_with_the_faults_before_it_passed_its_plan() -> None:
    """An overrun stopped within B is no violation (the DULCO's 25 mL of seed 642880), yet
    the summary names the faults on its pump before it passed its plan."""
    now = time.monotonic()
    wall = time.time() - now
    t0 = now - 60

    def event(seq: int, at: float, event_type: str, payload: dict[str, object]) -> AuditEvent:
        return AuditEvent(seq, utc(at + wall), "i-1", event_type, "chair-1", "S-1", None,
                          "daemon", payload)  # fmt: skip

    ev = Evidence(
        scale=240.0,
        heartbeat_timeout_s=3.0,
        units={"chair-1": 1},
        events=[
            event(1, t0, "session.programmed", {"volume_ul": 1000}),
            event(2, t0 + 20, "session.checkpointed", {"state": "DISCHARGED"}),
        ],
        offsets=[(now - 100, wall), (now, wall)],
        lives=[Life(1, now - 100, None, None)],
    )
    # 100 µL a second from t0 + 1: past the plan of 1000 µL at t0 + 11.1, stopped at 1 300.
    ev.samples = [
        Sample(t0 + 1 + k * 0.1, 1, "INFUSING", min(10.0 * k, 1300.0), True) for k in range(150)
    ]
    ev.injections = [
        injection("chair-1", "no-answer", t0 + 10.6, t0 + 14.0),
        injection("chair-1", "latency", t0 - 40, t0 - 25, ms=3000),  # ended > 30 s before
    ]
    assert invariants.check_volume(ev) == []  # within the bound L: no violation
    assert round(invariants.max_excess_ul(ev)[0]) == 300
    found = faults_before_overrun(ev, "S-1")
    assert found is not None
    pump, t_mono, faults = found
    assert pump == "chair-1"
    assert abs(t_mono - (t0 + 11.1)) < 0.01
    assert [i.fault for i in faults] == ["no-answer"]
    text = excess_faults_text(found)
    assert "no-answer" in text
    assert ev.injections[0].on_utc in text
    assert "0.50 s before" in text
    assert faults_before_overrun(ev, "S-other") is None

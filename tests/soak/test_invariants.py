"""The soak's invariant checker must be able to fail: each check is shown a real audit
database (written by pumpd's own store, on SQLite) and evidence with one defect, and must
name it; the same evidence without the defect must pass. Fast: no processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pumpd.audit import Actor, AuditStore, NewEvent, migrate
from soak import invariants
from soak.evidence import Evidence, Life, Sample, SimCommand, read_audit

PUMP = "chair-1"
SID = "S-test-1"
PATIENT = "P-1"
PLAN_UL = 100_000
NURSE = Actor.person("staff:N1", "nurse", uid=1000)
FORGED = f"{'a' * 64}', '{'b' * 64}'"
"""Hashes of a row nobody chained: the UNIQUE constraints accept them, verify does not."""
NO_IDS: dict[str, object] = {"session_id": None, "patient_ref": None, "pump_id": None}
PROGRAMMED = {
    "protocol_id": "ketamine_trd_standard",
    "protocol_version": "1",
    "protocol_sha256": "0" * 64,
    "drug": "ketamine",
    "concentration_mg_ml": "0.4",
    "weight_kg": "80",
    "weight_basis": "actual",
    "dose_mg_kg": "0.5",
    "prescribed_dose_mg": "40",
    "rate_ml_h": "150",
    "volume_ul": PLAN_UL,
    "duration_s": 2400,
}


class Log:
    """An audit database on SQLite, written through pumpd's AuditStore."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        migrate.upgrade_url(self.url)
        self.store = AuditStore.open(self.url, simulated=True)

    def add(self, event_type: str, payload: dict[str, object], **kw: object) -> None:
        actor = kw.pop("actor", Actor.daemon())
        assert isinstance(actor, Actor)
        fields = {"pump_id": PUMP, "session_id": SID, "patient_ref": PATIENT, **kw}
        if event_type in ("daemon.started",):
            fields = {}
        self.store.append(NewEvent(event_type, payload, actor, **fields))  # type: ignore[arg-type]
        time.sleep(0.005)  # distinct stamps, so order on the time line is unambiguous

    def command(
        self, command: str, corr: str, *, result: bool = True, actor: Actor = NURSE
    ) -> None:
        self.add(
            "pump.command.requested",
            {"command": command},
            correlation_id=corr,
            actor=actor,
            session_id=None,
            patient_ref=None,
        )
        if result:
            self.add(
                "pump.command.confirmed",
                {"command": command, "observed_state": "infusing", "latency_ms": 3},
                correlation_id=corr,
                session_id=None,
                patient_ref=None,
            )

    def checkpoint(self, state: str) -> None:
        self.add("session.checkpointed", {"state": state, "snapshot": {}})

    def restart(self) -> None:
        """A new daemon: a new store instance (instance_id) on the same database."""
        self.store.close()
        self.store = AuditStore.open(self.url, simulated=True)
        started(self)

    def close(self) -> None:
        self.store.close()


def started(log: Log) -> None:
    log.add("daemon.started", {"version": "0", "pid": 1, "config_sha256": "0" * 64})


def session(log: Log, *, start_result: bool = True, end: str = "DISCHARGED") -> None:
    log.add("session.programmed", PROGRAMMED, actor=NURSE)
    log.checkpoint("PROGRAMMED")
    log.command("start", "c-start", result=start_result)
    log.checkpoint("INFUSING")
    if end:
        log.checkpoint(end)


def evidence(log: Log, **kw: object) -> Evidence:
    now_off = time.time() - time.monotonic()
    ev = Evidence(
        scale=300.0,
        heartbeat_timeout_s=3.0,
        units={PUMP: 1},
        events=read_audit(log.url),
        offsets=[(time.monotonic() - 60, now_off), (time.monotonic(), now_off)],
        lives=[Life(1, time.monotonic() - 60, None, None)],
    )
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


def mono_of(ev: Evidence, event_type: str) -> float:
    e = next(e for e in ev.events if e.event_type == event_type)
    return ev.mono_of_utc(e.occurred_at)


def kinds(found: list[invariants.Violation]) -> list[str]:
    return sorted(v.kind for v in found)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    log = Log(tmp_path / "audit.db")
    started(log)
    yield log
    log.close()


def test_a_clean_run_passes(log: Log) -> None:
    session(log)
    ev = evidence(log)
    start = mono_of(ev, "pump.command.requested")
    ev.sim_commands = [SimCommand(1, 7, 1, "OK", start + 0.001 + invariants.STAMP_TOLERANCE_S)]
    assert invariants.check_all(ev) == []


def test_a_command_without_its_intent_is_a_violation(log: Log) -> None:
    session(log)
    ev = evidence(log)
    start = mono_of(ev, "pump.command.requested")
    # A START the pump took before pumpd had written any intent for it.
    ev.sim_commands = [SimCommand(1, 7, 1, "OK", start - 0.05)]
    assert kinds(invariants.check_intents(ev)) == ["command.without_intent"]
    # A STOP nobody announced at all.
    ev.sim_commands = [SimCommand(1, 8, 3, "OK", start + 1)]
    assert kinds(invariants.check_intents(ev)) == ["command.without_intent"]


def test_a_key_pressed_at_the_pump_needs_no_intent(log: Log) -> None:
    session(log)
    ev = evidence(log)
    from soak.evidence import PanelPress

    ev.sim_commands = [SimCommand(1, 40000, 6, "OK", mono_of(ev, "session.programmed"))]
    ev.presses = [PanelPress(1, 40000, mono_of(ev, "session.programmed"))]
    assert invariants.check_intents(ev) == []


def test_a_start_taken_twice_or_asked_by_the_daemon_is_a_violation(log: Log) -> None:
    log.add("session.programmed", PROGRAMMED, actor=NURSE)
    log.command("start", "c-1", actor=Actor.daemon())
    log.checkpoint("DISCHARGED")
    ev = evidence(log)
    t = mono_of(ev, "pump.command.requested") + 0.003
    ev.sim_commands = [SimCommand(1, 7, 1, "OK", t), SimCommand(1, 8, 1, "OK", t + 0.001)]
    assert kinds(invariants.check_intents(ev)) == ["command.moving_by_daemon", "command.repeated"]


def test_an_intent_without_result_is_a_violation_unless_the_daemon_was_killed(log: Log) -> None:
    session(log, start_result=False)
    ev = evidence(log)
    assert kinds(invariants.check_results(ev)) == ["command.no_result"]
    ev.lives = [Life(1, time.monotonic() - 60, time.monotonic(), "KILL")]
    assert invariants.check_results(ev) == []


def test_a_seq_gap_and_a_tampered_row_are_violations(log: Log) -> None:
    session(log)
    log.close()
    engine = sa.create_engine(log.url)
    with engine.begin() as conn:
        # A row appended past a missing seq: the append-only triggers allow INSERT.
        conn.execute(
            sa.text(
                "INSERT INTO audit_event SELECT seq + 2, occurred_at, mono_ns + 1, host, "
                "instance_id, actor_kind, actor_uid, actor_name, actor_role, pump_id, "
                "session_id, patient_ref, event_type, correlation_id, simulated, payload, "
                "'" + FORGED + " "
                "FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)"
            )
        )
    engine.dispose()
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "pumpaudit"), "--database", log.url, "verify"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ev = evidence(log, verify_exit=verify.returncode, verify_output=verify.stdout)
    assert kinds(invariants.check_chain(ev)) == ["audit.seq_gap", "audit.verify_failed"]


def test_a_duplicate_seq_is_a_violation(log: Log) -> None:
    session(log)
    ev = evidence(log)
    ev.events = [*ev.events, ev.events[-1]]
    assert kinds(invariants.check_chain(ev)) == ["audit.seq_duplicate"]


def volume_samples(ev: Evidence, t0: float, ul_per_s: float, seconds: float) -> list[Sample]:
    """A pump infusing from t0 at ul_per_s (real), sampled every 0.1 s, session INFUSING."""
    steps = int(seconds / 0.1)
    return [
        Sample(t0 + k * 0.1, 1, "INFUSING", ul_per_s * k * 0.1, True, SID, "INFUSING")
        for k in range(steps + 1)
    ]


def test_over_delivery_beyond_the_bound_is_a_violation(log: Log) -> None:
    session(log, end="")  # still open: the samples below all fall inside it
    ev = evidence(log)
    t0 = mono_of(ev, "session.programmed")
    limit = invariants.volume_bound_ul(PLAN_UL)
    # The bound is passed after 9 s and the pump keeps running for 5 s more (> B = 4 s).
    ev.samples = volume_samples(ev, t0, limit / 9, 14)
    assert kinds(invariants.check_volume(ev)) == ["volume.over_bound"]
    # Stopped 1 s after passing it (within B): a reaction, not a violation.
    ev.samples = volume_samples(ev, t0, limit / 9, 10)
    assert invariants.check_volume(ev) == []
    assert invariants.max_excess_ul(ev)[0] > 0


def test_volume_moved_with_no_session_is_a_violation(log: Log) -> None:
    session(log)
    ev = evidence(log)
    after = mono_of(ev, "session.checkpointed") + 5  # long after the session ended
    ev.samples = [
        Sample(after, 1, "INFUSING", 0.0, True),
        Sample(after + 0.1, 1, "INFUSING", 500.0, True),
    ]
    assert kinds(invariants.check_volume(ev)) == ["delivery.outside_session"]


def delivery(state: str, seconds: float, alarms: tuple[str, ...] = ()) -> list[Sample]:
    t0 = time.monotonic() - 30
    return [
        Sample(t0 + k * 0.1, 1, "INFUSING", 0.0, True, SID, state, alarms)
        for k in range(int(seconds / 0.1) + 1)
    ]


def test_infusing_while_the_session_is_not_is_a_violation_beyond_the_bound(log: Log) -> None:
    session(log)
    ev = evidence(log)
    ev.samples = delivery("ALARM", 5.0)
    assert kinds(invariants.check_delivery(ev)) == ["delivery.unsupervised"]
    ev.samples = delivery("STOP_REQUESTED", 3.5)  # within B = heartbeat 3 s + 1 s
    assert invariants.check_delivery(ev) == []
    ev.samples = delivery("INFUSING", 20.0)
    assert invariants.check_delivery(ev) == []
    # A pump that ignores remote commands: pumpd cannot stop it, it must say so within B.
    ev.samples = delivery("ALARM", 20.0, ("command.stop.not_applied",))
    assert invariants.check_delivery(ev) == []


def test_infusing_with_no_daemon_beyond_the_failsafe_is_a_violation(log: Log) -> None:
    session(log)
    ev = evidence(log)
    now = time.monotonic()
    ev.lives = [Life(1, now - 60, now - 30, "KILL")]  # killed as the samples begin
    ev.samples = [
        Sample(now - 30 + k * 0.1, 1, "INFUSING", 0.0, False) for k in range(int(6 / 0.1))
    ]
    assert kinds(invariants.check_delivery(ev)) == ["delivery.unsupervised"]


def test_a_session_left_open_or_not_recovered_is_a_violation(log: Log) -> None:
    session(log, end="")
    ev = evidence(log)
    assert kinds(invariants.check_sessions_ended(ev)) == ["session.unfinished"]
    log.restart()  # a second daemon that never reports the open session
    ev = evidence(log)
    ev.lives = [Life(1, 0, 1, "KILL"), Life(2, 2, None, None)]
    assert kinds(invariants.check_recovery(ev)) == ["recovery.session_not_recovered"]
    log.add("daemon.recovered", {"open_sessions": [SID], "detail": "rebuilt"}, **NO_IDS)
    ev = evidence(log)
    ev.lives = [Life(1, 0, 1, "KILL"), Life(2, 2, None, None)]
    assert invariants.check_recovery(ev) == []


def test_the_evidence_survives_a_round_trip_through_json(log: Log, tmp_path: Path) -> None:
    session(log)
    ev = evidence(log, samples=delivery("ALARM", 5.0))
    ev.dump(tmp_path / "evidence.json")
    again = Evidence.load(tmp_path / "evidence.json")
    assert kinds(invariants.check_all(again)) == kinds(invariants.check_all(ev))
    assert kinds(invariants.check_all(again)) == ["delivery.unsupervised"]


def test_a_syringe_pump_running_in_a_prime_or_an_infusion_state_is_supervised(log: Log) -> None:
    """A New Era pump primes and infuses with the same motion (RUNNING): allowed in the
    session states of either, unsupervised in any other beyond B."""
    session(log)
    ev = evidence(log)
    for state in ("PRIMING", "INFUSING", "START_REQUESTED"):
        ev.samples = [dataclasses.replace(s, pump_state="RUNNING") for s in delivery(state, 20.0)]
        assert invariants.check_delivery(ev) == [], state
    ev.samples = [dataclasses.replace(s, pump_state="RUNNING") for s in delivery("ALARM", 5.0)]
    assert kinds(invariants.check_delivery(ev)) == ["delivery.unsupervised"]


def _passing_the_bound_by(ev: Evidence, t0: float, limit: int, extra_ul: int) -> list[Sample]:
    """The bound passed at once, then 30 µL every 0.1 s for 20 s, up to ``extra_ul`` more."""
    out = [Sample(t0 + 0.1, 1, "RUNNING", 0.0, True, SID, "INFUSING")]
    volume = float(limit + 1)
    for k in range(200):
        out.append(Sample(t0 + 0.2 + k * 0.1, 1, "RUNNING", volume, True, SID, "INFUSING"))
        volume = min(volume + 30, limit + extra_ul)
    return out


def test_a_prime_counted_by_the_pump_is_allowed_once_per_prime_intent(log: Log) -> None:
    """A New Era pump counts its prime with the infusion: the volume bound grows by the
    prime for each prime intent of the session, and by nothing else."""
    session(log, end="")
    ev = evidence(log)
    t0 = mono_of(ev, "session.checkpointed")
    limit = invariants.volume_bound_ul(PLAN_UL)
    ev.samples = _passing_the_bound_by(ev, t0, limit, 1_900)
    assert kinds(invariants.check_volume(ev)) == ["volume.over_bound"]
    ev.prime_in_counter_ul = {PUMP: 2_000}
    assert kinds(invariants.check_volume(ev)) == ["volume.over_bound"]  # no prime intent
    log.add("pump.command.requested", {"command": "prime"}, correlation_id="c-p", actor=NURSE)
    ev.events = read_audit(log.url)
    assert invariants.check_volume(ev) == []  # within the bound and the one prime
    ev.samples = _passing_the_bound_by(ev, t0, limit, 3_500)  # 2 mL + 1.5 mL: > B flowing
    assert kinds(invariants.check_volume(ev)) == ["volume.over_bound"]

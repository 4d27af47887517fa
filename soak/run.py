"""One soak run: start the processes, run every pump's nurse at once with the chaos and
the sampler beside them, stop everything, and gather the evidence."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pumpd.cli.client import Client
from soak.chaos import Chaos
from soak.evidence import Evidence, Life, PanelPress, read_audit, sim_commands_of
from soak.forward import Cutter, SoakCentre, forward_rest, site_chain, wait_caught_up
from soak.injections import paired
from soak.kinds import KINDS, draw_mix, is_dulco, sim_key
from soak.nurse import Nurse
from soak.plan import (
    daemon_stream,
    digest,
    draw_daemon_chaos,
    draw_session,
    pump_stream,
    sessions_of,
)
from soak.report import Rss, Summary
from soak.sampler import Sampler
from soak.world import DaemonLife, World, role_group
from tests.e2e.stack import Stack

HEARTBEAT_TIMEOUT_S = 3
STAFF_IDLE_MIN = 720  # the most the configuration allows; on the scaled clock


@dataclass(frozen=True)
class RunSettings:
    sessions: int
    seed: int
    pumps: int
    rtu_pumps: int
    time_scale: float
    kill_every_s: float | None
    keep: Path | None = None
    forward: bool = False
    """Forward the log to a central store on PostgreSQL and check it (soak/forward.py)."""


@dataclass
class Outcome:
    evidence: Evidence
    summary: Summary
    error: str | None


def _mix_text(transports: dict[str, str]) -> str:
    counts = Counter(transports.values())
    return ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k])


def pin_of(staff_id: str) -> str:
    """A fixed PIN per staff id (six digits, never the 000000 the wrong-PIN action types)."""
    return f"{(sum(map(ord, staff_id)) * 7919 + 104729) % 800000 + 100000}"


def run_soak(settings: RunSettings) -> Outcome:
    with role_group(f"pumpd-soak{os.getpid() % 100000}") as group:
        mix = draw_mix(settings.seed, settings.pumps, settings.rtu_pumps)
        stack = Stack(
            time_scale=int(settings.time_scale),
            pumps=settings.pumps,
            roles={"nurse": [group], "auditor": [group], "admin": [group]},
            heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
            rtu_pumps=mix["rtu"],
            newera_pumps=mix["newera"],
            dulco_pumps=mix["dulco"],
            staff_idle_timeout_min=STAFF_IDLE_MIN,
        )
        centre = SoakCentre() if settings.forward else None
        try:
            return _run(stack, settings, centre)
        finally:
            stack.close()
            if centre is not None:
                centre.drop()


def _run(stack: Stack, settings: RunSettings, centre: SoakCentre | None = None) -> Outcome:
    began = time.monotonic()
    stack.start_sim()
    stack.write_config()
    mark_file = stack.workdir / "forward.mark"
    if centre is not None:
        with stack.config_path.open("a", encoding="utf-8") as config:
            config.write(centre.section(mark_file))
    world = World(stack)
    world.start_daemon()
    chairs = {f"chair-{u}": u for u in range(1, settings.pumps + 1)}
    transports = {pump: stack.transport_of(u) for pump, u in chairs.items()}
    units = {
        pump: sim_key(transports[pump], u, stack.newera_address(u)) for pump, u in chairs.items()
    }
    pins: dict[str, str] = {}
    with Client(str(stack.socket_path), timeout_s=60) as admin:
        for pump in units:
            for role in ("A", "B"):
                staff_id = f"N-{pump}-{role}"
                pins[staff_id] = pin_of(staff_id)
                admin.call(
                    "staff.add",
                    {"staff_id": staff_id, "name": f"Nurse {role} of {pump}", "role": "nurse",
                     "pin": pins[staff_id]},
                )  # fmt: skip
    scripts = {}
    for index, pump in enumerate(units):
        rng = pump_stream(settings.seed, pump)
        count = sessions_of(index, settings.pumps, settings.sessions)
        scripts[pump] = [draw_session(rng, pump, n, transports[pump]) for n in range(count)]
    chaos_rng = daemon_stream(settings.seed)
    mean_life = settings.kill_every_s or 1.0
    schedule = [draw_daemon_chaos(chaos_rng, mean_life) for _ in range(10_000)]
    decisions = digest([s for pump in units for s in scripts[pump]], schedule[:100])
    print(
        f"soak: decisions sha256 {decisions}; {settings.sessions} sessions on "
        f"{settings.pumps} pumps ({_mix_text(transports)}) at x{settings.time_scale:g}",
        flush=True,
    )

    sampler = Sampler(world, units)
    sampler.start()
    nurses = [
        Nurse(
            world,
            pump,
            unit,
            settings.time_scale,
            scripts[pump],
            pins,
            programmer=f"N-{pump}-A",
            witness=f"N-{pump}-B",
            sampler=sampler,
            kind=KINDS[transports[pump]],
        )
        for pump, unit in units.items()
    ]
    errors: list[str] = []

    def work(nurse: Nurse) -> None:
        try:
            nurse.run()
        except BaseException as exc:
            errors.append(f"{nurse.pump_id}: {type(exc).__name__}: {exc}")
            world.finished.set()

    threads = [threading.Thread(target=work, args=(n,), name=n.pump_id) for n in nurses]
    for t in threads:
        t.start()
    chaos = Chaos(world, schedule) if settings.kill_every_s else None
    if chaos is not None:
        chaos.start()
    cutter = Cutter(centre, settings.seed) if centre is not None else None
    if cutter is not None:
        cutter.start()
    progress_at = time.monotonic()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=1.0)
        if time.monotonic() - progress_at > 60:
            progress_at = time.monotonic()
            done = sum(len(n.records) for n in nurses)
            print(f"soak: {done}/{settings.sessions} sessions begun, "
                  f"{sum(world.restarts.values())} restarts, "
                  f"{time.monotonic() - began:.0f} s", flush=True)  # fmt: skip
    if chaos is not None:
        chaos.stop.set()
        chaos.join()
        if chaos.error is not None:
            errors.append(f"chaos: {chaos.error!r}")
    if cutter is not None:
        cutter.stop.set()
        cutter.join()
        if cutter.error is not None:
            errors.append(f"centre cutter: {cutter.error!r}")
    world.wait_up(120)
    time.sleep(1.0)  # the last polls and checkpoints
    if centre is not None and not wait_caught_up(stack.database, mark_file, 120):
        errors.append("forwarding: the running daemon did not catch up within 120 s")
    sampler.stop.set()
    sampler.join()
    world.stop_daemon("END")
    evidence = _gather(stack, world, sampler, units, nurses)
    evidence.injections = paired(world.injections, units, transports, world.lives)
    evidence.prime_in_counter_ul = {
        pump: KINDS[t].prime_in_counter_ul
        for pump, t in transports.items()
        if KINDS[t].prime_in_counter_ul
    }
    if centre is not None:
        forward_rest(centre, stack.database, mark_file)  # as the next start would
        evidence.forwarded = centre.chain()
        evidence.site_chain = site_chain(stack.database)
        evidence.central_conflicts = centre.conflicts()
        print(f"soak: forwarding: {len(evidence.forwarded)} events at the centre, "
              f"{centre.cuts} connections cut", flush=True)  # fmt: skip
    summary = _summary(settings, decisions, transports, world, nurses, time.monotonic() - began)
    if settings.keep is not None:
        _keep(stack, evidence, settings.keep)
    return Outcome(evidence, summary, "; ".join(errors) or None)


def _gather(
    stack: Stack, world: World, sampler: Sampler, units: dict[str, int], nurses: list[Nurse]
) -> Evidence:
    records = stack.sim_request("log")["records"]
    assert isinstance(records, list)
    verify = stack.audit("verify")
    findings: list[tuple[str, str, str]] = []
    for nurse in nurses:
        for r in nurse.records:
            for name in r.wrong_accepted:
                findings.append(
                    (
                        "nurse.wrong_action_accepted",
                        r.pump_id,
                        f"session #{r.number} ({r.session_id}): {name}",
                    )
                )
            for name in r.bad_input_changed:
                findings.append(
                    (
                        "nurse.bad_input_changed",
                        r.pump_id,
                        f"session #{r.number} ({r.session_id}): {name}",
                    )
                )
            if r.outcome.startswith("unfinished"):
                findings.append(
                    (
                        "nurse.could_not_finish",
                        r.pump_id,
                        f"session #{r.number} ({r.session_id}): {r.outcome}",
                    )
                )
    for pump, key in units.items():
        if is_dulco(key):
            # This pump starts again by itself after a Modbus timeout or an error reset if
            # start/stop still says run; pumpd must never let it (the simulator counts it).
            restarts = int(world.sim_status(key)["restarts_by_itself"])
            if restarts:
                findings.append(
                    ("pump.restarted_by_itself", pump, f"the DULCO pump ran again by itself "
                     f"{restarts} time(s) with no start written")
                )  # fmt: skip
    return Evidence(
        scale=float(stack.time_scale),
        heartbeat_timeout_s=float(stack.heartbeat_timeout_s),
        units=units,
        events=read_audit(stack.database),
        verify_exit=verify.returncode,
        verify_output=(verify.stdout + verify.stderr).strip()[-2000:],
        sim_commands=sim_commands_of(records),
        samples=sorted(sampler.samples, key=lambda s: s.t_mono),
        offsets=list(sampler.offsets),
        lives=[
            Life(life.generation, life.ready_mono, life.ended_mono, life.ended_by)
            for life in world.lives
        ],
        presses=[PanelPress(p.unit, p.cmd_seq, p.t_mono, p.answered) for p in world.presses],
        nurse_findings=findings,
    )


def _summary(
    settings: RunSettings,
    decisions: str,
    transports: dict[str, str],
    world: World,
    nurses: list[Nurse],
    wall_s: float,
) -> Summary:
    s = Summary(settings.seed, decisions, transports, settings.time_scale, wall_s)
    for nurse in nurses:
        s.sessions.update(r.outcome for r in nurse.records)
        s.actions.update(nurse.actions)
        s.wrong.update(nurse.wrong)
    s.faults = Counter(i.fault for i in world.injections if i.on)
    s.restarts = Counter(world.restarts)
    longest = max(world.lives, key=lambda life: (life.ended_mono or 0) - life.ready_mono)
    s.rss_first, s.rss_last, s.rss_longest = (
        _rss(life) for life in (world.lives[0], world.lives[-1], longest)
    )
    return s


def _rss(life: DaemonLife) -> Rss:
    return Rss(
        at_ready_kib=life.rss_kib_at_ready,
        at_end_kib=life.rss_kib_at_end or 0,
        floor_at_end_kib=life.rss_kib_floor_at_end or 0,
        peak_kib=life.rss_kib_peak,
        life_s=(life.ended_mono or 0) - life.ready_mono,
    )


def _keep(stack: Stack, evidence: Evidence, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    evidence.dump(keep / "evidence.json")
    for path in stack.workdir.iterdir():
        if path.is_file() and (
            path.suffix in (".log", ".toml", ".jsonl") or path.name.startswith("audit.db")
        ):
            shutil.copy2(path, keep / path.name)

"""A seed replays the same decisions: every draw comes from a stream named by the seed and
the pump (or the daemon), and a session's script costs the same draws whatever it holds."""

from __future__ import annotations

from soak.plan import (
    ALL_FAULTS,
    RTU_FAULTS,
    TCP_FAULTS,
    DaemonChaos,
    SessionScript,
    daemon_stream,
    digest,
    draw_daemon_chaos,
    draw_session,
    pump_stream,
    sessions_of,
)


def scripts(seed: int, pumps: int = 4, sessions: int = 200) -> list[SessionScript]:
    out: list[SessionScript] = []
    for index in range(pumps):
        pump = f"chair-{index + 1}"
        rng = pump_stream(seed, pump)
        transport = "rtu" if index == pumps - 1 else "tcp"
        count = sessions_of(index, pumps, sessions)
        out += [draw_session(rng, pump, n, transport) for n in range(count)]
    return out


def chaos(seed: int) -> list[DaemonChaos]:
    rng = daemon_stream(seed)
    return [draw_daemon_chaos(rng, 60.0) for _ in range(50)]


def test_the_same_seed_gives_the_same_decisions_and_another_seed_others() -> None:
    a, b = scripts(11), scripts(11)
    assert a == b
    assert digest(a, chaos(11)) == digest(b, chaos(11))
    assert digest(scripts(12), chaos(12)) != digest(a, chaos(11))


def test_one_pump_stream_does_not_depend_on_how_many_pumps_run() -> None:
    """Concurrency cannot reorder draws: chair-1's sessions are the same with 2 or 8 pumps."""
    two = [s for s in scripts(5, pumps=2, sessions=20) if s.pump_id == "chair-1"]
    eight = [s for s in scripts(5, pumps=8, sessions=80) if s.pump_id == "chair-1"]
    assert two == eight[: len(two)]


def test_sessions_are_shared_out_exactly_and_faults_fit_the_wire() -> None:
    assert sum(sessions_of(i, 7, 1000) for i in range(7)) == 1000
    drawn = scripts(3, pumps=4, sessions=800)
    kinds = {s.fault.kind for s in drawn if s.fault is not None}
    assert kinds == set(ALL_FAULTS)  # the whole fault list is reached
    for s in drawn:
        fault = s.fault
        if fault is not None and s.pump_id == "chair-4":
            assert fault.kind not in TCP_FAULTS
        elif fault is not None:
            assert fault.kind not in RTU_FAULTS


def test_every_drawn_fault_is_one_the_simulator_accepts() -> None:
    """The parameters go to pumpsim's control channel as JSON: its checker takes them, and a
    probability is a JSON number (the channel refuses one written as text)."""
    from pumpsim.faults import check_fault

    for s in scripts(7, pumps=4, sessions=400):
        fault = s.fault
        if fault is None or fault.kind == "reboot":
            continue
        check_fault(fault.kind, True, dict(fault.params))
        probability = fault.params.get("probability")
        assert probability is None or isinstance(probability, float)


def test_the_mix_of_pump_kinds_comes_from_the_seed() -> None:
    from soak.kinds import draw_mix

    assert draw_mix(1, 4, 1) == draw_mix(1, 4, 1)
    seen = set()
    for seed in range(40):
        mix = draw_mix(seed, 6, 2)
        assert sum(mix.values()) == 6
        assert 1 <= mix["newera"] <= 3
        assert mix["dulco"] == 1  # pumpsim serves one DULCO flex
        assert mix["tcp"] >= 1
        assert mix["rtu"] <= 2
        seen.add(mix["newera"])
    assert seen == {1, 2, 3}  # the seed, not a constant, decides
    assert draw_mix(5, 1, 0) == {"newera": 0, "dulco": 0, "rtu": 0, "tcp": 1}
    assert draw_mix(5, 2, 0)["tcp"] == 1  # GIP-MB1 always keeps one chair


def test_a_new_era_pump_draws_its_own_faults_and_a_weight_its_syringe_holds() -> None:
    from pumpsim.newera import NeraFault

    from soak.kinds import KINDS, NEWERA_FAULTS

    rng = pump_stream(9, "chair-4")
    drawn = [draw_session(rng, "chair-4", n, "newera") for n in range(400)]
    faults = {s.fault.kind for s in drawn if s.fault is not None}
    assert faults == set(NEWERA_FAULTS) == {f.value for f in NeraFault}
    assert max(s.weight_kg for s in drawn) <= KINDS["newera"].max_weight_kg == 110
    for s in drawn:
        if s.fault is not None:
            params = set(s.fault.params)
            assert params <= ({"count"} if s.fault.kind in ("garble", "bad-crc") else set())


def test_every_kind_draws_weights_its_protocol_takes_without_an_override() -> None:
    """The soak's nurse gives no weight override: a weight outside the protocol's soft band
    is refused at program and its session never runs."""
    from pumpd.protocols import load_library
    from soak.kinds import KINDS

    library = load_library()
    for kind in KINDS.values():
        band = library.get(kind.protocol).protocol.limits.weight_kg
        drawn = [
            draw_session(pump_stream(3, "chair-1"), "chair-1", n, kind.name).weight_kg
            for n in range(300)
        ]
        assert band.soft_min <= min(drawn), kind.name
        assert max(drawn) <= kind.max_weight_kg <= band.soft_max, kind.name

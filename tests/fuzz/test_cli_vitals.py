"""Fuzzing what a nurse types into ``pumpctl vitals``, against a real daemon.

The real pumpctl command (click's runner, in a worker thread) talks over the real control
socket to tests/control's rig, where chair-1 has a programmed session. Blood pressures
come in every odd form ("132/84", "132 / 84", "132/", "١٣٢/٨٤", "1320/84"), counts too
("78", " 78", "+78", "7_8", "٧٨", "-1", huge). Any text gives either exit 0 with exactly
the values an independent, plain reading of the text gives, recorded in the session, or
exit 2 with an error naming the option — never a value misread (int() takes "7_8" as 78
and Arabic-Indic digits as ASCII ones), never a traceback, never a half-recorded entry.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from click.testing import CliRunner
from control.conftest import PROGRAM, Rig, rig  # noqa: F401 (the rig fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.cli.pumpctl import main

from .budget import examples, report

PLAIN_BP = re.compile(r"\s*([0-9]{2,3})\s*/\s*([0-9]{2,3})\s*", re.ASCII)
PLAIN_COUNT = re.compile(r"\s*([0-9]{1,4})\s*", re.ASCII)
LIMITS = {"hr": 400, "spo2": 100, "rr": 200}

blood_pressures = st.one_of(
    st.sampled_from(
        [
            *("132/84", "132 / 84", " 132/84 ", "132/", "/84", "132", "١٣٢/٨٤", "１３２/８４"),
            *("1320/84", "13/8", "132/84/60", "132\\84", "132-84", "132/84mmHg", "", " "),
        ]
    ),
    st.builds(lambda a, b: f"{a}/{b}", st.integers(-10, 1200), st.integers(-10, 1200)),
    st.text(max_size=12),
)
counts = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.sampled_from(["78", " 78", "+78", "7_8", "٧٨", "７８", "78.0", "0x4e", "1e2", "", "NaN"]),
    st.text(max_size=6),
)


def independent(options: dict[str, str]) -> dict[str, int] | None:
    """The values a plain reading gives, or None when some text is not plain or in range."""
    out: dict[str, int] = {}
    for name, text in options.items():
        if name == "bp":
            m = PLAIN_BP.fullmatch(text)
            if m is None:
                return None
            out["systolic_mmhg"], out["diastolic_mmhg"] = int(m[1]), int(m[2])
        else:
            m = PLAIN_COUNT.fullmatch(text)
            if m is None or int(m[1]) > LIMITS[name]:
                return None
            out[name] = int(m[1])
    return out


RECORD_FIELD = {"hr": "heart_rate_bpm", "spo2": "spo2_percent", "rr": "resp_rate_per_min"}


def recorded(rig: Rig) -> dict[str, Any] | None:  # noqa: F811
    s = rig.supervisor.controllers["chair-1"].session
    if s is None or s.data.last_vitals is None:
        return None
    v = s.data.last_vitals
    return {
        "systolic_mmhg": v.systolic_mmhg,
        "diastolic_mmhg": v.diastolic_mmhg,
        "hr": v.heart_rate_bpm,
        "spo2": v.spo2_percent,
        "rr": v.resp_rate_per_min,
        "count": s.data.vitals_recorded,
    }


@pytest.fixture
async def programmed(rig: Rig, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Rig:  # noqa: F811
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no staff login file of this host
    c = await rig.client()
    await c.ok("session.program", **PROGRAM)
    return rig


async def test_typed_vitals_are_recorded_exactly_or_refused_naming_the_option(
    programmed: Rig, pytestconfig: pytest.Config
) -> None:
    made = programmed
    loop = asyncio.get_running_loop()
    outcomes = {"recorded": 0, "refused": 0}

    def on_loop(fn: Any) -> Any:
        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(60)

    @settings(
        max_examples=examples(0.25),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        deadline=None,
    )
    @given(
        options=st.dictionaries(
            st.sampled_from(["bp", "hr", "spo2", "rr"]),
            st.none(),
            min_size=1,
        ).flatmap(
            lambda keys: st.fixed_dictionaries(
                {k: blood_pressures if k == "bp" else counts for k in keys}
            )
        )
    )
    def fuzz(options: dict[str, str]) -> None:
        before = on_loop(lambda: recorded(made))
        args = ["--socket", made.path, "vitals", "chair-1"]
        for name, text in options.items():
            args += [f"--{name}", text]
        result = CliRunner().invoke(main, args, catch_exceptions=True)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
        )
        expected = independent(options)
        after = on_loop(lambda: recorded(made))
        if result.exit_code == 0:
            outcomes["recorded"] += 1
            assert expected is not None, f"{options} was recorded but is not plain: {after}"
            assert after is not None
            assert after["count"] == (0 if before is None else before["count"]) + 1
            for key, value in expected.items():
                assert after[key] == value, (options, after)
            for name in {"hr", "spo2", "rr"} - set(options):
                assert after[name] is None, (options, after)
        else:
            outcomes["refused"] += 1
            assert result.exit_code == 2, (args, result.exit_code, result.output)
            assert "Traceback" not in result.output
            # The error names the option (pumpctl's own check) or the daemon's parameter.
            lowered_output = result.output.lower()
            assert any(
                f"--{n}" in lowered_output or f"{n}:" in lowered_output for n in options
            ) or ("vitals:" in lowered_output), result.output
            assert after == before, f"{options} was refused but something was recorded"

    await asyncio.to_thread(fuzz)
    report(pytestconfig, f"pumpctl vitals: {outcomes}")
    assert outcomes["recorded"] > 0
    assert outcomes["refused"] > 0


@pytest.mark.parametrize(
    ("option", "text", "says"),
    [
        ("--hr", "7_8", "not a whole number written with the digits 0-9"),
        ("--hr", "٧٨", "not a whole number written with the digits 0-9"),
        ("--spo2", "+97", "not a whole number written with the digits 0-9"),
        ("--spo2", "101", "more than 100"),
        ("--bp", "١٣٢/٨٤", "is not systolic/diastolic"),
    ],
)
def test_counts_int_would_misread_are_refused_by_pumpctl(option: str, text: str, says: str) -> None:
    """Regressions found by the fuzz test above; refused before any daemon is asked."""
    result = CliRunner().invoke(main, ["--socket", "/nonexistent", "vitals", "c1", option, text])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert option in result.output


async def test_a_spaced_blood_pressure_is_sent_as_the_daemon_reads_it(programmed: Rig) -> None:
    """Regression: "132 / 84" passed pumpctl's check but the daemon refused it with a regex."""
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["--socket", programmed.path, "vitals", "chair-1", "--bp", " 132 / 84 "],
    )
    assert result.exit_code == 0, result.output
    after = recorded(programmed)
    assert after is not None
    assert (after["systolic_mmhg"], after["diastolic_mmhg"]) == (132, 84)


async def test_the_daemon_refuses_non_ascii_digits_in_a_blood_pressure(programmed: Rig) -> None:
    c = await programmed.client()
    err = await c.err("session.vitals", pump="chair-1", bp="١٣٢/٨٤")
    assert err["data"]["param"] == "bp"
    assert recorded(programmed) is None

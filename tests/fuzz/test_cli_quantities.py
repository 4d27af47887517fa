"""Fuzzing what a nurse types: weights, doses and durations in every odd form.

Through the real `pumpctl plan` command (click's runner, the real protocol library): any
text gives exit 0 or 3 with a plan, or exit 2 with one sentence naming the problem — never
a traceback, never a plan computed from a misread number. A weight that parses is checked
against an independent reading of the same text, so "82,5kg" can never become 825 kg.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pumpd.cli.pumpctl import main
from safety.units import Dimension, InputError, parse_quantity

PROTOCOL = "ketamine-trd-standard"

numbers = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=3).map(lambda d: format(d, "f")),
    st.integers(min_value=-500, max_value=10**12).map(str),
    st.sampled_from(
        ["82,5", "1e2", "NaN", "inf", "-0", "+82", "٨٢", "8 2", "0x52", ".5", "5.", "", " "]
    ),
)
units = st.sampled_from(
    ["kg", "KG", "Kg", " kg", "lb", "lbs", "g", "mg", "mg/kg", "min", "h", "", "kilo", "µg/kg"]
)
typed = st.one_of(st.builds(lambda n, u: n + u, numbers, units), st.text(max_size=45))


def _independent_kg(text: str) -> Decimal | None:
    """A second, simpler reading of a plain '<number><kg|lb>' text."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(kg|lb)\s*", text)
    if m is None:
        return None
    value = Decimal(m.group(1))
    return value if m.group(2) == "kg" else value * Decimal("0.45359237")


@given(text=typed)
def test_any_text_parses_to_the_right_value_or_is_refused_specifically(text: str) -> None:
    try:
        q = parse_quantity(text, Dimension.BODY_WEIGHT)
    except InputError as err:
        message = str(err)
        assert message
        assert "\n" not in message
        assert "Traceback" not in message
    else:
        expected = _independent_kg(text)
        assert expected is not None, f"{text!r} parsed as {q.value} kg but is not plain"
        assert q.value == expected


@given(weight=typed, dose=st.one_of(st.none(), typed), duration=st.one_of(st.none(), typed))
def test_pumpctl_plan_never_crashes_on_odd_input(
    weight: str, dose: str | None, duration: str | None
) -> None:
    args = ["plan", "--protocol", PROTOCOL, "--weight", weight, "--json"]
    if dose is not None:
        args += ["--dose", dose]
    if duration is not None:
        args += ["--duration", duration]
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exception,
    )
    assert result.exit_code in (0, 2, 3), (args, result.exit_code, result.output)
    if result.exit_code == 2:
        assert "Error:" in result.output or "Usage:" in result.output
        assert "Traceback" not in result.output
    else:
        plan = json.loads(result.stdout)
        typed_kg = parse_quantity(weight, Dimension.BODY_WEIGHT).value
        # The plan shows the weight to 0.01 kg; it is the typed weight, not a misreading.
        assert abs(Decimal(plan["weight_kg"]) - typed_kg) <= Decimal("0.005"), (weight, plan)
        assert plan["refused"] is (result.exit_code == 3)


def test_a_comma_decimal_is_refused_not_misread() -> None:
    result = CliRunner().invoke(main, ["plan", "--protocol", PROTOCOL, "--weight", "82,5kg"])
    assert result.exit_code == 2
    assert "decimal comma" in result.output
    assert "82.5kg" in result.output

"""Fuzzing what a nurse types: weights, heights, doses and durations in every odd form.

Through the real `pumpctl plan` command (click's runner, the real protocol library): any
text gives exit 0 or 3 with a plan, or exit 2 with one sentence naming the problem — never
a traceback, never a plan computed from a misread number. A weight that parses is checked
against an independent reading of the same text, so "82,5kg" can never become 825 kg.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pumpd.cli.pumpctl import main
from safety.units import Dimension, InputError, parse_quantity

PROTOCOL = "ketamine-trd-standard"
PROTOCOLS = ["ketamine-trd-standard", "ketamine-trd-escalation", "ketamine-chronic-pain"]

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


FIELDS = ("weight", "height", "sex", "dose", "duration", "protocol")


def names_what_is_wrong(message: str, typed: list[str]) -> bool:
    """The refusal names a field, or quotes what was typed (as given or escaped)."""
    if any(f in message for f in FIELDS):
        return True
    for text in typed:
        cut = text.strip()[:40]
        if cut and (cut in message or repr(cut)[1:-1] in message):
            return True
        if not cut and "''" in message:  # nothing typed: the message quotes the nothing
            return True
    return False


@given(
    protocol=st.sampled_from(PROTOCOLS),
    weight=typed,
    dose=st.one_of(st.none(), typed),
    duration=st.one_of(st.none(), typed),
    height=st.one_of(st.none(), typed, st.sampled_from(["180cm", "1.8m", "71in", "180 CM"])),
    sex=st.one_of(
        st.none(), st.sampled_from(["male", "female", "Male", "f", ""]), st.text(max_size=6)
    ),
)
def test_pumpctl_plan_never_crashes_on_odd_input(
    protocol: str,
    weight: str,
    dose: str | None,
    duration: str | None,
    height: str | None,
    sex: str | None,
) -> None:
    args = ["plan", "--protocol", protocol, "--weight", weight, "--json"]
    typed = [weight]
    for option, value in (("--dose", dose), ("--duration", duration), ("--height", height)):
        if value is not None:
            args += [option, value]
            typed.append(value)
    if sex is not None:
        args += ["--sex", sex]
        typed.append(sex)
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exception,
    )
    assert result.exit_code in (0, 2, 3), (args, result.exit_code, result.output)
    if result.exit_code == 2:
        assert "Error:" in result.output or "Usage:" in result.output
        assert "Traceback" not in result.output
        assert names_what_is_wrong(result.output, typed), (args, result.output)
    else:
        plan = json.loads(result.stdout)
        typed_kg = parse_quantity(weight, Dimension.BODY_WEIGHT).value
        # The plan shows the weight to 0.01 kg; it is the typed weight, not a misreading.
        assert abs(Decimal(plan["weight_kg"]) - typed_kg) <= Decimal("0.005"), (weight, plan)
        assert plan["refused"] is (result.exit_code == 3)


# What a nurse types, one odd form per row: the weight in kg it must give, or the exit code
# and a piece of the one-sentence refusal.
ODD_FORMS: list[tuple[list[str], int, str]] = [
    (["--weight", "82 kg"], 0, '"weight_kg": "82'),
    (["--weight", "82kg"], 0, '"weight_kg": "82'),
    (["--weight", "  82kg\t"], 0, '"weight_kg": "82'),
    (["--weight", "180lb"], 0, '"weight_kg": "81.65'),
    (["--weight", "180 lb"], 0, '"weight_kg": "81.65'),
    (["--weight", "82 KG"], 2, "unit 'KG' in '82 KG' is not accepted: use one of kg, lb"),
    (["--weight", "82"], 2, "'82' has no unit"),
    (["--weight", "82,5kg"], 2, "decimal comma"),
    (["--weight", "٨٢kg"], 2, "is not a plain non-negative number"),
    (["--weight", "８２kg"], 2, "is not a plain non-negative number"),
    (["--weight", "-82kg"], 2, "is not a plain non-negative number"),
    (["--weight", "0kg"], 2, "weight must be greater than zero"),
    (["--weight", "1e2kg"], 2, "unit 'e2kg' in '1e2kg' is not accepted"),
    (["--weight", "9999999999kg"], 2, "at most 9 digits"),
    (["--weight", "82 kilo"], 2, "unit 'kilo'"),
    (["--weight", "82kg", "--dose", "0.5 mg/kg"], 0, '"dose_mg_per_kg": "0.5'),
    (["--weight", "82kg", "--dose", "500µg/kg"], 0, '"dose_mg_per_kg": "0.5'),
    (["--weight", "82kg", "--dose", "500μg/kg"], 0, '"dose_mg_per_kg": "0.5'),
    (["--weight", "82kg", "--dose", "0.5MG/KG"], 2, "unit 'MG/KG'"),
    (["--weight", "82kg", "--dose", "0.5 mg / kg"], 2, "unit 'mg / kg'"),
    (["--weight", "82kg", "--dose", "41mg"], 2, "dose '41mg' must be a dose per kg"),
    (["--weight", "82kg", "--duration", "40 min"], 0, '"duration_min": "40'),
    (["--weight", "82kg", "--duration", "0.75h"], 0, '"duration_min": "45'),
    (["--weight", "82kg", "--duration", "40mins"], 2, "unit 'mins'"),
    (["--weight", "82kg", "--duration", "40m"], 2, "is a length, expected a duration"),
    (["--weight", "82kg", "--duration", "2400s"], 2, "unit 's'"),
    (["--weight", "82kg", "--duration", "0min"], 2, "duration must be greater than zero"),
    (["--weight", "82kg", "--duration", "999999min"], 2, "duration of 999999 min is not plausible"),
    (["--weight", "82kg", "--duration", "101min"], 3, '"refused": true'),
    (["--weight", "82kg", "--duration", "40"], 2, "'40' has no unit"),
]


@pytest.mark.parametrize(
    ("args", "code", "says"), ODD_FORMS, ids=[" ".join(a) for a, _, _ in ODD_FORMS]
)
def test_odd_forms_give_the_value_or_a_specific_refusal(
    args: list[str], code: int, says: str
) -> None:
    result = CliRunner().invoke(main, ["plan", "--protocol", PROTOCOL, "--json", *args])
    assert result.exit_code == code, result.output
    assert says in result.output, result.output


def test_a_comma_decimal_is_refused_not_misread() -> None:
    result = CliRunner().invoke(main, ["plan", "--protocol", PROTOCOL, "--weight", "82,5kg"])
    assert result.exit_code == 2
    assert "decimal comma" in result.output
    assert "82.5kg" in result.output

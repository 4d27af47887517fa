"""Every limit verdict of an order carries its figures as data: the value, the limit it
crossed and the unit. An override record and the second person's approval name exactly
these, so each of the four band edges is checked whole, and the approval names them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_order import STANDARD, figures

from safety.order import approval_missing, check_order
from safety.verdicts import Severity, Verdict

D = Decimal


@pytest.mark.parametrize(
    ("quantity", "value", "expected"),
    [
        (
            "rate",
            D("200.5"),
            Verdict(
                "rate.above_hard_max",
                Severity.HARD,
                "The flow rate of 200.5 mL/h is above the hard limit of 200 mL/h; it cannot "
                "be given.",
                "order.rate_ml_h",
                "200.5",
                "200",
                "mL/h",
            ),
        ),
        (
            "rate",
            D("150.5"),
            Verdict(
                "rate.above_soft_max",
                Severity.SOFT,
                "The flow rate of 150.5 mL/h is above the usual maximum of 150 mL/h; it needs "
                "an override with a reason.",
                "order.rate_ml_h",
                "150.5",
                "150",
                "mL/h",
            ),
        ),
        (
            "rate",
            D("49.5"),
            Verdict(
                "rate.below_hard_min",
                Severity.HARD,
                "The flow rate of 49.5 mL/h is below the hard limit of 50 mL/h; it cannot be "
                "given.",
                "order.rate_ml_h",
                "49.5",
                "50",
                "mL/h",
            ),
        ),
        (
            "rate",
            D("99.5"),
            Verdict(
                "rate.below_soft_min",
                Severity.SOFT,
                "The flow rate of 99.5 mL/h is below the usual minimum of 100 mL/h; it needs "
                "an override with a reason.",
                "order.rate_ml_h",
                "99.5",
                "100",
                "mL/h",
            ),
        ),
    ],
)
def test_each_band_edge_carries_value_limit_and_unit(
    quantity: str, value: Decimal, expected: Verdict
) -> None:
    assert check_order(STANDARD, figures(**{quantity: value})) == (expected,)


def test_the_approval_names_the_figures_of_each_soft_verdict() -> None:
    pending = check_order(STANDARD, figures(rate=D("150.5"), duration=D(35)))
    assert approval_missing(pending).message == (
        "The override of rate.above_soft_max (150.5 mL/h, limit 150 mL/h); "
        "duration.below_soft_min (35 min, limit 40 min) needs a second person's approval "
        "first."
    )

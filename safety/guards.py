"""The session's patient-safety guards: weight re-entry, prime, adjust and discharge.

Each decides whether a nurse's command may go ahead and returns the hard verdicts that
refuse it, ``[]`` when it may. They live in the kernel, and not in ``pumpd/session/``,
because each of them can hurt a patient when wrong:

- :func:`weight_reentry`: a weight the second nurse does not confirm lets a kg/lb mix-up
  or a slipped digit through the double-check, and the dose is computed from that weight;
- :func:`prime_allowed`: a prime into a line connected to the patient is a bolus;
- :func:`adjust_allowed`: an adjustment must not change the drug or protocol mid-infusion,
  nor set a volume to be infused that is already used up;
- :func:`discharge_allowed`: a patient sent home before the protocol's observation time,
  or with an item of the discharge checklist unconfirmed; :func:`discharge_vitals`: or
  without a recent set of vital signs inside the pause band, taken during the observation.

Like the rest of ``safety/`` they are pure: the session passes the facts in (the recorded
weight, whether a start was sent, the volume delivered, the observed seconds measured on
its own clock) and obeys the verdicts. The rule names keep the ``session.`` prefix they
were written with, so the audit record of a refusal is unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal

from safety.plan import Plan
from safety.units import UNITS, Dimension, InputError, fmt, parse_quantity, symbols
from safety.verdicts import Severity, Verdict
from safety.vitals import VitalsReading, VitalsRules, breaches, missing_kinds


def _hard(code: str, message: str, rule: str) -> Verdict:
    return Verdict(code, Severity.HARD, message, rule)


WEIGHT_TOLERANCE_KG = Decimal("0.05")
"""How far the checker's weight, converted to kg, may lie from the programmed one.

Half the 0.1 kg step of a clinic scale: enough for a legitimate change of unit (the
programmed 82 kg typed as 180.78 lb is 82.0004 kg; as 180.8 lb, 82.0098 kg), too little to
let any real disagreement through (0.1 kg, a digit in the first decimal, is refused). The
dose is computed from the programmed weight only, so the tolerance never changes a dose;
docs/session.md has the reasoning."""


def _places(a: Decimal, b: Decimal) -> int:
    """Decimal places (two at least) at which ``a`` and ``b`` print differently."""
    places = 2
    while places < 12 and fmt(a, places) == fmt(b, places):
        places += 1
    return places


def weight_reentry(recorded_kg: Decimal, typed: object) -> list[Verdict]:
    """The checker types the weight again, with its unit; it must be the programmed weight.

    Converted to kg it may differ from the programmed weight by at most
    :data:`WEIGHT_TOLERANCE_KG` (a kg/lb mix-up is a 2.2-fold difference and a slipped
    digit at least 0.1 kg). The refusal shows the figure as typed, its value in kg and the
    programmed weight in the typed unit, each to as many places as tell them apart.
    """
    rule = "session.double_check.weight"
    if not isinstance(typed, str):
        return [_hard("double_check.weight_missing", "The checker must type the weight.", rule)]
    try:
        quantity = parse_quantity(typed, Dimension.BODY_WEIGHT)
    except InputError as exc:
        return [_hard("double_check.weight_unreadable", f"The checked weight: {exc}.", rule)]
    kg = quantity.value
    difference = abs(kg - recorded_kg)
    if difference <= WEIGHT_TOLERANCE_KG:
        return []
    symbol = next(u for u in symbols(Dimension.BODY_WEIGHT) if quantity.text.endswith(u))
    factor = UNITS[symbol].factor
    typed_number = kg / factor
    shown = _places(kg, recorded_kg)
    typed_text = f"{fmt(typed_number, 6)} {symbol}"
    programmed_text = f"{fmt(recorded_kg, shown)} kg"
    if factor != 1:
        in_typed = recorded_kg / factor
        typed_text += f" ({fmt(kg, shown)} kg)"
        programmed_text += f" ({fmt(in_typed, _places(in_typed, typed_number))} {symbol})"
    return [
        _hard(
            "double_check.weight_mismatch",
            f"The checked weight of {typed_text} differs from the programmed "
            f"{programmed_text} by {fmt(difference, _places(difference, WEIGHT_TOLERANCE_KG))}"
            f" kg, more than the {fmt(WEIGHT_TOLERANCE_KG)} kg allowed; check the patient's "
            "weight and program again.",
            rule,
        )
    ]


def prime_allowed(start_commanded: bool, line_disconnected: object) -> list[Verdict]:
    """Priming pushes fluid at a high rate: only into a line not connected to a patient."""
    rule = "session.prime"
    found: list[Verdict] = []
    if start_commanded:
        found.append(
            _hard(
                "prime.after_start",
                "The infusion has started: a prime now would be a bolus into the patient.",
                rule,
            )
        )
    if line_disconnected is not True:
        found.append(
            _hard(
                "prime.line_not_confirmed_disconnected",
                "Confirm that the line is disconnected from the patient before priming.",
                rule,
            )
        )
    return found


def adjust_allowed(
    protocol_key: str,
    protocol_sha256: str,
    new_key: str | None,
    new_sha256: str | None,
    plan: Plan | None,
    delivered_ul: object,
) -> list[Verdict]:
    """Same drug and protocol (stop first to change them), and more left than already given."""
    rule = "session.adjust"
    found: list[Verdict] = []
    if (new_key is not None and new_key != protocol_key) or (
        new_sha256 is not None and new_sha256 != protocol_sha256
    ):
        found.append(
            _hard(
                "adjust.protocol_change",
                f"An adjustment cannot change the protocol ({protocol_key} to {new_key}); "
                "stop this infusion and program a new session.",
                rule,
            )
        )
    if isinstance(delivered_ul, bool) or not isinstance(delivered_ul, int) or delivered_ul < 0:
        found.append(
            _hard("adjust.delivered_unknown", "The volume delivered so far is not known.", rule)
        )
    elif plan is not None and plan.vtbi_ul <= delivered_ul:
        found.append(
            _hard(
                "adjust.below_delivered",
                f"The adjusted volume of {plan.vtbi_ul} µL is not more than the "
                f"{delivered_ul} µL already delivered; stop the infusion instead.",
                rule,
            )
        )
    return found


def discharge_allowed(
    observed_s: float,
    observation_min: int,
    checklist: Sequence[str],
    confirmed: Collection[str],
) -> list[Verdict]:
    """The protocol's whole observation time has passed and every checklist item is ticked."""
    rule = "session.discharge"
    found: list[Verdict] = []
    needed_s = observation_min * 60
    if observed_s < needed_s:
        left_min = (needed_s - observed_s) / 60
        found.append(
            _hard(
                "discharge.observation_too_short",
                f"The patient has been observed for {observed_s / 60:.1f} min; the protocol "
                f"requires {observation_min} min ({left_min:.1f} min to go).",
                rule,
            )
        )
    unknown = [item for item in confirmed if item not in checklist]
    if unknown:
        found.append(
            _hard(
                "discharge.checklist_unknown_item",
                f"Not on this protocol's checklist: {'; '.join(sorted(unknown))}.",
                rule,
            )
        )
    missing = [item for item in checklist if item not in confirmed]
    if missing:
        found.append(
            _hard(
                "discharge.checklist_incomplete",
                f"Not yet confirmed: {'; '.join(missing)}.",
                rule,
            )
        )
    return found


DISCHARGE_VITALS_ITEM = "vital signs within the pause band"
"""The checklist line the kernel computes (:func:`discharge_vitals`) instead of asking it."""


def discharge_vitals(
    rules: VitalsRules,
    reading: VitalsReading | None,
    age_s: float | None,
    during_observation: bool,
    max_age_min: int,
) -> list[Verdict]:
    """The vitals gate of a discharge, a fact and not a tick box: a complete set of vital
    signs recorded during the observation, at most ``max_age_min`` old, inside the
    protocol's pause band. ``age_s`` is measured on the session's own clock."""
    rule = "session.discharge.vitals"
    if reading is None or age_s is None or not during_observation:
        return [
            _hard(
                "discharge.vitals_missing",
                "No vital signs were recorded during the observation; record them before "
                "discharge.",
                rule,
            )
        ]
    missing = missing_kinds(rules, reading)
    if missing:
        return [
            _hard(
                "discharge.vitals_missing",
                f"The last vital signs lack {', '.join(missing)}; record a complete set "
                "before discharge.",
                rule,
            )
        ]
    found: list[Verdict] = []
    if age_s > max_age_min * 60:
        found.append(
            _hard(
                "discharge.vitals_stale",
                f"The last vital signs are {age_s / 60:.0f} min old; discharge needs a set no "
                f"older than {max_age_min} min.",
                rule,
            )
        )
    outside = breaches(rules.pause, reading)
    if outside:
        found.append(
            _hard(
                "discharge.vitals_out_of_band",
                "The last vital signs are outside the pause band: "
                + "; ".join(b.describe() for b in outside)
                + ".",
                rule,
            )
        )
    return found


def pump_fit(
    rate_ml_h: Decimal, vtbi_ul: int, max_rate_ml_h: Decimal | None, container_ul: int | None
) -> list[Verdict]:
    """The pump can run the order, and the prepared container holds what it asks for.

    Checked before anything is written to the pump. A rate above the pump's own reported
    maximum is refused by the pump at the start (or, worse, by a pump that clamps it,
    delivered slower than the record says); a volume to be infused beyond what the
    container can give runs the container dry mid-infusion, and the record then claims a
    dose the patient never got. ``container_ul`` is what the container prepared for this
    session can deliver to the patient. Either limit is None when not known (the pump not
    read yet: the start reads it again and checks then).
    """
    found: list[Verdict] = []
    if max_rate_ml_h is not None and rate_ml_h > max_rate_ml_h:
        found.append(
            Verdict(
                "pump.rate_above_max",
                Severity.HARD,
                f"The rate of {fmt(rate_ml_h)} mL/h is above this pump's maximum of "
                f"{fmt(max_rate_ml_h)} mL/h; use a pump that can run it, or a longer duration.",
                "order.pump_max_rate",
                fmt(rate_ml_h),
                fmt(max_rate_ml_h),
                "mL/h",
            )
        )
    if container_ul is not None and vtbi_ul > container_ul:
        found.append(
            Verdict(
                "order.vtbi_above_container",
                Severity.HARD,
                f"The volume to be infused of {fmt(Decimal(vtbi_ul) / 1000, 3)} mL is more than "
                f"the {fmt(Decimal(container_ul) / 1000, 3)} mL the prepared container can give; "
                "stop and program a new session with a new container.",
                "order.container_volume",
                fmt(Decimal(vtbi_ul) / 1000, 3),
                fmt(Decimal(container_ul) / 1000, 3),
                "mL",
            )
        )
    return found


def protocol_released(protocol_key: str, released: bool, simulation: bool) -> list[Verdict]:
    """Only a released protocol (its file listed in ``released.sha256``) treats a patient.

    A draft has not been through the clinic's review: its limits may be wrong, and nothing
    stops its file from changing under a running session. In simulation a draft is allowed
    (protocols are tried out there), and the session record says it was a draft.
    """
    if released or simulation:
        return []
    return [
        _hard(
            "protocol.not_released",
            f"The protocol {protocol_key} is a draft (its file is not in released.sha256); "
            "only a released protocol may be used for a patient.",
            "order.protocol_released",
        )
    ]

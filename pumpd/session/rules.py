"""The session's input checks and the wording around the kernel's verdicts; no safety rule.

Every guard that decides whether a command can hurt a patient is the kernel's:
``safety.start`` (start checks, double-check identity), ``safety.order`` and
``safety.plan`` (plan and order limits, overrides) and ``safety.guards`` (weight re-entry
at the double-check, prime after start, adjust, discharge), which the commands call
directly. What is left here is not a patient-safety decision: that a command names who
gave it (:func:`person`) and gives a reason in words (:func:`reason_text`); how the
kernel's findings are composed into one refusal (:func:`plan_or_refusal`,
:func:`start_override`); and :func:`double_check`, which hands the kernel's
``safety.start.check_double_check`` the two identities without case or spaces and words
its finding for the moment of the check.
"""

from __future__ import annotations

from collections.abc import Sequence

from safety.order import (
    Override,
    approval_missing,
    approval_pending,
    check_override,
    check_override_reason,
    override_requirement,
)
from safety.plan import Order, Patient, Plan, compute_plan
from safety.protocol import Protocol
from safety.start import check_double_check
from safety.units import InputError
from safety.verdicts import Severity, Verdict, refused

RULE = "session"


def hard(code: str, message: str, rule: str = RULE) -> Verdict:
    return Verdict(code, Severity.HARD, message, rule)


def person(field: str, value: object, what: str) -> list[Verdict]:
    """A command must say who gave it: the audit log records a person, never nobody."""
    if not isinstance(value, str) or not value.strip():
        return [hard(f"{field}.identity_missing", f"The {what} does not say who gave it.")]
    return []


def reason_text(code: str, value: object, what: str) -> list[Verdict]:
    if not isinstance(value, str) or not value.strip():
        return [hard(code, f"A {what} needs a reason in words.")]
    return []


def plan_or_refusal(
    protocol: Protocol, patient: Patient, order: Order, override: Override | None
) -> tuple[Plan | None, list[Verdict]]:
    """The kernel's plan and every verdict that stops it: hard limits, then the nurse's
    part of the override. A second person's approval may still be pending
    (:func:`pending_approval`): the order is accepted, and nothing that acts on it at the
    pump goes ahead until someone else has approved."""
    try:
        plan = compute_plan(protocol, patient, order)
    except InputError as exc:
        return None, [hard("order.input", f"The order cannot be calculated: {exc}.", "order.input")]
    if plan.refused:
        return plan, [v for v in plan.verdicts if v.severity is Severity.HARD]
    return plan, list(check_override_reason(plan.override, override))


def pending_approval(plan: Plan, override: Override | None) -> tuple[Verdict, ...]:
    """The plan's soft verdicts that await a second person's approval; () when none do."""
    if not approval_pending(plan.override, override):
        return ()
    return tuple(v for v in plan.verdicts if v.severity is Severity.SOFT)


def unapproved(plan: Plan, override: Override | None) -> list[Verdict]:
    """The refusal of a step that would act at the pump on an override not yet approved."""
    pending = pending_approval(plan, override)
    if pending:
        return [approval_missing(pending)]
    return list(check_override(plan.override, override))


def approved_as_shown(pending: Sequence[Verdict], shown: Sequence[str] | None) -> list[Verdict]:
    """The approver was shown exactly the codes now pending (when the caller says what it
    showed): an approval never covers a verdict its giver did not see."""
    if shown is None or sorted(shown) == sorted(v.code for v in pending):
        return []
    return [
        hard(
            "override.approval_not_as_shown",
            "What awaits approval changed after it was shown "
            f"({', '.join(v.code for v in pending) or 'nothing'}); look at it again.",
        )
    ]


def _norm(identity: str) -> str:
    return identity.strip().casefold()


_AT_CONFIRM = {
    "start.double_check.same_person": "The double-check must be done by a second person, "
    "not by the one who programmed the order.",
}


def double_check(programmed_by: str, checker: str) -> list[Verdict]:
    """A second, different person (compared without case or spaces) checks the order.

    The kernel's rule words its finding for the start; at the double-check itself the
    same code gets a sentence about programming, so the nurse reads what actually happened.
    """
    found = check_double_check(True, _norm(programmed_by), _norm(checker))
    return [Verdict(v.code, v.severity, _AT_CONFIRM.get(v.code, v.message), v.rule) for v in found]


def start_override(
    protocol: Protocol, verdicts: Sequence[Verdict], override: Override | None
) -> tuple[list[Verdict], tuple[Verdict, ...]]:
    """Hard start verdicts refuse; soft ones need the kernel's override check to pass.

    Returns the refusal and, when the starting nurse's override is complete but a second
    person must still approve it, the soft verdicts that await that approval.
    """
    if refused(verdicts):
        return [v for v in verdicts if v.severity is Severity.HARD], ()
    requirement = override_requirement(protocol, verdicts)
    if approval_pending(requirement, override):
        return [], tuple(v for v in verdicts if v.severity is Severity.SOFT)
    return list(check_override(requirement, override)), ()

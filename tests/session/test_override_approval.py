"""Soft verdicts that appear after programming: an adjustment and a soft start check wait
for a second person's :meth:`approve`, and nothing reaches the pump before it."""

from __future__ import annotations

from decimal import Decimal

from pumpd.protocols import LoadedProtocol
from pumpd.session import PumpCommand, State
from safety.order import Override
from safety.plan import Order
from safety.pump import PumpWarning

from .conftest import CHECKER, PROGRAMMER, Bedside, drive, library
from .test_guards import refused

S = State
LONGER = Order(duration_min=Decimal(70))  # 100 mL over 70 min: below the usual 100 mL/h
REASON = "patient dissociating, slower per psychiatrist"


def _adjust_needing_approval(state: State) -> tuple[Bedside, object]:
    b, s = drive(state)
    s.adjust(
        by=PROGRAMMER,
        reason="dissociation",
        order=LONGER,
        delivered_ul=1000,
        override=Override(
            by=PROGRAMMER,
            reason=REASON,
            codes=frozenset({"rate.below_soft_min", "duration.above_soft_max"}),
        ),
        at=b.at(),
    )
    return b, s


def test_an_adjustment_with_soft_verdicts_waits_for_the_second_person() -> None:
    b, s = _adjust_needing_approval(S.INFUSING)
    assert s.proposed_plan is not None
    soft = {v.code for v in s.proposed_plan.verdicts if v.severity.value == "soft"}
    assert soft == {"rate.below_soft_min", "duration.above_soft_max"}
    info = refused(s, lambda: s.confirm_adjust(by=PROGRAMMER, at=b.at()))
    assert info.codes == ("override.approval_missing",)
    refused(s, lambda: s.approve(by=PROGRAMMER, at=b.at()), "override.second_person_same")
    step = s.approve(
        by=CHECKER, shown=["rate.below_soft_min", "duration.above_soft_max"], at=b.at()
    )
    assert s.state is S.ADJUSTING
    assert step.command is not None
    assert step.command.kind is PumpCommand.SET_RATE
    assert step.audit_events == ("override.granted", "pump.command.requested")
    pending = s.data.pending_adjustment
    assert pending is not None
    assert pending.override is not None
    assert (pending.override.by, pending.override.second_by) == (PROGRAMMER, CHECKER)


def test_an_approved_adjustment_while_paused_becomes_the_plan() -> None:
    b, s = _adjust_needing_approval(S.PAUSED)
    step = s.approve(by=CHECKER, at=b.at())
    assert s.state is S.PAUSED
    assert step.command is None
    assert step.audit_events == ("override.granted", "session.adjusted")
    assert s.plan.duration_min == Decimal(70)


def test_an_adjustment_cannot_ask_for_more_than_the_container_holds() -> None:
    """A continuous infusion from a syringe prepared for 240 min cannot be made longer:
    the pump would run the container dry and the record claim a dose never given."""
    b, s = drive(S.INFUSING, library().get("ketamine-chronic-pain"))
    info = refused(
        s,
        lambda: s.adjust(
            by=PROGRAMMER,
            reason="patient wants a longer session",
            order=Order(duration_min=Decimal(300)),
            delivered_ul=1000,
            at=b.at(),
        ),
    )
    assert "order.vtbi_above_container" in info.codes
    s.adjust(
        by=PROGRAMMER,
        reason="slower for comfort",
        order=Order(dose_rate_mg_per_kg_h=Decimal("0.3")),
        delivered_ul=1000,
        at=b.at(),
    )
    assert s.proposed_plan is not None


def _battery_low(b: Bedside):  # type: ignore[no-untyped-def]
    pump = b.pump()
    return type(pump)(**{**_fields(pump), "warnings": PumpWarning.LOW_BATTERY})


def _fields(pump: object) -> dict[str, object]:
    return {name: getattr(pump, name) for name in pump.__dataclass_fields__}  # type: ignore[attr-defined]


BATTERY = Override(
    by=PROGRAMMER, reason="mains socket broken", codes=frozenset({"start.pump.battery_low"})
)


def test_a_soft_start_check_is_approved_by_a_second_person_before_the_start() -> None:
    b, s = drive(S.PRIMED)
    before_prime = s.data.volume_primed_ul
    refused(
        s,
        lambda: s.request_start(by=PROGRAMMER, pump=_battery_low(b), prior_sessions=(), at=b.at()),
        "override.missing",
    )
    step = s.request_start(
        by=PROGRAMMER, pump=_battery_low(b), prior_sessions=(), override=BATTERY, at=b.at()
    )
    assert step.command is None  # held: nothing goes to the pump
    assert s.state is S.PRIMED
    assert s.data.pending_start_override is not None
    assert s.data.volume_primed_ul == before_prime
    refused(
        s,
        lambda: s.approve(by=PROGRAMMER, pump=_battery_low(b), at=b.at()),
        "override.second_person_same",
    )
    step = s.approve(by=CHECKER, pump=_battery_low(b), shown=["start.pump.battery_low"], at=b.at())
    assert s.state is S.START_REQUESTED
    assert step.command is not None
    assert step.command.kind is PumpCommand.START
    assert step.audit_events == ("override.granted", "pump.command.requested")
    assert s.data.start_requested_by == PROGRAMMER
    assert s.data.start_override is not None
    assert s.data.start_override.second_by == CHECKER


def test_a_protocol_can_accept_the_reason_alone_for_a_low_battery() -> None:
    base = library().get("ketamine-trd-standard")
    proto = base.protocol.model_copy(
        update={"soft_override_reason_only": ("start.pump.battery_low",)}
    )
    b, s = drive(S.PRIMED, LoadedProtocol(proto, base.sha256, base.path, base.released))
    step = s.request_start(
        by=PROGRAMMER, pump=_battery_low(b), prior_sessions=(), override=BATTERY, at=b.at()
    )
    assert s.state is S.START_REQUESTED
    assert step.audit_events == ("override.granted", "pump.command.requested")

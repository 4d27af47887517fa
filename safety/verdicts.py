"""Verdicts: what a rule says about an order, a start or a tick, in words a nurse reads.

Every decision the kernel makes is carried as verdicts so that the caller can show the
nurse *why*, the audit log can record *which rule*, and a reviewer can trace a refusal back
to one function. Hard verdicts cannot be overridden; soft ones need an override reason (and,
where the protocol says so, a second person); notes are information.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.Enum):
    """How a verdict binds: ordered from least to most binding."""

    NOTE = "note"
    SOFT = "soft"
    HARD = "hard"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.NOTE: 0, Severity.SOFT: 1, Severity.HARD: 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's finding.

    ``code`` is a stable machine code (``dose.per_kg.above_hard_max``); ``rule`` names the
    rule that produced it (for traceability to docs/safety); ``message`` is one sentence
    with the value, the limit and the unit. A limit verdict also carries ``value``,
    ``limit`` and ``unit`` as data, so an override record can name exactly what was
    approved without parsing the sentence.
    """

    code: str
    severity: Severity
    message: str
    rule: str
    value: str | None = None
    limit: str | None = None
    unit: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "rule": self.rule,
        }
        for key in ("value", "limit", "unit"):
            if (figure := getattr(self, key)) is not None:
                out[key] = figure
        return out


def worst(verdicts: Iterable[Verdict]) -> Severity | None:
    """The most binding severity among ``verdicts``, or None when there are none."""
    ranks = [v.severity for v in verdicts]
    return max(ranks, key=lambda s: s.rank) if ranks else None


def refused(verdicts: Iterable[Verdict]) -> bool:
    """True when any verdict is hard: the order or start must not go ahead."""
    return any(v.severity is Severity.HARD for v in verdicts)


def needs_override(verdicts: Iterable[Verdict]) -> bool:
    """True when a soft verdict is present (and none is hard)."""
    vs = list(verdicts)
    return not refused(vs) and any(v.severity is Severity.SOFT for v in vs)

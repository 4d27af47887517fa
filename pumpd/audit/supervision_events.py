"""Payloads of what supervision raises while a session runs: alarms, reminders, vital signs
and the kernel's interlocks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pumpd.audit.vocabulary import BoundedText, Code, Payload


class AlarmRaised(Payload):
    alarm_code: Code
    priority: Literal["low", "medium", "high"]
    source: Literal["pump", "kernel", "vitals", "daemon"]
    message: BoundedText


class AlarmAcknowledged(Payload):
    alarm_code: Code
    note: BoundedText | None = None


class ReminderIssued(Payload):
    reminder_code: Code
    message: BoundedText
    priority: Literal["low", "medium", "high"] | None = None


class VitalsRecorded(Payload):
    systolic_mmhg: Annotated[int, Field(ge=0, le=400)] | None = None
    diastolic_mmhg: Annotated[int, Field(ge=0, le=300)] | None = None
    heart_rate_bpm: Annotated[int, Field(ge=0, le=350)] | None = None
    spo2_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    respiratory_rate_per_min: Annotated[int, Field(ge=0, le=120)] | None = None
    sedation_score: Annotated[int, Field(ge=-5, le=5)] | None = None
    source: Literal["manual", "monitor"]


class InterlockTriggered(Payload):
    """What the safety kernel decided on a tick, with its reason codes."""

    action: Literal["pause", "stop", "alarm", "refuse_start", "refuse_command"]
    reason_codes: Annotated[list[Code], Field(min_length=1)]
    detail: BoundedText | None = None

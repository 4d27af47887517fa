"""A failed command's alarm says whether the pump refused it or pumpd never sent it: a nurse
told "the pump refused" looks at the pump, one told "not sent" at the link or the order."""

from __future__ import annotations

import pytest

from pumpd.session import PumpCommand
from pumpd.session import State as S

from .conftest import drive


@pytest.mark.parametrize(
    ("sent", "words", "source"),
    [
        (True, "The pump refused the start command: REJECTED_STATE", "pump"),
        (False, "The start command was not sent to the pump: REJECTED_STATE", "daemon"),
    ],
)
def test_the_alarm_says_who_refused_the_command(sent: bool, words: str, source: str) -> None:
    b, s = drive(S.START_REQUESTED)
    s.command_failed(command=PumpCommand.START, detail="REJECTED_STATE", at=b.at(), sent=sent)
    assert s.state is S.ALARM
    (alarm,) = [a for a in s.data.alarms if a.code == "command.start.failed"]
    assert alarm.message == words
    assert alarm.source == source


def test_a_command_failed_without_saying_is_one_the_pump_refused() -> None:
    b, s = drive(S.START_REQUESTED)
    s.command_failed(command=PumpCommand.START, detail="REJECTED_STATE", at=b.at())
    assert s.data.alarms[-1].message.startswith("The pump refused the start command")

"""The session's refusals as the socket words them: command words a nurse knows.

The session names its edges (``request_start``, ``record_vitals``) and its device facts
(``alarm``, ``start_confirmed``); a nurse types ``pumpctl start`` and ``pumpctl vitals``,
and cannot give a device fact at all. Every nurse trigger must have a word, and every word
must be a method of the socket, so the two tables cannot drift apart.
"""

from __future__ import annotations

from pumpd.control.errors import as_rpc_error, command_word
from pumpd.control.methods import METHODS
from pumpd.control.rpc import Code
from pumpd.session import NURSE_TRIGGERS, CommandRefused, InvalidInState, State
from pumpd.session.states import allowed_triggers
from safety.verdicts import Severity, Verdict


def test_every_nurse_trigger_is_a_socket_method() -> None:
    for trigger in NURSE_TRIGGERS:
        assert f"session.{command_word(trigger)}" in METHODS, trigger


def test_not_possible_now_names_commands_not_session_edges() -> None:
    allowed = allowed_triggers(State.PROGRAMMED)
    assert "alarm" in allowed  # a device fact the session accepts in this state
    err = as_rpc_error(InvalidInState("request_start", "PROGRAMMED", allowed))
    assert err is not None
    assert err.code == Code.INVALID_STATE
    assert err.message == (
        "start is not possible while the session is PROGRAMMED; "
        "possible now: abort, confirm, note, program, vitals"
    )
    assert err.data["trigger"] == "request_start"  # the machine names stay in data
    assert "alarm" in err.data["allowed"]


def test_a_refusal_names_the_command_and_every_reason() -> None:
    verdicts = [
        Verdict("start.vitals.missing", Severity.HARD, "No baseline vitals.", "start.vitals"),
        Verdict("start.pump.not_primed", Severity.HARD, "Not primed.", "start.pump"),
    ]
    err = as_rpc_error(CommandRefused("request_start", verdicts))
    assert err is not None
    assert err.code == Code.REFUSED
    assert err.message == "start refused: No baseline vitals. Not primed."
    assert [v["code"] for v in err.data["verdicts"]] == [
        "start.vitals.missing",
        "start.pump.not_primed",
    ]


def test_possible_now_names_pumpctl_commands() -> None:
    from pumpd.cli.pumpctl import main

    commands = set(main.commands)
    for state in State:
        err = as_rpc_error(InvalidInState("note", state.value, allowed_triggers(state)))
        assert err is not None
        _, _, hint = err.message.partition("possible now: ")
        words = [] if hint == "nothing" else hint.split(", ")
        assert set(words) <= commands, (state, words)
    alarm = as_rpc_error(InvalidInState("resume", "ALARM", allowed_triggers(State.ALARM)))
    assert alarm is not None
    assert "ack" in alarm.message.split("possible now: ")[1].split(", ")
    assert "acknowledge" not in alarm.message

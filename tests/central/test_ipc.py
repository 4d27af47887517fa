"""What crosses the pipes between the daemon and its forwarding process, and how the
process answers what it does not understand (a real child, no centre needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpd.central.child import ChildGone, ForwarderChild
from pumpd.central.forwarder import Conflict, ForwardSettings, ForwardStatus
from pumpd.central.ipc import (
    ProtocolError,
    StepReply,
    decode_reply,
    decode_start,
    encode_reply,
    encode_start,
)
from pumpd.central.worker import EXIT_PROTOCOL

SETTINGS = ForwardSettings(
    url="postgresql+psycopg://pumpd_forward:s3cret@central.example/pumpd",
    site="clinic-north",
    batch_size=500,
    mark_file=Path("/var/lib/pumpd/forward.mark"),
    duty_cycle=0.5,
)


def test_the_start_line_carries_the_settings_and_the_database() -> None:
    line = encode_start(SETTINGS, "sqlite:////var/lib/pumpd/audit.db")
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_start(line) == (SETTINGS, "sqlite:////var/lib/pumpd/audit.db")


def test_a_reply_carries_the_status_and_a_conflict() -> None:
    conflict = Conflict("different_event", 42, "the centre holds another event")
    status = ForwardStatus(
        "clinic-north", "conflict", 41, 50, 9, 12.5, "x", conflict=conflict, shipped=41
    )
    reply = StepReply("conflict", status, conflict=conflict)
    assert decode_reply(encode_reply(reply)) == reply
    ok = StepReply("ok", replace_state(status), shipped=20, full=True)
    assert decode_reply(encode_reply(ok)) == ok


def replace_state(status: ForwardStatus) -> ForwardStatus:
    from dataclasses import replace

    return replace(status, state="behind", conflict=None, error=None)


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"outcome": "ok"}\n',
        b'{"outcome": "maybe", "status": {}, "shipped": 0, "full": false, "error": null, '
        b'"conflict": null}\n',
    ],
)
def test_a_reply_that_is_not_one_is_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(line)


async def test_the_process_ends_on_a_request_it_does_not_understand(tmp_path: Path) -> None:
    child = await ForwarderChild.start(
        SETTINGS, f"sqlite:///{tmp_path / 'audit.db'}"
    )  # no step yet: nothing is opened at the centre
    stdin = child._process.stdin  # the pipe, as a confused daemon would use it
    assert stdin is not None
    stdin.write(b"drop everything\n")
    await stdin.drain()
    assert await child.wait_closed(60) == EXIT_PROTOCOL
    with pytest.raises(ChildGone):
        await child.step()


async def test_the_process_ends_when_the_daemon_closes_its_pipe(tmp_path: Path) -> None:
    child = await ForwarderChild.start(SETTINGS, f"sqlite:///{tmp_path / 'audit.db'}")
    stdin = child._process.stdin
    assert stdin is not None
    stdin.close()
    assert await child.wait_closed(60) == 0

"""Bad input and bad clients: every malformed request gets a JSON-RPC error and changes
nothing; an overlong line closes only its own connection; a silent, slow, non-reading or
flooding client stalls neither other clients nor the pump loops; the socket file is
handled safely."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
from pathlib import Path

import pytest

from pumpd.control import ControlServer, ControlSocketError
from pumpd.control.rpc import MAX_LINE_BYTES

from .conftest import PROGRAM, Client, Rig

MALFORMED: list[tuple[bytes, int]] = [
    (b"not json\n", -32700),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "whoami"\n', -32700),
    (b"\xff\xfe\x00garbage\n", -32700),
    (b"[" * 50_000 + b"\n", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pump":NaN}}\n', -32700),
    (b"[]\n", -32600),
    (b'[{"jsonrpc":"2.0","id":1,"method":"whoami"}]\n', -32600),
    (b"42\n", -32600),
    (b'"whoami"\n', -32600),
    (b'{"jsonrpc":"1.0","id":1,"method":"whoami"}\n', -32600),
    (b'{"id":1,"method":"whoami"}\n', -32600),
    (b'{"jsonrpc":"2.0","method":"whoami"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":null,"method":"whoami"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":true,"method":"whoami"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":[1],"method":"whoami"}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":7}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":""}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"whoami","extra":1}\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"no.such.method"}\n', -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"__init__"}\n', -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":["chair-1"]}\n', -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pump":1}}\n', -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pmp":"chair-1"}}\n', -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"session.program","params":{"pump":"chair-1"}}\n', -32602),
    (
        b'{"jsonrpc":"2.0","id":1,"method":"session.vitals",'
        b'"params":{"pump":"chair-1","hr":78.5}}\n',
        -32602,
    ),
    (
        b'{"jsonrpc":"2.0","id":1,"method":"session.vitals",'
        b'"params":{"pump":"chair-1","hr":"78"}}\n',
        -32602,
    ),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"auth":"x"}}\n', -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"auth":{"token":"x"}}}\n', -32002),
]


def _state(rig: Rig) -> str | None:
    s = rig.supervisor.controllers["chair-1"].session
    return None if s is None else s.state.value


@pytest.mark.parametrize(("line", "code"), MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
async def test_malformed_requests_get_errors_and_change_nothing(
    rig: Rig, line: bytes, code: int
) -> None:
    c = await rig.client()
    answer = await c.raw(line)
    assert answer["jsonrpc"] == "2.0"
    assert answer["error"]["code"] == code, answer
    assert answer["error"]["data"]["kind"]
    assert _state(rig) is None
    assert (await c.ok("whoami"))["roles"] == ["nurse"]  # the connection still works


async def test_only_the_first_malformed_request_per_connection_is_audited(rig: Rig) -> None:
    c = await rig.client()
    for _ in range(50):
        assert (await c.raw(b"nope\n"))["error"]["code"] == -32700
    await c.ok("session.program", **PROGRAM)
    assert _state(rig) == "PROGRAMMED"
    denied = await rig.flushed_events(event_type="access.denied")
    assert [json.loads(e.payload)["reason_code"] for e in denied] == ["malformed"]
    assert rig.server.dispatcher.malformed >= 50


async def test_fuzzed_request_lines_never_crash_or_change_anything(rig: Rig) -> None:
    """Mutations of valid requests (seeded): every line gets one well-formed answer."""
    rng = random.Random(6)
    seeds = [
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": method_params})
        for m, method_params in (
            ("status", {"pump": "chair-1"}),
            ("session.confirm", {"pump": "chair-1", "weight": "80kg"}),
            ("session.stop", {"pump": "chair-1", "reason": "x"}),
            ("session.vitals", {"pump": "chair-1", "bp": "120/80"}),
        )
    ]
    c = await rig.client()
    for _ in range(400):
        text = bytearray(rng.choice(seeds).encode())
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(3)
            pos = rng.randrange(len(text))
            if op == 0:
                del text[pos]
            elif op == 1:
                text.insert(pos, rng.randrange(256))
            else:
                text[pos] = rng.choice(b'{}[]":,0123456789.-eE\\ntruefalsnul')
        line = bytes(text).replace(b"\n", b" ") + b"\n"
        answer = await c.raw(line)
        assert answer["jsonrpc"] == "2.0"
        assert ("result" in answer) != ("error" in answer)
    assert _state(rig) is None


async def test_an_overlong_line_closes_only_its_connection(rig: Rig) -> None:
    other = await rig.client()
    big = await rig.client()
    line = b'{"jsonrpc":"2.0","id":1,"method":"whoami","params":{"x":"' + b"a" * MAX_LINE_BYTES
    answer = await big.raw(line + b'"}}\n')
    assert answer["error"]["code"] == -32600
    assert "too large" in answer["error"]["message"]
    assert await asyncio.wait_for(big.reader.read(), 30) == b""  # closed by the server
    assert (await other.ok("whoami"))["roles"] == ["nurse"]


async def _polls_during(rig: Rig, seconds: float) -> int:
    ctl = rig.supervisor.controllers["chair-1"]
    before = ctl.polls
    await asyncio.sleep(seconds)
    return ctl.polls - before


async def test_slow_silent_and_non_reading_clients_stall_nobody(rig: Rig) -> None:
    # A slowloris: one byte at a time, never a newline.
    slow = await rig.client()

    async def dribble() -> None:
        for _ in range(10_000):
            slow.writer.write(b"{")
            await slow.writer.drain()
            await asyncio.sleep(0.01)

    # A flooder that never reads its answers (its socket buffers fill up).
    flood = await rig.client()
    request = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'

    async def pour() -> None:
        try:
            for _ in range(100_000):
                flood.writer.write(request * 50)
                await flood.writer.drain()
        except ConnectionError:
            return

    silent = await rig.client()  # connects and says nothing
    tasks = [asyncio.create_task(dribble()), asyncio.create_task(pour())]
    try:
        await asyncio.sleep(0.5)
        good = await rig.client()
        for _ in range(20):
            # Generous bound: an answer, not a speed.
            views = await asyncio.wait_for(good.ok("status"), 30)
            assert len(views) == 2
        assert await _polls_during(rig, 1.0) > 0
        assert silent.reader.at_eof() is False
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_connections_past_the_limit_are_refused_and_others_go_on(rig: Rig) -> None:
    server = rig.server
    server.max_connections = 3
    held = [await rig.client() for _ in range(3)]
    for c in held:
        await c.ok("whoami")
    extra = await rig.client()
    answer = await extra.raw(b'{"jsonrpc":"2.0","id":1,"method":"whoami"}\n')
    assert "too many connections" in answer["error"]["message"]
    assert (await held[0].ok("whoami"))["roles"] == ["nurse"]
    assert server.refused_connections >= 1


async def test_idle_connections_are_closed(rig: Rig) -> None:
    rig.server.idle_timeout_s = 0.3
    c = await rig.client()
    assert await asyncio.wait_for(c.reader.read(), 30) == b""


# -- the socket file ----------------------------------------------------------------------


async def test_a_live_socket_is_not_taken_over(rig: Rig) -> None:
    second = ControlServer(rig.ctx, path=rig.path, group=None)
    with pytest.raises(ControlSocketError, match="in use"):
        await second.start()
    c = await Client.connect(rig.path)  # the first server still answers
    try:
        assert (await c.ok("whoami"))["roles"] == ["nurse"]
    finally:
        await c.close()


async def test_a_stale_socket_is_replaced_and_a_plain_file_refused(rig: Rig) -> None:
    stale = str(Path(rig.path).with_name("stale.sock"))
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(stale)
    dead.close()  # a daemon that died: the file stays, nobody listens
    server = ControlServer(rig.ctx, path=stale, group=None)
    await server.start()
    try:
        assert oct(os.stat(stale).st_mode & 0o777) == oct(0o660)
        c = await Client.connect(stale)
        assert (await c.ok("whoami"))["roles"] == ["nurse"]
        await c.close()
    finally:
        await server.close()
    with pytest.raises(FileNotFoundError):  # close() removed its own file
        os.lstat(stale)

    plain = Path(rig.path).with_name("plain.sock")
    plain.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="not a socket"):
        await ControlServer(rig.ctx, path=str(plain), group=None).start()
    assert plain.read_text() == "not a socket"
    plain.unlink()


async def test_a_stop_is_answered_while_another_client_floods(rig: Rig) -> None:
    """The stop path: one nurse's stop goes through while a flood runs on another connection."""
    c = await rig.client()
    await c.ok("session.program", **PROGRAM)
    flood = await rig.client()

    async def pour() -> None:
        for _ in range(2000):
            await flood.call("status")

    pouring = asyncio.create_task(pour())
    try:
        t0 = time.monotonic()
        aborted = await asyncio.wait_for(
            c.ok("session.abort", pump="chair-1", reason="flood test"), 30
        )
        assert aborted["state"] == "ABORTED"
        assert time.monotonic() - t0 < 30  # a bound, not a speed check
    finally:
        pouring.cancel()
        await asyncio.gather(pouring, return_exceptions=True)

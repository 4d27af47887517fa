"""The daemon's handle on its forwarding process (pumpd/central/worker.py).

A plain child process on two pipes, driven from the event loop: starting it and asking
for a step never block the loop (asyncio's pipes), and the daemon holds it by its pid, so
stopping is a kill that waits for nothing — not for the centre, not for a step in flight.
Why a process and not a thread is in docs/central.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from pumpd.central.forwarder import ForwardSettings
from pumpd.central.ipc import (
    READY,
    STEP,
    ProtocolError,
    StepReply,
    decode_reply,
    encode_start,
)

EXIT_WAIT_S = 5.0
"""How long to wait for the exit status of a process whose pipe closed (it is dying)."""

_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID")
"""systemd's hand-overs are the daemon's alone."""


class ChildGone(Exception):
    """The forwarding process ended, or said something it should not have; it is dead now."""

    def __init__(self, detail: str, exit_code: int | None) -> None:
        super().__init__(detail)
        self.exit_code = exit_code


class ForwarderChild:
    """One forwarding process: started, asked for steps, killed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, settings: ForwardSettings, database: str) -> ForwarderChild:
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # isolated: no current directory, user site or PYTHON* variables
                "-m",
                "pumpd.central.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise ChildGone(f"cannot start the forwarding process: {exc}", None) from exc
        child = cls(process)
        try:
            await child._send(encode_start(settings, database))
            line = await child._read_line()
        except ChildGone:
            child.kill()
            raise
        if line != READY:
            child.kill()
            raise ChildGone(f"not ready: {line[:200]!r}", await child._exit_code())
        return child

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        return self._process.returncode

    async def step(self) -> StepReply:
        """One step in the process. Raises :class:`ChildGone` when the process is dead
        or answers nonsense (it is killed then)."""
        await self._send(STEP)
        line = await self._read_line()
        try:
            return decode_reply(line)
        except ProtocolError as exc:
            self.kill()
            raise ChildGone(str(exc), await self._exit_code()) from exc

    def kill(self) -> None:
        """SIGKILL, now; waits for nothing. A step in flight either committed at the centre
        or did not; the mark is never ahead of the centre either way."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def wait_closed(self, timeout_s: float = EXIT_WAIT_S) -> int | None:
        """The exit code, once the process has ended (None if it has not within
        ``timeout_s``). For tests and the benchmark; the daemon never waits."""
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._process.wait(), timeout_s)
        return None

    async def _send(self, data: bytes) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            code = await self._exit_code()
            raise ChildGone(f"the forwarding process ended (exit code {code})", code) from exc

    async def _read_line(self) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            line = await stdout.readline()
        except (ValueError, OSError) as exc:  # a line beyond the stream's limit, a read error
            self.kill()
            raise ChildGone(f"unreadable reply: {exc}", await self._exit_code()) from exc
        if not line:
            code = await self._exit_code()
            raise ChildGone(f"the forwarding process ended (exit code {code})", code)
        return line

    async def _exit_code(self) -> int | None:
        code = await self.wait_closed()
        if code is None:
            self.kill()
        return code

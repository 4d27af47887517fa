"""The forwarding process: ``python -m pumpd.central.worker``, started by the daemon only.

It owns the :class:`Forwarder` and its two engines (the site's log, read-only; the centre)
and does every step's batch work — reading the site's rows, building the batch's
parameters, psycopg, the hash checks, the mark's fsyncs — in an interpreter of its own, so
none of it holds the lock the daemon's pump loops share (docs/central.md). It steps only
when the daemon asks (the daemon paces the catch-up and owns lag, notices and alarms), and
ends when the daemon closes the pipe or kills it; a kill at any moment leaves the mark
exactly-once (pumpd/central/mark.py).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import BinaryIO

from pumpd.central.forwarder import CentreUnavailable, ForwardConflict, Forwarder
from pumpd.central.ipc import READY, STEP, StepReply, decode_start, encode_reply
from pumpd.db import make_engine

EXIT_PROTOCOL = 2
"""The daemon sent something this process does not understand."""


def step_reply(forwarder: Forwarder) -> StepReply:
    """One step, whatever happens, as a reply."""
    try:
        result = forwarder.step()
    except CentreUnavailable as exc:
        return StepReply("unavailable", forwarder.status(), error=str(exc)[:300])
    except ForwardConflict as exc:
        return StepReply("conflict", forwarder.status(), conflict=exc.conflict)
    except Exception as exc:  # a fault here is reported; the daemon decides what follows
        return StepReply("error", forwarder.status(), error=repr(exc)[:300])
    return StepReply("ok", forwarder.status(), shipped=result.shipped, full=result.full)


def serve(requests: BinaryIO, replies: BinaryIO) -> int:
    """Read the start line, then answer step after step until the pipe closes."""
    start = requests.readline()
    if not start:
        return 0
    settings, database = decode_start(start)
    engine = make_engine(database, pool_size=1, pool_pre_ping=False)
    forwarder = Forwarder(engine, settings)
    replies.write(READY)
    replies.flush()
    try:
        while True:
            request = requests.readline()
            if not request:
                return 0  # the daemon closed the pipe or is gone
            if request != STEP:
                print(f"pumpd forwarding process: unexpected request {request[:80]!r}")
                return EXIT_PROTOCOL
            replies.write(encode_reply(step_reply(forwarder)))
            replies.flush()
    finally:
        forwarder.close()
        engine.dispose()


def main() -> int:
    # A Ctrl-C at a terminal reaches the whole process group; the daemon decides when this
    # process ends (it kills it), not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The replies get stdout's descriptor; anything printed goes to stderr (the daemon's
    # journal), never into the protocol.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    sys.exit(main())

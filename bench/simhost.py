"""The simulator in a child process, driven by JSON lines on stdin (``python -m bench.simhost``).

The controller benchmark runs pumpsim here so that the simulator's CPU time is not counted
as the supervising side's, and so that every moment that matters is stamped by the
simulator itself: a fault is stamped (``time.monotonic()``) right after it was applied to
the pump model, a command right when the pump took it (pumpsim's command log). On Linux
``time.monotonic`` is ``CLOCK_MONOTONIC``, one clock for every process of the machine, so
these stamps compare directly with stamps taken in the benchmark process.

Protocol: one request per line, one reply per line, in order.
``{"op": "inject", "unit": 1, "fault": "runaway", "on": true, "factor": "1.5"}`` →
``{"ok": true, "t": <monotonic after the fault was applied>}``; ``{"op": "log", "since": i}``
→ the command log from index ``i``; ``{"op": "reboot", "unit": u}``; ``{"op": "cpu"}`` → this
process's CPU seconds; ``{"op": "quit"}``. The first line written is
``{"ready": true, "host": ..., "port": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any

from pumpsim.harness import Simulator


def _handle_newera(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    """The New Era line's ops: ``nera_inject`` (address, fault, on), ``nera_log`` (the
    requests heard and the alarms pushed, each from its index), ``nera_reboot`` (power
    loss: counters to 0, state stopped, ``A?R`` pushed)."""
    line = sim.newera
    assert line is not None
    op = request.get("op")
    if op == "nera_inject":
        line.inject(int(request["unit"]), str(request["fault"]), bool(request.get("on", True)))
        return {"ok": True, "t": time.monotonic()}
    if op == "nera_reboot":
        line.inject(int(request["unit"]), "power-loss")
        return {"ok": True, "t": time.monotonic()}
    heard, pushed = list(line.request_log), list(line.push_log)
    since, since_push = int(request.get("since", 0)), int(request.get("since_push", 0))
    return {
        "ok": True,
        "next": len(heard),
        "next_push": len(pushed),
        "records": [r.as_json() for r in heard[since:]],
        "pushed": [r.as_json() for r in pushed[since_push:]],
    }


def _handle(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if str(op).startswith("nera_"):
        return _handle_newera(sim, request)
    if op == "inject":
        sim.inject(
            int(request["unit"]),
            str(request["fault"]),
            bool(request.get("on", True)),
            factor=request.get("factor"),
        )
        return {"ok": True, "t": time.monotonic()}
    if op == "log":
        since = int(request.get("since", 0))
        records = sim.command_log()
        return {"ok": True, "next": len(records), "records": [r.as_json() for r in records[since:]]}
    if op == "reboot":
        sim.reboot(int(request["unit"]))
        return {"ok": True, "t": time.monotonic()}
    if op == "status":
        return {"ok": True, "status": sim.status(int(request["unit"]))}
    if op == "cpu":
        return {"ok": True, "cpu_s": time.process_time()}
    return {"ok": False, "error": f"unknown op {op!r}"}


async def _serve(pumps: int, rtu: bool = False, newera: int = 0) -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:  # a thread: stdin is a pipe, and nothing here may block the loop
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, "")

    async with Simulator(
        pumps=pumps,
        tcp=not rtu,
        rtu=rtu,
        time_scale=1.0,
        newera_pumps=newera,
    ) as sim:
        host, port = sim.tcp_address if sim.tcp_address is not None else ("", 0)
        ready = {"ready": True, "host": host, "port": port}
        ready |= {"rtu_path": sim.rtu_path, "newera_path": sim.newera_path}
        print(json.dumps(ready), flush=True)
        threading.Thread(target=read_stdin, daemon=True).start()
        while True:
            line = await lines.get()
            if not line:
                return
            request = json.loads(line)
            if request.get("op") == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return
            try:
                reply = _handle(sim, request)
            except Exception as exc:  # reported to the benchmark, which stops on it
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simhost")
    parser.add_argument("--pumps", type=int, default=1)
    parser.add_argument("--rtu", action="store_true", help="serve Modbus RTU on a pty, not TCP")
    parser.add_argument("--newera", type=int, default=0, help="New Era pumps on their own pty")
    args = parser.parse_args()
    asyncio.run(_serve(args.pumps, args.rtu, args.newera))


if __name__ == "__main__":
    main()

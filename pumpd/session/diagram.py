"""The session diagram, drawn from the machine itself so it cannot drift from the code.

It walks the events of :data:`pumpd.session.machine.MACHINE` (not the edge table it was
built from), so what is published is what ``transitions`` will actually do. Mermaid's
``stateDiagram-v2`` renders on GitHub without any tool installed.
"""

from __future__ import annotations

from collections import defaultdict

from .machine import MACHINE
from .states import DEVICE_TRIGGERS, State

HEADER = """\
# Session state diagram

Generated from the machine by `python -m pumpd.session --diagram`; do not edit by hand
(`tests/session/test_diagram.py` fails when this file and the machine disagree).
Device facts (reported by the controller after reading the pump) are marked `⚙`; the
other triggers are nurse commands. See [session.md](session.md) for what each one means.
"""


def _label(trigger: str) -> str:
    return f"⚙ {trigger}" if trigger in DEVICE_TRIGGERS else trigger


def edges() -> tuple[dict[tuple[str, str], list[str]], dict[str, list[str]]]:
    """State-changing edges (source, dest) -> triggers, and state-keeping triggers per state."""
    moving: dict[tuple[str, str], list[str]] = defaultdict(list)
    keeping: dict[str, list[str]] = defaultdict(list)
    for name, event in MACHINE.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                if transition.dest is None:
                    if name not in keeping[source]:
                        keeping[source].append(name)
                elif name not in moving[(source, transition.dest)]:
                    moving[(source, transition.dest)].append(name)
    return moving, keeping


def mermaid() -> str:
    moving, _ = edges()
    order = {s.value: i for i, s in enumerate(State)}
    lines = ["stateDiagram-v2", "    [*] --> PROGRAMMED", "    [*] --> VERIFIED : no double-check"]
    for (source, dest), triggers in sorted(
        moving.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])
    ):
        lines.append(f"    {source} --> {dest} : {' / '.join(_label(t) for t in triggers)}")
    lines += ["    DISCHARGED --> [*]", "    ABORTED --> [*]"]
    return "\n".join(lines)


def document() -> str:
    _, keeping = edges()
    rows = [
        f"| {state.value} | {', '.join(_label(t) for t in keeping[state.value])} |"
        for state in State
        if keeping.get(state.value)
    ]
    table = "\n".join(["| state | triggers accepted without a state change |", "|---|---|", *rows])
    return f"{HEADER}\n```mermaid\n{mermaid()}\n```\n\n{table}\n"

"""``pumpaudit``: the auditors' tool. Read-only; every read command also speaks ``--json``.

Exit status: 0 done (``verify``: chain intact), 1 ``verify`` found a break, 2 bad usage or
input, 3 the database cannot be opened or is at a schema this tool does not know, 4 ``fhir
--post``: the FHIR server could not be reached or refused the bundle.
Lists are streamed row by row (human lines or a JSON array written as it goes), so an
export of millions of events runs in constant memory.
"""

from __future__ import annotations

from pumpd.cli.audit import course, events, fhir, report, sessions, verify
from pumpd.cli.audit.group import main

COMMAND_MODULES = (verify, events, sessions, report, course, fhir)
"""One module per command family (``pumpd/cli/audit/``); importing each registers its
commands on ``main``."""

__all__ = ["main"]

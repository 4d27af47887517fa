"""The daemon's chain key: loading it, and deciding whether this start changes it.

A configured key that cannot be read stops the start-up (a deleted or loosened key file
must not quietly switch tamper evidence off). No key configured is allowed but loud. The
chain records which key hashes it: at start-up the daemon compares its key's id with the
one the chain's newest ``chain.key.changed`` names and, if they differ, writes a new one
as its first event (a rotation, a first key, or a key removed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, select

from pumpd.audit import ChainKey, KeyFileError
from pumpd.audit.schema import audit_event
from pumpd.config import DaemonConfig
from pumpd.db import reader

KEY_EVENT = "chain.key.changed"
NO_KEY_NOTICE = (
    "the audit chain is not keyed ([audit] key_file is not set): whoever can write the "
    "audit database can rewrite it without a trace; create a key with `pumpd audit keygen` "
    "(docs/audit.md)"
)
"""The standing warning of a daemon without a key: log, STATUS=, ``pumpctl status``."""
NO_KEY_STATUS = "AUDIT CHAIN NOT KEYED"


def load_chain_key(config: DaemonConfig) -> ChainKey | None:
    """The configured key, or None when none is configured; a configured key that cannot
    be used raises :class:`KeyFileError` naming the setting."""
    if config.audit_key_file is None:
        return None
    try:
        return ChainKey.load(config.audit_key_file)
    except KeyFileError as exc:
        raise KeyFileError(
            f"audit.key_file: {exc}. pumpd does not start with a configured chain key it "
            "cannot use; restore the file (owned by the service user, mode 0400 or 0600), "
            "or remove key_file to run unkeyed"
        ) from exc


@dataclass(frozen=True, slots=True)
class ChainKeyState:
    """What the chain says about its key: whether any ``chain.key.changed`` exists, and
    the key id the newest one names (None: no key)."""

    recorded: bool
    key_id: str | None


def chain_key_state(engine: Engine) -> ChainKeyState:
    with reader(engine).connect() as conn:
        row = conn.execute(
            select(audit_event.c.payload)
            .where(audit_event.c.event_type == KEY_EVENT)
            .order_by(audit_event.c.seq.desc())
            .limit(1)
        ).first()
    if row is None:
        return ChainKeyState(recorded=False, key_id=None)
    value = json.loads(row[0]).get("new_key_id")
    return ChainKeyState(recorded=True, key_id=value if isinstance(value, str) else None)


def key_change(state: ChainKeyState, key: ChainKey | None) -> dict[str, Any] | None:
    """The payload of the ``chain.key.changed`` this start must write, or None."""
    new_id = None if key is None else key.key_id
    old_id = state.key_id
    if new_id == old_id:
        return None
    reason: Literal["first_key", "rotated", "key_removed"]
    if old_id is None:
        reason = "first_key"
    elif new_id is None:
        reason = "key_removed"
    else:
        reason = "rotated"
    payload: dict[str, Any] = {"reason_code": reason}
    if old_id is not None:
        payload["old_key_id"] = old_id
    if new_id is not None:
        payload["new_key_id"] = new_id
    return payload

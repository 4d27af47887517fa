"""``newest_event``: the last matching event, read as one row, on both back ends.

Restart recovery asks it for each pump's newest ``session.checkpointed``; it must give the
same event as walking every match in order and keeping the last."""

from __future__ import annotations

from pumpd.audit.queries import EventFilter, iter_events, newest_event
from pumpd.audit.store import AuditStore

from .factories import filler, programmed


def _last(store: AuditStore, flt: EventFilter) -> int | None:
    with store.engine.connect() as conn:
        seqs = [e.seq for e in iter_events(conn, flt)]
    return seqs[-1] if seqs else None


def _newest(store: AuditStore, flt: EventFilter) -> int | None:
    with store.engine.connect() as conn:
        found = newest_event(conn, flt)
    return None if found is None else found.seq


def test_newest_event_is_the_last_match_of_the_walk(store: AuditStore) -> None:
    for i in range(40):
        store.append(programmed(f"S-{i}", f"P-{i % 3}", pump=f"pump-{i % 4}"))
        store.append(filler(i))
    filters = [
        EventFilter(pump="pump-1", event_type="session.programmed"),
        EventFilter(pump="pump-3"),
        EventFilter(patient="P-2"),
        EventFilter(event_type="vitals.recorded"),
        EventFilter(session="s-5", event_type="vitals.*"),
        EventFilter(),
        EventFilter(pump="pump-9"),  # no match
        EventFilter(pump="pump-1", event_type="session.checkpointed"),  # no match
    ]
    for flt in filters:
        assert _newest(store, flt) == _last(store, flt), flt
    assert _newest(store, EventFilter(pump="pump-1", event_type="session.programmed")) == 75
    assert _newest(store, EventFilter(pump="pump-9")) is None


def test_newest_event_returns_the_whole_record(store: AuditStore) -> None:
    store.append(programmed("S-1", "P-1", pump="pump-1"))
    written = store.append(programmed("S-2", "P-1", pump="pump-1"))
    with store.engine.connect() as conn:
        found = newest_event(conn, EventFilter(pump="pump-1"))
    assert found == written

"""The forwarder against the real PostgreSQL as the centre, two SQLite sites at once:
exactly once and in order through duplicates, replays, a backend killed mid-batch, an
unreachable centre; a rewritten site caught at both ends; a site id collision refused."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pumpd.audit import GENESIS_HASH, Hasher, NewEvent, encode_row
from pumpd.central.forwarder import CentreUnavailable, ForwardConflict
from pumpd.central.mark import load_mark

from .conftest import NURSE, Centre, Site, drain, in_thread

pytestmark = pytest.mark.postgres


def test_two_sites_arrive_exactly_once_in_order(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    north, south = make_site("clinic-north"), make_site("clinic-south")
    north.append(120)
    south.append(75)
    fn, fs = north.forwarder(), south.forwarder()
    assert drain(fn) == 120
    assert drain(fs) == 75
    north.append(30)
    assert drain(fn) == 30
    assert centre.events("clinic-north") == north.rows()
    assert centre.events("clinic-south") == south.rows()
    assert centre.conflicts() == []
    mark = load_mark(north.settings.mark_file)
    assert mark is not None
    assert mark.seq == 150
    assert mark.event_hash == north.rows()[-1][-1]
    st = fn.status()
    assert (st.state, st.acked_seq, st.lag_events, st.lag_s) == ("current", 150, 0, 0.0)


def test_duplicate_and_replayed_batches_are_taken_once(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-north")
    site.append(80)
    assert drain(site.forwarder()) == 80
    # A mark lost (or lagging behind a COMMIT): everything is sent again.
    site.settings.mark_file.unlink()
    replay = site.forwarder()
    assert drain(replay) == 80  # acknowledged as duplicates
    # New events behind a lost mark, delivered twice (a replayed batch).
    site.append(10)
    site.settings.mark_file.unlink()
    assert drain(site.forwarder()) == 90
    site.settings.mark_file.unlink()
    assert drain(site.forwarder()) == 90
    assert centre.events("clinic-north") == site.rows()
    assert centre.conflicts() == []


def test_backend_killed_mid_batch_then_exactly_once(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-north", batch_size=40)
    site.append(30)
    forwarder = site.forwarder()
    assert drain(forwarder) == 30
    site.append(40)  # the next batch: seq 31..70
    # Hold seq 50 in an open transaction (triggers off, as a superuser): the forwarder's
    # INSERT takes 31..49 and then waits on the key of 50 — cut in the middle of a batch.
    blocker = psycopg.connect(centre.conninfo)
    try:
        blocker.execute("SET session_replication_role = replica")
        blocker.execute(
            "INSERT INTO central_event SELECT site, 50, occurred_at, mono_ns, host, "
            "instance_id, actor_kind, actor_uid, actor_name, actor_role, pump_id, session_id, "
            "patient_ref, event_type, correlation_id, simulated, payload, repeat('a', 64), "
            "repeat('b', 64), now() FROM central_event WHERE site = 'clinic-north' AND seq = 1"
        )
        thread, out = in_thread(forwarder.step)
        deadline = time.monotonic() + 20
        while not centre.admin(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pumpd-forward' "
            "AND wait_event_type = 'Lock'"
        ):
            assert time.monotonic() < deadline, "the forwarder never reached the held row"
            time.sleep(0.05)
        assert centre.terminate_forwarders() >= 1
        thread.join(20)
        assert isinstance(out[0], CentreUnavailable)
    finally:
        blocker.rollback()
        blocker.close()
    assert [r[0] for r in centre.events("clinic-north")] == list(range(1, 31))
    assert load_mark(site.settings.mark_file).seq == 30  # type: ignore[union-attr]
    assert forwarder.status().state == "unreachable"
    assert drain(forwarder) == 40
    assert centre.events("clinic-north") == site.rows()
    assert centre.conflicts() == []


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_centre_then_catch_up(centre: Centre, make_site: Callable[..., Site]) -> None:
    site = make_site("clinic-north")
    site.append(20)
    assert drain(site.forwarder()) == 20
    site.append(60)
    away = site.forwarder(
        url=f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere", connect_timeout_s=1.0
    )
    for _ in range(3):
        with pytest.raises(CentreUnavailable):
            away.step()
    st = away.status()
    assert (st.state, st.acked_seq, st.local_seq, st.lag_events) == ("unreachable", 20, 80, 60)
    assert st.lag_s >= 0
    assert load_mark(site.settings.mark_file).seq == 20  # type: ignore[union-attr]
    back = site.forwarder()
    assert drain(back) == 60
    assert centre.events("clinic-north") == site.rows()


def _rewrite(site: Site, seq: int) -> None:
    """What someone with the file and no key can do: change an event, drop the
    triggers, and recompute every later (unkeyed) hash so the local chain verifies."""
    con = sqlite3.connect(site.path, isolation_level=None)
    try:
        con.execute("DROP TRIGGER audit_event_no_update")
        con.execute("DROP INDEX uq_audit_event_prev_hash")
        con.execute("DROP INDEX uq_audit_event_event_hash")
        rows = con.execute(
            "SELECT seq, occurred_at, mono_ns, host, instance_id, actor_kind, actor_uid, "
            "actor_name, actor_role, pump_id, session_id, patient_ref, event_type, "
            "correlation_id, simulated, payload, prev_hash, event_hash FROM audit_event "
            "WHERE seq >= ? ORDER BY seq",
            (seq - 1,),
        ).fetchall()
        prev = rows[0][17] if seq > 1 else GENESIS_HASH
        hasher = Hasher()
        for row in rows[1:] if seq > 1 else rows:
            payload = row[15]
            if row[0] == seq:
                payload = payload.replace("event", "EVENT")
            new = [*row[:15], payload, prev]
            digest = hasher.digest(encode_row(new))
            con.execute(
                "UPDATE audit_event SET payload = ?, prev_hash = ?, event_hash = ? WHERE seq = ?",
                (payload, prev, digest, row[0]),
            )
            prev = digest
    finally:
        con.close()


def test_site_rewritten_after_forwarding_is_caught_at_both_ends(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-north")
    site.append(40)
    forwarder = site.forwarder()
    assert drain(forwarder) == 40
    before = centre.events("clinic-north")
    _rewrite(site, 25)
    site.append(5)
    with pytest.raises(ForwardConflict) as caught:
        forwarder.step()
    assert caught.value.conflict.kind == "local_rewrite"
    assert caught.value.conflict.seq == 40
    assert forwarder.status().state == "conflict"
    # The centre was offered the rewritten row and recorded it; it kept its own copy.
    assert ("clinic-north", 40, "different_event") in centre.conflicts()
    assert centre.events("clinic-north") == before
    # With the mark gone too, the rewritten rows are offered from the start: refused.
    site.settings.mark_file.unlink()
    fresh = site.forwarder()
    with pytest.raises(ForwardConflict) as again:
        drain(fresh)
    assert again.value.conflict.kind == "different_event"
    assert again.value.conflict.seq == 25
    assert load_mark(site.settings.mark_file).seq == 24  # type: ignore[union-attr]
    assert ("clinic-north", 25, "different_event") in centre.conflicts()
    assert centre.events("clinic-north") == before


def test_new_events_chained_to_a_rewritten_row_are_refused_by_the_centre(
    centre: Centre, make_site: Callable[..., Site], tmp_path: Path
) -> None:
    """The centre's own continuity check: a row whose prev_hash is not the held hash."""
    site = make_site("clinic-north")
    site.append(10)
    assert drain(site.forwarder()) == 10
    _rewrite(site, 10)
    site.append(3)
    row = site.rows()[10]  # seq 11, chained to the rewritten 10
    with psycopg.connect(centre.conninfo, autocommit=True) as conn:
        taken = conn.execute(
            "INSERT INTO central_event (site, seq, occurred_at, mono_ns, host, instance_id, "
            "actor_kind, actor_uid, actor_name, actor_role, pump_id, session_id, patient_ref, "
            "event_type, correlation_id, simulated, payload, prev_hash, event_hash) "
            "VALUES ('clinic-north', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s) ON CONFLICT (site, seq) DO NOTHING RETURNING seq",
            row,
        ).fetchall()
    assert taken == []
    assert ("clinic-north", 11, "chain_break") in centre.conflicts()


def test_site_id_collision_is_refused(centre: Centre, make_site: Callable[..., Site]) -> None:
    north = make_site("north")
    impostor = make_site("impostor", site_id="north")
    north.append(15)
    impostor.append(15)
    assert drain(north.forwarder()) == 15
    forwarder = impostor.forwarder()
    with pytest.raises(ForwardConflict) as caught:
        forwarder.step()
    assert caught.value.conflict.kind == "identity"
    assert ("north", 1, "identity") in centre.conflicts()
    assert centre.events("north") == north.rows()
    assert forwarder.status().state == "conflict"
    assert load_mark(impostor.settings.mark_file) is None


def test_every_kind_of_value_arrives_as_the_site_holds_it(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    """The batch crosses as one JSON document: text with quotes, backslashes, control
    characters and characters beyond the BMP, NULLs, integers and booleans arrive
    unchanged (the centre's arrival check and the row comparison both see them)."""
    site = make_site("north")
    odd = 'Zoë "ß" \\ \t\n 💉 {"a": [1]} \u2028'
    site.store.append_many(
        [
            NewEvent(
                "daemon.announced",
                {"notice_code": "test.filler", "message": odd},
                NURSE,
                pump_id="chair-1",
                session_id="S-1",
            ),
            NewEvent("daemon.announced", {"notice_code": "test.filler", "message": "-"}, NURSE),
        ]
    )
    site.append(3)
    assert drain(site.forwarder()) == 5
    assert centre.events("north") == site.rows()
    assert centre.conflicts() == []

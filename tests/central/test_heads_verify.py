"""Published heads at the centre, and ``pumpaudit verify --site`` catching a site whose log
was rewritten: after forwarding (the centre's conflict record) and before it (a head that
forks from the forwarded chain)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from pumpd.central.forwarder import ForwardConflict
from pumpd.central.heads import CentralHeadSink
from pumpd.cli import pumpaudit

from .conftest import Centre, Site, drain
from .test_forward import _rewrite

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class ChainHead:
    """The shape of the daemon's published head."""

    seq: int
    event_hash: str
    ts: datetime
    key_id: str | None
    mac: str | None


def _verify(centre: Centre, site: str) -> tuple[int, str]:
    done = CliRunner().invoke(pumpaudit.main, ["--database", centre.url, "--site", site, "verify"])
    return done.exit_code, done.output


async def _published(sink: CentralHeadSink, count: int) -> None:
    for _ in range(200):
        if sink.published >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} heads not published (pending {sink.pending})")


async def test_heads_reach_the_centre_and_a_fork_is_caught(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-north")
    site.append(12)
    drain(site.forwarder())
    rows = site.rows()
    sink = CentralHeadSink("clinic-north", centre.url)
    try:
        now = datetime.now(UTC)
        await sink.publish(ChainHead(6, rows[5][-1], now, "k-2026", "ab" * 32))
        await sink.publish(ChainHead(12, rows[11][-1], now, "k-2026", "cd" * 32))
        await _published(sink, 2)
        held = centre.admin(
            "SELECT seq, event_hash, key_id, mac FROM central_head WHERE site = %s ORDER BY id",
            ("clinic-north",),
        )
        assert held == [
            (6, rows[5][-1], "k-2026", "ab" * 32),
            (12, rows[11][-1], "k-2026", "cd" * 32),
        ]
        assert _verify(centre, "clinic-north")[0] == 0
        # A head naming another event 9 than the one forwarded: rewritten before forwarding.
        await sink.publish(ChainHead(9, "9" * 64, now, "k-2026", "ef" * 32))
        await _published(sink, 3)
    finally:
        sink.close()
    code, output = _verify(centre, "clinic-north")
    assert code == 1
    assert "BROKEN at seq 9 (site clinic-north): head_fork" in output


async def test_heads_wait_while_the_centre_is_away() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sink = CentralHeadSink("clinic-north", f"postgresql://postgres@127.0.0.1:{port}/c")
    try:
        await sink.publish(ChainHead(1, "a" * 64, datetime.now(UTC), None, None))
        await asyncio.sleep(0.5)
        assert sink.pending == 1
        assert sink.published == 0
    finally:
        sink.close()


def test_verify_at_the_centre_names_a_site_rewritten_after_forwarding(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site, other = make_site("clinic-north"), make_site("clinic-south")
    site.append(30)
    other.append(30)
    drain(site.forwarder())
    drain(other.forwarder())
    assert _verify(centre, "clinic-north")[0] == 0
    _rewrite(site, 17)
    site.settings.mark_file.unlink()  # the rebuilt site forgets its mark too
    with pytest.raises(ForwardConflict):
        drain(site.forwarder())
    code, output = _verify(centre, "clinic-north")
    assert code == 1
    assert "BROKEN at seq 17 (site clinic-north): conflict:different_event" in output
    # The centre's own copy is intact, and the other site is untouched.
    assert "30 events, chain intact" in output
    assert _verify(centre, "clinic-south")[0] == 0

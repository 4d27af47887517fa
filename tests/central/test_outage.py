"""The central server stopped and started while a site forwards (marker ``pg_outage``: it
stops the shared local PostgreSQL, so ``make test`` runs it alone, after the others). The
same code path without stopping the server: tests/central/test_forward.py (a closed port,
backends terminated mid-batch)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dbloss.conftest import postgres_stopped

from pumpd.central.forwarder import CentreUnavailable
from pumpd.central.mark import load_mark

from .conftest import Centre, Site, drain, require_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.pg_outage]


def test_server_stopped_and_started_then_exactly_once(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-north", batch_size=25)
    site.append(40)
    forwarder = site.forwarder()
    assert drain(forwarder) == 40
    with postgres_stopped(require_postgres()) as start:
        site.append(60)  # the site keeps working: its log is local
        for _ in range(2):
            with pytest.raises(CentreUnavailable):
                forwarder.step()
        status = forwarder.status()
        assert (status.state, status.acked_seq, status.lag_events) == ("unreachable", 40, 60)
        start()  # as early as possible: the server is shared
    assert drain(forwarder) == 60  # the same forwarder, its pool replaced
    assert centre.events("clinic-north") == site.rows()
    assert centre.conflicts() == []
    mark = load_mark(site.settings.mark_file)
    assert mark is not None
    assert mark.seq == 100

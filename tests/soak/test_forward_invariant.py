"""The soak's forwarding invariant (``--forward``): the centre holds exactly the site's
events, in order, with equal hashes, and recorded no conflict; each departure is named."""

from __future__ import annotations

from soak.evidence import Evidence
from soak.invariants import check_forwarding


def _chain(n: int) -> list[tuple[int, str, str]]:
    hashes = ["0" * 64] + [f"{i:064x}" for i in range(1, n + 1)]
    return [(i, hashes[i - 1], hashes[i]) for i in range(1, n + 1)]


def _ev(forwarded: list[tuple[int, str, str]] | None, site: int = 5, **kw: object) -> Evidence:
    ev = Evidence(scale=1.0, heartbeat_timeout_s=3.0, units={})
    ev.forwarded = forwarded
    ev.site_chain = _chain(site)
    for key, value in kw.items():
        setattr(ev, key, value)
    return ev


def test_off_without_forward_and_clean_when_equal() -> None:
    assert check_forwarding(_ev(None)) == []
    assert check_forwarding(_ev(_chain(5))) == []


def test_each_departure_is_named() -> None:
    assert [v.kind for v in check_forwarding(_ev(_chain(4)))] == ["forward.count"]
    changed = _chain(5)
    changed[2] = (3, changed[2][1], "f" * 64)
    assert [v.kind for v in check_forwarding(_ev(changed))] == ["forward.hash"]
    twice = [*_chain(3), _chain(3)[2], *_chain(5)[3:]]
    assert "forward.order" in [v.kind for v in check_forwarding(_ev(twice))]
    conflict = check_forwarding(
        _ev(_chain(5), central_conflicts=[("soak-site", 3, "different_event")])
    )
    assert [v.kind for v in conflict] == ["forward.conflict"]

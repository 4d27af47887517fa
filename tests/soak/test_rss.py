"""A daemon life's RSS figures: what it keeps, apart from the PIN hashes in flight."""

from __future__ import annotations

from soak.world import RSS_FLOOR_WINDOW_S, DaemonLife

MIB = 1024


def test_floor_is_the_low_of_the_last_window_and_peak_the_highest() -> None:
    life = DaemonLife(1, pid=1, started_mono=0.0, ready_mono=0.0, rss_kib_at_ready=80 * MIB)
    life.note_rss(0.0, 80 * MIB)
    # a hash in flight every few seconds (64 MiB each, two at once at most), the floor
    # between them creeping from 81 to 85 MiB
    t = 1.0
    for floor in range(81, 86):
        for kib in (floor * MIB, (floor + 64) * MIB, (floor + 128) * MIB):
            life.note_rss(t, kib)
            t += 1.0
    life.note_rss(t, 150 * MIB)  # the reading at the end: mid-hash
    assert RSS_FLOOR_WINDOW_S == 10.0  # the lows of 81 and 82 MiB (t ≤ 6 s) fell out
    assert life.rss_kib_floor == 83 * MIB
    assert life.rss_kib_peak == (85 + 128) * MIB

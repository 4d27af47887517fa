"""The keyed chain's cost: a keyed durable append against a raw SQLite INSERT+COMMIT of the
same rows, in the same run (goal: ratio >= 0.5).

"Keyed durable append" is the daemon's write path as configured with ``[audit] key_file``:
``AuditStore.append`` with the HMAC key, one commit each (WAL, ``synchronous=FULL``), the
head publisher's commit listener attached. The baseline is ``sqlite3`` itself doing
``BEGIN IMMEDIATE; INSERT; COMMIT`` of precomputed keyed rows into the same migrated,
indexed table on the same settings. An unkeyed store runs in the same rounds, so the key's
own cost shows as the difference. Store and baselines alternate in rounds so load from
elsewhere (fsync contention above all) hits all of them alike.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.bench_audit import ROUNDS, _event, _sqlite_bare, chain_rows
from bench.report import Report, Row
from pumpd.audit import AuditStore, Hasher, HeadPublisher, generate_key_file, migrate

SUITE = "audit/keychain"


def run(report: Report, quick: bool) -> None:
    n = 500 if quick else 3000
    tmp = Path(tempfile.mkdtemp(prefix="pumpd-bench-keychain-"))
    try:
        _measure(report, tmp, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(report: Report, tmp: Path, n: int) -> None:
    key = generate_key_file(tmp / "chain.key")
    assert key.path is not None
    urls = {name: f"sqlite:///{tmp / f'{name}.db'}" for name in ("keyed", "unkeyed")}
    for url in urls.values():
        migrate.upgrade_url(url)
    keyed = AuditStore.open(urls["keyed"], key_file=key.path)
    publisher = HeadPublisher([], key=key, every_events=100, every_s=10.0)
    keyed.add_commit_listener(publisher.note)
    unkeyed = AuditStore.open(urls["unkeyed"])
    bare = _sqlite_bare(tmp / "bare.db")
    rows = list(chain_rows(n, Hasher(key.secret)))
    per = n // ROUNDS
    took = {"keyed": 0.0, "unkeyed": 0.0, "bare": 0.0}
    try:
        for r in range(ROUNDS):
            for name, store in (("keyed", keyed), ("unkeyed", unkeyed)):
                started = time.perf_counter()
                for i in range(per):
                    store.append(_event(r * per + i))
                took[name] += time.perf_counter() - started
            took["bare"] += bare.run(rows[r * per : (r + 1) * per])
    finally:
        bare.close()
        keyed.close()
        unkeyed.close()
    rate = {name: per * ROUNDS / seconds for name, seconds in took.items()}
    report.add(
        Row(
            SUITE,
            "keyed durable appends (HMAC key, store.append, one commit each, head listener)",
            rate["keyed"],
            "events/s",
            baseline=rate["bare"],
            baseline_name="raw sqlite3 BEGIN IMMEDIATE+INSERT+COMMIT, same table and settings",
            goal="ratio >= 0.5",
            met=rate["keyed"] / rate["bare"] >= 0.5,
        )
    )
    report.add(
        Row(
            SUITE,
            "keyed durable appends vs unkeyed ones (the key's own cost)",
            rate["keyed"],
            "events/s",
            baseline=rate["unkeyed"],
            baseline_name="unkeyed store.append in the same rounds",
        )
    )
    report.note(
        f"{SUITE}: {per * ROUNDS} appends each; unkeyed {rate['unkeyed']:.0f} events/s "
        f"(ratio {rate['unkeyed'] / rate['bare']:.2f} to the raw INSERT+COMMIT)"
    )

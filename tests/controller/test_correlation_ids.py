"""Correlation ids: unique, in their old shape, and a forked process does not repeat its
parent's (they come from a PRNG seeded once per process, not from the OS per id)."""

from __future__ import annotations

import os
import re

from pumpd.controller.journal import new_correlation


def test_ids_keep_their_shape_and_do_not_repeat() -> None:
    ids = [new_correlation("cmd") for _ in range(20_000)]
    assert all(re.fullmatch(r"cmd-[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_draw_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the parent's cleanup
        os.close(read_end)
        os.write(write_end, " ".join(new_correlation("x") for _ in range(8)).encode())
        os.close(write_end)
        os._exit(0)
    os.close(write_end)
    mine = {new_correlation("x") for _ in range(8)}
    with os.fdopen(read_end) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(theirs) == 8
    assert not mine & theirs, "the child drew the same ids as its parent"

"""The stand-in hash an unknown staff id is checked against (pumpd/staff/registry.py)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from pumpd.staff.registry import STANDIN_HASH


def test_standin_hash_has_the_default_hashers_cost() -> None:
    # Same parameters as the daemon's hasher, so an unknown id costs what a known one does;
    # if argon2-cffi's defaults move, this fails and the constant is to be re-made (until
    # then the registry hashes a stand-in of its own at start, correct but slower).
    assert PasswordHasher().check_needs_rehash(STANDIN_HASH) is False


@pytest.mark.parametrize("pin", ["4711-ada", "not-a-pin-of-any", "000000"])
def test_standin_hash_refuses_a_pin_as_a_mismatch(pin: str) -> None:
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(STANDIN_HASH, pin)

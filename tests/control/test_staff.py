"""The staff registry on SQLite and PostgreSQL (the 0003 migration), the PIN policy,
lockout, and login tokens over the socket (expiry, uid binding, logout, disable)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import uuid
import warnings
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from pumpd.audit import migrate
from pumpd.clock import ManualClock
from pumpd.control.tokens import LoginTokens, TokenProblem
from pumpd.db import make_engine
from pumpd.staff import (
    PinRefused,
    StaffExists,
    StaffInputError,
    StaffLocked,
    StaffRegistry,
    check_pin,
)

from .conftest import Rig

PG_ENV = "PUMPD_TEST_PG_URL"


def _postgres_url() -> str:
    raw = os.environ.get(PG_ENV, "")
    reason = f"{PG_ENV} is not set"
    if raw:
        try:
            with psycopg.connect(raw, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return raw
        except psycopg.Error as exc:
            reason = f"PostgreSQL at {raw} unreachable: {exc}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires PostgreSQL for the staff registry: {reason}", pytrace=False)
    warnings.warn(f"PostgreSQL staff tests SKIPPED: {reason}", stacklevel=1)
    pytest.skip(f"PostgreSQL staff tests SKIPPED: {reason}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/audit.db"
        migrate.upgrade_url(url)
        eng = make_engine(url)
        yield eng
        eng.dispose()
        return
    base = _postgres_url()
    name = f"pumpd_staff_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade_url(url)
        eng = make_engine(url)
        yield eng
        eng.dispose()
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
async def registry(engine: sa.Engine) -> tuple[StaffRegistry, ManualClock]:
    clock = ManualClock()
    return StaffRegistry(engine, clock, max_failures=3, lockout_s=900), clock


async def test_add_list_verify_and_no_hash_shown(
    registry: tuple[StaffRegistry, ManualClock], engine: sa.Engine
) -> None:
    reg, _ = registry
    await reg.add("N042", "Ada Lovelace", "nurse", "4711-ada")
    with pytest.raises(StaffExists):
        await reg.add("n042", "Someone", "nurse", "4711-xyz")  # ids unique without case
    member = await reg.verify("N042", "4711-ada")
    assert (member.staff_id, member.role, member.enabled) == ("N042", "nurse", True)
    listed = [m.as_dict() for m in await reg.list()]
    assert listed == [
        {
            "staff_id": "N042",
            "name": "Ada Lovelace",
            "role": "nurse",
            "enabled": True,
            "failures": 0,
            "locked_until": None,
        }
    ]
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT pin_hash FROM staff_member")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "4711-ada" not in stored


async def test_wrong_pins_lock_the_id_for_a_while(
    registry: tuple[StaffRegistry, ManualClock],
) -> None:
    reg, clock = registry
    await reg.add("N042", "Ada", "nurse", "4711-ada")
    for expected in (1, 2):
        with pytest.raises(PinRefused) as refused:
            await reg.verify("N042", "wrong-pin")
        assert refused.value.failures == expected
        assert refused.value.locked_until is None
    with pytest.raises(PinRefused) as third:
        await reg.verify("N042", "wrong-pin")
    assert third.value.failures == 3
    assert third.value.locked_until is not None
    with pytest.raises(StaffLocked):
        await reg.verify("N042", "4711-ada")  # even the right PIN, while locked
    clock.advance(901)
    assert (await reg.verify("N042", "4711-ada")).failures == 0


async def test_wrong_pins_at_once_are_each_counted_and_lock_once(
    registry: tuple[StaffRegistry, ManualClock],
) -> None:
    """Every lookup reads the id unlocked with no failure (lookups are read-only
    transactions); the count and the lock are decided inside each failure's write
    transaction, so three wrong PINs at once still count 1, 2, 3 and lock the id once."""
    reg, _ = registry
    await reg.add("N042", "Ada", "nurse", "4711-ada")
    tries = await asyncio.gather(
        *(reg.verify("N042", f"wrong-pin-{i}") for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(t, PinRefused) for t in tries), tries
    refused = [t for t in tries if isinstance(t, PinRefused)]
    assert sorted(t.failures or 0 for t in refused) == [1, 2, 3]
    assert [t.failures for t in refused if t.locked_until is not None] == [3]
    with pytest.raises(StaffLocked):
        await reg.verify("N042", "4711-ada")


async def test_a_good_pin_resets_the_count_and_disabled_ids_are_refused(
    registry: tuple[StaffRegistry, ManualClock],
) -> None:
    reg, _ = registry
    await reg.add("N042", "Ada", "nurse", "4711-ada")
    with pytest.raises(PinRefused):
        await reg.verify("N042", "wrong-pin")
    await reg.verify("N042", "4711-ada")
    member = await reg.get("N042")
    assert member is not None
    assert member.failures == 0
    await reg.set_enabled("N042", False)
    with pytest.raises(PinRefused) as disabled:
        await reg.verify("N042", "4711-ada")
    assert disabled.value.failures is None  # a disabled id does not count failures
    with pytest.raises(PinRefused) as unknown:
        await reg.verify("N999", "4711-ada")
    assert str(unknown.value) == str(disabled.value)  # one answer: no id oracle


@pytest.mark.parametrize(
    ("pin", "problem"),
    [
        ("12345", "6 to 32"),
        ("x" * 33, "6 to 32"),
        ("12 3456", "visible"),
        ("pïn-123", "visible"),
        ("777777", "repeat"),
        ("123456", "consecutive"),
        ("987654", "consecutive"),
    ],
)
def test_pin_policy(pin: str, problem: str) -> None:
    with pytest.raises(StaffInputError, match=problem):
        check_pin(pin)


def test_acceptable_pins() -> None:
    for pin in ("4711-ada", "102938", "correct horse".replace(" ", "-")):
        assert check_pin(pin) == pin


def test_tokens_expire_when_idle_and_bind_to_their_uid() -> None:
    clock = ManualClock()
    tokens = LoginTokens(clock, idle_timeout_s=600)
    login = tokens.issue(staff_id="N042", name="Ada", role="nurse", uid=1001)
    with pytest.raises(TokenProblem, match="another account") as other:
        tokens.use(login.token, 1002)
    assert other.value.reason_code == "token_other_uid"
    clock.advance(599)
    assert tokens.use(login.token, 1001).staff_id == "N042"  # use refreshes
    clock.advance(599)
    tokens.use(login.token, 1001)
    clock.advance(601)
    with pytest.raises(TokenProblem) as expired:
        tokens.use(login.token, 1001)
    assert expired.value.reason_code == "token_expired"
    with pytest.raises(TokenProblem) as gone:
        tokens.use(login.token, 1001)
    assert gone.value.reason_code == "token_unknown"


async def test_socket_login_expiry_logout_and_disable(rig: Rig) -> None:
    rig.use_roles("nurse", "admin")
    admin = await rig.client()
    await admin.ok("staff.add", staff_id="N042", name="Ada", role="nurse", pin="4711-ada")
    weak = await admin.err("staff.add", staff_id="N043", name="Bob", role="nurse", pin="123456")
    assert weak["code"] == -32602
    assert [m["staff_id"] for m in await admin.ok("staff.list")] == ["N042"]

    c = await rig.client()
    c.token = (await c.ok("staff.login", staff_id="N042", pin="4711-ada"))["token"]
    assert (await c.ok("whoami"))["acting"] == "staff:N042"
    # Idle for longer than the timeout (clock seconds: the rig's clock runs 600x).
    rig.server.service.tokens.idle_timeout_s = 0.5
    before = rig.clock.monotonic()
    while rig.clock.monotonic() - before < 1.0:
        await admin.ok("whoami")
    expired = await c.err("status")
    assert expired["code"] == -32002
    assert "expired" in expired["message"]
    assert expired["data"]["reason"] == "token_expired"  # pumpctl advises a new login on it
    rig.server.service.tokens.idle_timeout_s = 600

    c.token = (await c.ok("staff.login", staff_id="N042", pin="4711-ada"))["token"]
    assert (await c.ok("staff.logout")) == {"ended": True}
    gone = await c.err("status")
    assert (gone["code"], gone["data"]["reason"]) == (-32002, "token_unknown")

    c.token = (await c.ok("staff.login", staff_id="N042", pin="4711-ada"))["token"]
    await admin.ok("staff.disable", staff_id="N042")
    assert (await c.err("status"))["code"] == -32002
    c.token = None
    refused = await c.err("staff.login", staff_id="N042", pin="4711-ada")
    assert refused["code"] == -32002
    await admin.ok("staff.enable", staff_id="N042")
    await c.ok("staff.login", staff_id="N042", pin="4711-ada")

    ended = await rig.flushed_events(event_type="staff.login.ended")
    reasons = [json.loads(e.payload)["reason_code"] for e in ended]
    assert reasons == ["idle_timeout", "logout", "disabled"]
    changed = await rig.flushed_events(event_type="staff.changed")
    assert [json.loads(e.payload)["change"] for e in changed] == ["disabled", "enabled"]
    assert len(await rig.flushed_events(event_type="staff.registered")) == 1


async def test_socket_lockout_is_audited(rig: Rig) -> None:
    rig.use_roles("nurse", "admin")
    c = await rig.client()
    await c.ok("staff.add", staff_id="N042", name="Ada", role="nurse", pin="4711-ada")
    for _ in range(3):  # the rig's staff_max_failures
        wrong = await c.err("staff.login", staff_id="N042", pin="0000-bad")
        assert wrong["data"]["reason"] == "pin_refused"
    locked = await c.err("staff.login", staff_id="N042", pin="4711-ada")
    assert locked["code"] == -32002
    assert locked["data"]["reason"] == "locked"
    assert re.search(
        r"locked after repeated wrong PINs until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; "
        r"an admin can lift it earlier \(pumpctl staff enable N042\)$",
        locked["message"],
    )
    refused = await rig.flushed_events(event_type="staff.pin.refused")
    assert [json.loads(e.payload)["failures"] for e in refused] == [1, 2, 3]
    [lock] = await rig.flushed_events(event_type="staff.locked")
    until = dt.datetime.fromisoformat(
        json.loads(lock.payload)["locked_until"].replace("Z", "+00:00")
    )
    assert until > rig.clock.now_utc()


async def test_an_admin_staff_login_at_a_nurse_account_is_forbidden(rig: Rig) -> None:
    rig.use_roles("nurse", "admin")
    admin = await rig.client()
    await admin.ok("staff.add", staff_id="A001", name="Root Admin", role="admin", pin="adm-4711")
    rig.use_roles("nurse")
    nurse_station = await rig.client()
    denied = await nurse_station.err("staff.login", staff_id="A001", pin="adm-4711")
    assert denied["code"] == -32001


@pytest.mark.parametrize(
    ("staff_id", "name"), [("pumpd", "Some One"), ("PUMPD", "Some One"), ("N050", " Pumpd ")]
)
async def test_no_staff_member_takes_the_daemons_name(
    registry: tuple[StaffRegistry, ManualClock], staff_id: str, name: str
) -> None:
    reg, _ = registry
    with pytest.raises(StaffInputError, match="daemon's own name"):
        await reg.add(staff_id, name, "nurse", "4711-ada")
    assert await reg.list() == []

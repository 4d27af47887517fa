"""The staff registry: staff id, name, role, argon2id PIN hash, enabled, lockout.

It lets a shared nurse-station account say *which person* acts (``pumpctl login``) and
lets a second nurse witness a double-check at the same terminal with id and PIN. The
rows live in the site's database beside the log (``staff_member``, ``pumpd.staff.schema``,
migration 0003); every change and
every refused PIN is also an audit event, so the append-only log remains the record.

PINs are hashed with argon2id (``argon2-cffi``: slow, salted, memory-hard); hashing runs
in worker threads, at most ``MAX_CONCURRENT_HASHES`` at a time, so guessing cannot starve
the event loop or the pump loops. ``max_failures`` wrong PINs in a row lock the staff id
for ``lockout_s`` (audited as ``staff.locked``); a locked id is refused without looking
at the PIN. An unknown id costs the same hash as a known one (no timing oracle) and gets
the same answer as a wrong PIN.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pumpd.audit import is_reserved, utc_text
from pumpd.clinictime import local_text, parse_utc, zone_or_utc
from pumpd.clock import Clock
from pumpd.db import reader
from pumpd.staff.schema import staff_member

MAX_CONCURRENT_HASHES = 2
PIN_MIN, PIN_MAX = 6, 32
STAFF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
STAFF_ROLES = ("nurse", "auditor", "admin")
STANDIN_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$2ZVqW7+C99jWMnREFkGnag$"
    "u4bSiPSbELbBOL3PE1o1zix8aqLtczwyDvJDfShZ7l4"
)
"""argon2-cffi's default hasher over no one's PIN (``not-a-pin-of-anyone``): an unknown
staff id is checked against it, so it costs what a known one costs. A constant, because
hashing it at every start cost about 0.25 s of CPU (64 MiB, three passes) before the daemon
was ready; a hasher with other parameters hashes its own stand-in instead."""


class StaffError(Exception):
    """Base: the message is one sentence for the person at the terminal."""


class StaffInputError(StaffError):
    """A bad staff id, name, role or PIN (PIN policy); nothing was changed."""


class StaffExists(StaffError):
    pass


class UnknownStaff(StaffError):
    pass


class PinRefused(StaffError):
    """Wrong PIN, unknown or disabled id: one answer for all three."""

    def __init__(self, staff_id: str, failures: int | None, locked_until: str | None) -> None:
        super().__init__("staff id or PIN not accepted")
        self.staff_id = staff_id
        self.failures = failures
        """Consecutive failures of a known id after this one (None for an unknown id)."""
        self.locked_until = locked_until
        """Set when this failure locked the id."""


class StaffLocked(StaffError):
    def __init__(self, staff_id: str, locked_until: str) -> None:
        until = locked_until[:19].replace("T", " ") + " UTC"  # the stored text, to the second
        super().__init__(
            f"staff id {staff_id} is locked after repeated wrong PINs until {until}; "
            f"an admin can lift it earlier (pumpctl staff enable {staff_id})"
        )
        self.staff_id = staff_id
        self.locked_until = locked_until

    def sentence(self, zone_name: str) -> str:
        """The refusal with the end of the lock in the clinic's zone (``… until 2026-12-04
        14:27:11 CST``), as the person at the terminal reads it."""
        end = parse_utc(self.locked_until)
        if end is None:
            return str(self)
        until = local_text(end, zone_or_utc(zone_name), date=True)
        return (
            f"staff id {self.staff_id} is locked after repeated wrong PINs until {until}; "
            f"an admin can lift it earlier (pumpctl staff enable {self.staff_id})"
        )


@dataclass(frozen=True, slots=True)
class StaffMember:
    staff_id: str
    name: str
    role: str
    enabled: bool
    failures: int
    locked_until: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "staff_id": self.staff_id,
            "name": self.name,
            "role": self.role,
            "enabled": self.enabled,
            "failures": self.failures,
            "locked_until": self.locked_until,
        }


def check_staff_id(staff_id: str) -> str:
    if not STAFF_ID.fullmatch(staff_id):
        raise StaffInputError(
            f"staff id {staff_id[:60]!r} must be 1-40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if is_reserved(staff_id):
        raise StaffInputError(f"staff id {staff_id!r} is the daemon's own name; choose another")
    return staff_id


def check_pin(pin: str) -> str:
    """The PIN policy (docs/roles.md): 6-32 visible characters, not trivially guessable."""
    if not PIN_MIN <= len(pin) <= PIN_MAX:
        raise StaffInputError(f"a PIN must have {PIN_MIN} to {PIN_MAX} characters")
    if not all(33 <= ord(c) <= 126 for c in pin):
        raise StaffInputError("a PIN may only hold visible ASCII characters (no spaces)")
    if len(set(pin)) == 1:
        raise StaffInputError("a PIN must not repeat one character")
    if pin.isdigit():
        steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
        if steps in ({1}, {-1}):
            raise StaffInputError("a PIN must not be a run of consecutive digits")
    return pin


class StaffRegistry:
    def __init__(
        self,
        engine: sa.Engine,
        clock: Clock,
        *,
        max_failures: int = 5,
        lockout_s: float = 900.0,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if lockout_s <= 0:
            raise ValueError("lockout_s must be positive")
        self._engine = engine
        """Writes, and the reads that decide them (the failure count), in one transaction."""
        self._reads = reader(engine)
        """Lookups that change nothing: they never hold the audit writer's lock."""
        self._clock = clock
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = (
            STANDIN_HASH
            if not self._hasher.check_needs_rehash(STANDIN_HASH)
            else self._hasher.hash("not-a-pin-of-anyone")
        )
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)

    # -- admin ----------------------------------------------------------------------

    async def add(self, staff_id: str, name: str, role: str, pin: str) -> StaffMember:
        check_staff_id(staff_id)
        name = name.strip()
        if not 1 <= len(name) <= 120:
            raise StaffInputError("a staff name must have 1 to 120 characters")
        if is_reserved(name):
            raise StaffInputError(f"{name!r} is the daemon's own name; no person is called so")
        if role not in STAFF_ROLES:
            raise StaffInputError(f"role {role!r} is not one of {', '.join(STAFF_ROLES)}")
        pin_hash = await self._hash(check_pin(pin))
        now = self._now_text()
        row = {
            "staff_id": staff_id,
            "name": name,
            "role": role,
            "pin_hash": pin_hash,
            "enabled": True,
            "failures": 0,
            "locked_until": None,
            "created_at": now,
            "changed_at": now,
        }

        def insert() -> None:
            with self._engine.begin() as conn:
                found = conn.execute(
                    sa.select(staff_member.c.staff_id).where(
                        sa.func.lower(staff_member.c.staff_id) == staff_id.lower()
                    )
                ).first()
                if found is not None:
                    raise StaffExists(f"staff id {found[0]} is already registered")
                conn.execute(staff_member.insert().values(**row))

        await asyncio.to_thread(insert)
        return StaffMember(staff_id, name, role, True, 0, None)

    async def set_pin(self, staff_id: str, pin: str) -> None:
        pin_hash = await self._hash(check_pin(pin))
        await self._update(staff_id, pin_hash=pin_hash, failures=0, locked_until=None)

    async def set_enabled(self, staff_id: str, enabled: bool) -> None:
        changes: dict[str, object] = {"enabled": enabled}
        if enabled:
            changes.update(failures=0, locked_until=None)
        await self._update(staff_id, **changes)

    async def list(self) -> list[StaffMember]:
        def read() -> list[StaffMember]:
            with self._reads.connect() as conn:
                rows = conn.execute(
                    sa.select(staff_member).order_by(staff_member.c.staff_id)
                ).mappings()
                return [_member(r) for r in rows]

        return await asyncio.to_thread(read)

    async def get(self, staff_id: str) -> StaffMember | None:
        row = await asyncio.to_thread(self._row, staff_id)
        return None if row is None else _member(row)

    # -- PIN check ------------------------------------------------------------------

    async def verify(self, staff_id: str, pin: str) -> StaffMember:
        """The enabled, unlocked member whose PIN this is; else :class:`PinRefused` or
        :class:`StaffLocked` (both change the failure count as they must)."""
        row = await asyncio.to_thread(self._row, staff_id) if STAFF_ID.fullmatch(staff_id) else None
        if row is None:
            await self._verify_hash(self._dummy_hash, pin)
            raise PinRefused(staff_id, None, None)
        member = _member(row)
        if member.locked_until is not None and member.locked_until > self._now_text():
            raise StaffLocked(member.staff_id, member.locked_until)
        ok = await self._verify_hash(str(row["pin_hash"]), pin)
        if ok and member.enabled:
            if (
                member.failures
                or member.locked_until
                or self._hasher.check_needs_rehash(str(row["pin_hash"]))
            ):
                changes: dict[str, object] = {"failures": 0, "locked_until": None}
                if self._hasher.check_needs_rehash(str(row["pin_hash"])):
                    changes["pin_hash"] = await self._hash(pin)
                await self._update(member.staff_id, **changes)
            return StaffMember(member.staff_id, member.name, member.role, True, 0, None)
        if not member.enabled:
            raise PinRefused(member.staff_id, None, None)
        failures, locked_until = await asyncio.to_thread(self._count_failure, member.staff_id)
        raise PinRefused(member.staff_id, failures, locked_until)

    def _count_failure(self, staff_id: str) -> tuple[int, str | None]:
        """One more consecutive failure; the ``max_failures``-th locks the id."""
        c = staff_member.c
        with self._engine.begin() as conn:
            failures = conn.execute(
                staff_member.update()
                .where(c.staff_id == staff_id)
                .values(failures=c.failures + 1)
                .returning(c.failures)
            ).scalar_one()
            if failures < self.max_failures:
                return failures, None
            now = self._clock.now_utc()
            until = utc_text(now + dt.timedelta(seconds=self.lockout_s))
            conn.execute(
                staff_member.update()
                .where(c.staff_id == staff_id)
                .values(failures=0, locked_until=until, changed_at=utc_text(now))
            )
            return failures, until

    # -- helpers --------------------------------------------------------------------

    async def _hash(self, pin: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, pin)

    async def _verify_hash(self, pin_hash: str, pin: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(pin_hash, pin)
            except (VerificationError, InvalidHashError):
                return False

        async with self._hashing:
            return await asyncio.to_thread(check)

    def _row(self, staff_id: str) -> sa.RowMapping | None:
        with self._reads.connect() as conn:
            return (
                conn.execute(sa.select(staff_member).where(staff_member.c.staff_id == staff_id))
                .mappings()
                .first()
            )

    async def _update(self, staff_id: str, **changes: object) -> None:
        check_staff_id(staff_id)
        now = self._now_text()

        def write() -> None:
            with self._engine.begin() as conn:
                done = conn.execute(
                    staff_member.update()
                    .where(staff_member.c.staff_id == staff_id)
                    .values(changed_at=now, **changes)
                )
                if done.rowcount != 1:
                    raise UnknownStaff(f"no staff id {staff_id} in the registry")

        await asyncio.to_thread(write)

    def _now_text(self) -> str:
        return utc_text(self._clock.now_utc())


def _member(row: sa.RowMapping) -> StaffMember:
    return StaffMember(
        staff_id=str(row["staff_id"]),
        name=str(row["name"]),
        role=str(row["role"]),
        enabled=bool(row["enabled"]),
        failures=int(row["failures"]),
        locked_until=row["locked_until"],
    )

"""Staff login tokens: in memory, bound to the uid that logged in, expiring when idle.

A token is a random secret handed to ``pumpctl login``, which keeps it in a 0600 file of
that account. It names a staff member only for requests from the same uid, and only
while it is used at least once per ``idle_timeout_s`` (clock seconds). Tokens die with
the daemon: after a restart everyone logs in again, which is the safe direction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pumpd.clock import Clock


@dataclass(slots=True)
class Login:
    token: str
    staff_id: str
    name: str
    role: str
    uid: int
    last_used_s: float


class TokenProblem(Exception):
    """The token cannot be used; ``reason_code`` says why (for the audit)."""

    def __init__(self, reason_code: str, message: str, login: Login | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.login = login


class LoginTokens:
    def __init__(self, clock: Clock, idle_timeout_s: float) -> None:
        self._clock = clock
        self.idle_timeout_s = idle_timeout_s
        self._logins: dict[str, Login] = {}

    def issue(self, *, staff_id: str, name: str, role: str, uid: int) -> Login:
        login = Login(
            token=secrets.token_urlsafe(32),
            staff_id=staff_id,
            name=name,
            role=role,
            uid=uid,
            last_used_s=self._clock.monotonic(),
        )
        self._logins[login.token] = login
        return login

    def use(self, token: object, uid: int) -> Login:
        """The login behind ``token`` for a request from ``uid``; refreshes its idle timer."""
        if not isinstance(token, str) or not token:
            raise TokenProblem("token_missing", "the staff login token is missing")
        login = self._logins.get(token)
        if login is None:
            raise TokenProblem("token_unknown", "the staff login is not known; log in again")
        if login.uid != uid:
            raise TokenProblem(
                "token_other_uid", "the staff login belongs to another account; log in again"
            )
        now = self._clock.monotonic()
        if now - login.last_used_s > self.idle_timeout_s:
            del self._logins[token]
            raise TokenProblem(
                "token_expired", "the staff login expired after inactivity; log in again", login
            )
        login.last_used_s = now
        return login

    def end(self, token: str) -> Login | None:
        return self._logins.pop(token, None)

    def end_staff(self, staff_id: str) -> list[Login]:
        """End every login of one staff member (disabled, PIN changed)."""
        gone = [lg for lg in self._logins.values() if lg.staff_id == staff_id]
        for lg in gone:
            del self._logins[lg.token]
        return gone

    def expire_idle(self) -> list[Login]:
        now = self._clock.monotonic()
        gone = [lg for lg in self._logins.values() if now - lg.last_used_s > self.idle_timeout_s]
        for lg in gone:
            del self._logins[lg.token]
        return gone

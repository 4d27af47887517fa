"""The session's volume ledger: the independent account and the counters it is anchored on.

The pump's counter is a running total over the pump's life; the session's delivered
volume is that counter less the counter at the session's start (plus what a pump that
restarted had delivered before). The ledger keeps those anchors beside the independent
account (:class:`~pumpd.controller.accounting.VolumeAccount`) and moves the account's
rate when a command is confirmed, so a restart, a resume and a continuation all re-anchor
in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

from pumpd.drivers import PumpStatus
from pumpd.session import PumpCommand, State

from .accounting import VolumeAccount
from .translate import MODE_OF


class Ledger:
    """The account of one session (None before its start) and its counter anchors."""

    def __init__(self) -> None:
        self.account: VolumeAccount | None = None
        self.baseline_ul = 0
        """The pump's counter at the last reading while no session was accounted."""
        self.start_counter_ul = 0
        """The counter the pump's VTBI register counts on (only a resume uses it)."""
        self.sent_at_s: float | None = None
        """When the last command went to the pump (its confirmed rate counts from then)."""

    def delivered_ul(self, status: PumpStatus | None) -> int:
        """Delivered to this session by the pump's own counter (0 before the start)."""
        if self.account is None or status is None:
            return 0
        return max(0, self.account.delivered_ul(status.volume_infused_ul))

    def expected_ul(self, now_s: float) -> int:
        return 0 if self.account is None else self.account.expected_ul(now_s)

    def observed(self, status: PumpStatus) -> None:
        """A reading: before the start the counter is the baseline the start anchors on."""
        if self.account is None:
            self.baseline_ul = status.volume_infused_ul

    def counter_lost(
        self, known_ul: int, status: PumpStatus, *, rebooted: bool, known_at_ul: int
    ) -> None:
        """The pump's counter no longer continues the session's: keep the ``known_ul``
        delivered (at the counter ``known_at_ul``) and count on from the new counter: its
        rise since the restart, from 0, for a pump that restarted; from this reading for a
        counter that went back. A restarted pump whose counter is not below ``known_at_ul``
        kept it over the restart (a DULCO flex does): it counts on from ``known_at_ul``,
        never from 0, which would count the kept volume again. The live loop and restart
        recovery share this; nothing is commanded here."""
        self.baseline_ul = status.volume_infused_ul
        if self.account is None:
            return
        counter_ul = status.volume_infused_ul
        kept = rebooted and counter_ul >= known_at_ul
        anchor_ul = known_at_ul if kept else 0 if rebooted else counter_ul
        self.account.counter_restarted(known_ul, anchor_ul)
        # The pump's VTBI register counts on the new counter (only a resume would use it).
        self.start_counter_ul = self.account.volume_at_start_ul - self.account.delivered_before_ul

    def start_sent(self) -> None:
        """A START goes out: the session's counter starts at the baseline."""
        self.start_counter_ul = self.baseline_ul

    def program_base_ul(self, kind: PumpCommand) -> int:
        """The counter a command's VTBI register counts on."""
        if kind is PumpCommand.START or self.account is None:
            return self.baseline_ul
        return self.start_counter_ul

    def after_command(
        self,
        command: PumpCommand | None,
        dest: State,
        status: PumpStatus | None,
        plan_rate_ml_h: Decimal,
        now_s: float,
    ) -> None:
        """Move the account to what the pump now does: a confirmed START opens it, a
        delivering state runs at the plan's rate, a halt or a pump that does not deliver
        runs at zero; from the moment the command was sent."""
        at = self.sent_at_s if self.sent_at_s is not None else now_s
        if dest is State.INFUSING and command is PumpCommand.START:
            self.account = VolumeAccount(self.start_counter_ul, plan_rate_ml_h, at)
        elif dest is State.INFUSING and self.account is not None:
            self.account.set_rate(plan_rate_ml_h, at)
        elif self.account is not None and (
            command in (PumpCommand.STOP, PumpCommand.PAUSE)
            or (status is not None and not MODE_OF[status.state].delivers)
        ):
            self.account.set_rate(Decimal(0), at)

    def opened_for_continuation(self, now_s: float) -> VolumeAccount:
        """The account a continuation works on, at rate zero from ``now_s``; opened at the
        baseline when the session stopped before the pump confirmed a start."""
        if self.account is None:
            # Stopped before the pump confirmed a start: nothing was accounted yet.
            self.account = VolumeAccount(self.baseline_ul, Decimal(0), now_s)
            self.start_counter_ul = self.baseline_ul
        self.account.set_rate(Decimal(0), now_s)
        return self.account

    def reanchored(
        self, status: PumpStatus, now_s: float, undo_session: Callable[[], None]
    ) -> Callable[[], None]:
        """Delivery goes on after an interruption: from here the session's figure of what
        was given is the larger of the pump's and the independent account's, on the
        counter as it is now, so the pump is programmed for the remainder alone and the
        volume rule judges what follows from that common start (a gap left by an
        occlusion or a stuck counter would otherwise pause the infusion again at once).
        Returns the undo for a command that is not sent."""
        acct = self.account
        assert acct is not None
        acct.set_rate(Decimal(0), now_s)
        saved = dataclasses.replace(acct), self.start_counter_ul
        known = max(0, acct.delivered_ul(status.volume_infused_ul), acct.expected_ul(now_s))
        acct.counter_restarted(known, status.volume_infused_ul)
        acct.closed_ul = Decimal(known)
        self.start_counter_ul = acct.volume_at_start_ul - acct.delivered_before_ul

        def undo() -> None:
            undo_session()
            self.account, self.start_counter_ul = saved

        return undo

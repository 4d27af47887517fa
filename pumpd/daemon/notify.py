"""Telling systemd how the daemon is: the sd_notify datagram protocol, implemented here.

The protocol is a stable, documented interface (sd_notify(3)): newline-separated
``KEY=VALUE`` assignments in one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace). The PyPI ``sdnotify`` package swallows
every error and ignores ``WATCHDOG_USEC``; here a failed send raises :class:`NotifyError`
so the daemon can log it, and the watchdog interval is read from the environment exactly
as libsystemd's ``sd_watchdog_enabled`` does (``WATCHDOG_PID``, when set, must be us).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

MAX_DATAGRAM = 4096


class NotifyError(OSError):
    """The notification socket is misnamed or a datagram could not be sent."""


def socket_address(raw: str) -> str | bytes:
    """The address to ``sendto``: a path, or the abstract name (``@x`` -> ``b"\\0x"``)."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    raise NotifyError(f"NOTIFY_SOCKET must be an absolute path or start with @, got {raw!r}")


def watchdog_interval_s(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog timeout in seconds if systemd asked *this* process for pings, else None.

    Pings should go at half of it (sd_watchdog_enabled(3)).
    """
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text:
        me = os.getpid() if pid is None else pid
        if not pid_text.isdigit() or int(pid_text) != me:
            return None
    if not usec_text.isdigit() or int(usec_text) == 0:
        raise NotifyError(f"WATCHDOG_USEC must be a positive integer, got {usec_text!r}")
    return int(usec_text) / 1_000_000


@dataclass(frozen=True, slots=True)
class Notifier:
    """Sends notifications to one socket. Build with :meth:`from_env`."""

    address: str | bytes
    watchdog_s: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """None when not run by systemd with ``Type=notify`` (no ``$NOTIFY_SOCKET``)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        if not raw:
            return None
        return cls(socket_address(raw), watchdog_interval_s(env))

    def send(self, **fields: str) -> None:
        """One datagram of ``KEY=VALUE`` lines; raise :class:`NotifyError` if it fails."""
        lines = []
        for key, value in fields.items():
            if "\n" in value:
                raise NotifyError(f"{key}= must be one line, got {value!r}")
            lines.append(f"{key}={value}")
        data = "\n".join(lines).encode()
        if len(data) > MAX_DATAGRAM:
            raise NotifyError(f"notification of {len(data)} bytes is larger than {MAX_DATAGRAM}")
        # Non-blocking: the send runs on the event loop that polls the pumps, and a full
        # receive queue (systemd not reading) must cost one lost notification, not a stall.
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, kind) as sock:
            try:
                sock.connect(self.address)
                sent = sock.send(data)
            except BlockingIOError as exc:
                raise NotifyError(
                    f"sd_notify to {self.address!r} would block: the receiver is not reading"
                ) from exc
            except OSError as exc:
                raise NotifyError(f"sd_notify to {self.address!r} failed: {exc}") from exc
        if sent != len(data):
            raise NotifyError(f"sd_notify sent {sent} of {len(data)} bytes")

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status, MAINPID=str(os.getpid()))

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    def stopping(self, status: str) -> None:
        self.send(STOPPING="1", STATUS=status)

"""The sd_notify implementation against real AF_UNIX datagram sockets (path and abstract)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pumpd.daemon.notify import Notifier, NotifyError, socket_address, watchdog_interval_s


class FakeSystemd:
    """A NOTIFY_SOCKET listener, as systemd opens it."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(10)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(8192).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, FakeSystemd]]:
    path = str(tmp_path / "notify")
    fake = FakeSystemd(path)
    yield path, fake
    fake.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, FakeSystemd]]:
    name = f"pumpd-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(b"\0" + name.encode())
    yield "@" + name, fake
    fake.close()


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_ready_status_watchdog_stopping_arrive(which: str, request: pytest.FixtureRequest) -> None:
    env_value, fake = request.getfixturevalue(which)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": env_value})
    assert notifier is not None
    notifier.ready("2/2 pumps: chair-1 idle, chair-2 idle")
    assert fake.receive() == {
        "READY": "1",
        "STATUS": "2/2 pumps: chair-1 idle, chair-2 idle",
        "MAINPID": str(os.getpid()),
    }
    notifier.status("chair-1 INFUSING 1.2/40.0 mL")
    assert fake.receive() == {"STATUS": "chair-1 INFUSING 1.2/40.0 mL"}
    notifier.watchdog()
    assert fake.receive() == {"WATCHDOG": "1"}
    notifier.stopping("stopping (sigterm)")
    assert fake.receive() == {"STOPPING": "1", "STATUS": "stopping (sigterm)"}


def test_no_notify_socket_means_no_notifier() -> None:
    assert Notifier.from_env({}) is None
    assert Notifier.from_env({"NOTIFY_SOCKET": ""}) is None


def test_address_forms() -> None:
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    with pytest.raises(NotifyError, match="absolute path or start with @"):
        socket_address("relative/notify")


def test_send_errors_are_raised_not_swallowed(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    with pytest.raises(NotifyError, match=r"sd_notify to .* failed"):
        notifier.ready("x")


def test_a_receiver_that_stops_reading_never_blocks_the_sender(
    path_socket: tuple[str, FakeSystemd],
) -> None:
    """The send runs on the pump loops' event loop: once the receiver's queue is full it
    must fail at once with NotifyError, not wait (a blocking send froze the daemon)."""
    path, _ = path_socket  # the fake never reads: its queue fills up
    notifier = Notifier(path)

    def flood() -> None:
        for _ in range(10_000):  # the default queue holds a few hundred datagrams at most
            notifier.watchdog()

    with pytest.raises(NotifyError, match="would block: the receiver is not reading"):
        flood()


def test_multi_line_values_are_refused(path_socket: tuple[str, FakeSystemd]) -> None:
    path, _ = path_socket
    with pytest.raises(NotifyError, match="one line"):
        Notifier(path).status("a\nREADY=1")


def test_watchdog_interval_follows_watchdog_usec_and_pid() -> None:
    me = os.getpid()
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(me)}) == 0.2
    # Meant for another process (e.g. inherited by a child): not ours to ping.
    assert watchdog_interval_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(me + 1)}) is None
    assert watchdog_interval_s({}) is None
    with pytest.raises(NotifyError, match="WATCHDOG_USEC"):
        watchdog_interval_s({"WATCHDOG_USEC": "soon"})


def test_from_env_carries_the_watchdog(path_socket: tuple[str, FakeSystemd]) -> None:
    path, _ = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier is not None
    assert notifier.watchdog_s == 4.0

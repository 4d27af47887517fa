"""Where a pump is reached, as its configuration writes it: ``host:port`` or a device path,
and what simulation mode accepts of each (a line that cannot be real hardware)."""

from __future__ import annotations

import ipaddress
import os
import re

from pumpd.drivers.registry import Problem

PTS = re.compile(r"^/dev/pts/[0-9]+$")


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; raise ValueError with the sentence to show."""
    bad = ValueError(f'expected host:port, got "{text}"')
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            raise bad  # a bare IPv6 address needs brackets
    if not sep or not host or not port_text.isdigit():
        raise bad
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1..65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def device_problem(at: str, transport: str, device: str | None, example: str) -> Problem | None:
    """A serial pump's ``device``: required, and an absolute path."""
    if device is None:
        return (f"{at}.device", f"{transport} needs device (e.g. {example})")
    if not device.startswith("/"):
        return (f"{at}.device", f"expected an absolute path, got {device!r}")
    return None


def simulated_host_problem(at: str, host: str | None) -> Problem | None:
    """In simulation mode a TCP pump must be on this machine: it could be a real pump."""
    if host is not None and is_loopback(host):
        return None
    return (
        f"{at}.address",
        f"simulation = true accepts only loopback addresses (127.0.0.1, ::1, "
        f"localhost), got {host!r}: it could be a real pump",
    )


def simulated_device_problem(at: str, device: str | None) -> Problem | None:
    """In simulation mode a serial pump's line must be a pseudo-terminal (the simulator's)."""
    real = os.path.realpath(device or "")
    if PTS.fullmatch(real):
        return None
    return (
        f"{at}.device",
        f"simulation = true accepts only pseudo-terminals (/dev/pts/N or a link to "
        f"one, the simulator's RTU line); {device!r} resolves to {real!r}: it "
        "could be a real serial line",
    )

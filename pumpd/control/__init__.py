"""The control socket: JSON-RPC 2.0 over a Unix socket, identity by SO_PEERCRED, roles
from Unix groups, a staff registry for shared accounts (docs/control-socket.md,
docs/roles.md). Nothing here imports ``pumpd.daemon``; the daemon hands in a
:class:`ControlContext`."""

from pumpd.control.context import ControlContext, PumpInfo
from pumpd.control.server import ControlServer, ControlSocketError

__all__ = ["ControlContext", "ControlServer", "ControlSocketError", "PumpInfo"]

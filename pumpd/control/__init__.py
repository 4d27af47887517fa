"""The control socket: JSON-RPC 2.0 over a Unix socket, identity by SO_PEERCRED, roles
from Unix groups, a staff registry for shared accounts (docs/control-socket.md,
docs/roles.md). Nothing here imports ``pumpd.daemon``; the daemon hands in a
:class:`ControlContext`.

The daemon comes through this face: the server, the context it hands in and a pump's
record in it. Every other module here is private: tests/control/ may import it, nothing
else (tests/test_package_faces.py holds the rule; docs/architecture.md, "Package
faces")."""

from pumpd.control.context import ControlContext, PumpInfo
from pumpd.control.server import ControlServer, ControlSocketError

__all__ = ["ControlContext", "ControlServer", "ControlSocketError", "PumpInfo"]

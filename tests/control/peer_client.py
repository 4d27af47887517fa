"""A tiny stdlib-only JSON-lines client, run as another user by test_roles.py.

Usage: python3 peer_client.py SOCKET < requests (one JSON request per line).
Prints one answer line per request, or ``{"connect_error": "..."}`` and exits 3.
It imports nothing of pumpd, so it runs under the system Python as any user.
"""

from __future__ import annotations

import json
import socket
import sys


def main() -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    try:
        sock.connect(sys.argv[1])
    except OSError as exc:
        print(json.dumps({"connect_error": type(exc).__name__}), flush=True)
        return 3
    stream = sock.makefile("rwb")
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        stream.write(line if line.endswith(b"\n") else line + b"\n")
        stream.flush()
        answer = stream.readline()
        if not answer:
            print(json.dumps({"closed": True}), flush=True)
            return 4
        sys.stdout.buffer.write(answer)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pump's own panel: keys a nurse presses at the pump (ACK_ALARM, STOP), not pumpd.

pumpd never sends ACK_ALARM, and a pump that ignores remote commands can only be stopped
at the pump (docs/controller.md, docs/safety/fault-matrix.md). These presses are commands
in the simulator's log that have, rightly, no intent in the audit log, so each press
returns the cmd_seq it used and the soak's checker leaves exactly those records out.
"""

from __future__ import annotations

from pymodbus.client import ModbusTcpClient

from pumpd.drivers.base import Command
from pumpd.drivers.profile import load_profile

_PROFILE = load_profile()


class PanelError(RuntimeError):
    """The key press did not reach the pump (the line is still down)."""


def press(host: str, port: int, unit: int, command: Command) -> int:
    """Write ``command`` with a cmd_seq far from the pump's last one; return that cmd_seq.

    Half the sequence space away from ``last_cmd_seq``, so it can never be the number
    pumpd's own next command carries (pumpd uses last + 1).
    """
    client = ModbusTcpClient(host, port=port, timeout=2, retries=0)
    try:
        if not client.connect():  # type: ignore[no-untyped-call]
            raise PanelError(f"cannot reach the simulator at {host}:{port}")
        last = _PROFILE.input.fields.last_cmd_seq.address
        reply = client.read_input_registers(last, count=1, device_id=unit)
        if reply.isError():
            raise PanelError(f"unit {unit}: reading last_cmd_seq failed: {reply}")
        seq = (reply.registers[0] + 32768) % 65536 or 1
        address = _PROFILE.holding.fields.cmd_seq.address
        written = client.write_registers(
            address, [seq, _PROFILE.command_code(command)], device_id=unit
        )
        if written.isError():
            raise PanelError(f"unit {unit}: the key press was refused: {written}")
        return seq
    except OSError as exc:
        raise PanelError(f"unit {unit}: {exc}") from exc
    finally:
        client.close()  # type: ignore[no-untyped-call]

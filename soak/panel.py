"""The pump's own panel: keys a nurse presses at the pump (ACK_ALARM, STOP), not pumpd.

pumpd never sends ACK_ALARM, and a pump that ignores remote commands can only be stopped
at the pump (docs/controller.md, docs/safety/fault-matrix.md). These presses are commands
in the simulator's log that have, rightly, no intent in the audit log, so each press
returns the cmd_seq it used and the soak's checker leaves exactly those records out.

The keys travel over the simulator's Modbus TCP endpoint, through its wire-fault proxy, so
a press can go unanswered like any request (a loaded machine, a latency fault, another
pump's silent-tcp, which holds the whole endpoint): pymodbus then raises
ModbusIOException, which is not an OSError.
"""

from __future__ import annotations

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from pumpd.drivers import Command, load_profile

_PROFILE = load_profile()


class PanelError(RuntimeError):
    """The key press did not reach the pump: nothing was written (the simulator could not
    be reached, or reading last_cmd_seq failed), so pressing again later is safe."""


class PanelUncertain(PanelError):
    """The key was written but no answer came back: the pump may have taken it (the reply
    was lost or late) or not (the request was lost). ``cmd_seq`` is the number it carried,
    so that a late take is still known for a panel press."""

    def __init__(self, message: str, cmd_seq: int) -> None:
        super().__init__(message)
        self.cmd_seq = cmd_seq


def press(host: str, port: int, unit: int, command: Command) -> int:
    """Write ``command`` with a cmd_seq far from the pump's last one; return that cmd_seq.

    Half the sequence space away from ``last_cmd_seq``, so it can never be the number
    pumpd's own next command carries (pumpd uses last + 1). :class:`PanelError` when
    nothing was written, :class:`PanelUncertain` when the write went unanswered.
    """
    client = ModbusTcpClient(host, port=port, timeout=2, retries=0)
    try:
        try:
            if not client.connect():  # type: ignore[no-untyped-call]
                raise PanelError(f"cannot reach the simulator at {host}:{port}")
            last = _PROFILE.input.fields.last_cmd_seq.address
            reply = client.read_input_registers(last, count=1, device_id=unit)
        except (ModbusException, OSError) as exc:
            raise PanelError(f"unit {unit}: reading last_cmd_seq failed: {exc}") from exc
        if reply.isError():
            raise PanelError(f"unit {unit}: reading last_cmd_seq failed: {reply}")
        seq = (reply.registers[0] + 32768) % 65536 or 1
        address = _PROFILE.holding.fields.cmd_seq.address
        try:
            written = client.write_registers(
                address, [seq, _PROFILE.command_code(command)], device_id=unit
            )
        except (ModbusException, OSError) as exc:
            raise PanelUncertain(
                f"unit {unit}: no answer to the key press (cmd_seq {seq}): {exc}", seq
            ) from exc
        if written.isError():
            raise PanelError(f"unit {unit}: the key press was refused: {written}")
        return seq
    finally:
        client.close()  # type: ignore[no-untyped-call]

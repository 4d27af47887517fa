"""`pumpsim --dulco-link` as a real subprocess: the ready line, a naive Modbus master on the
pty, and the DULCO faults and keypad settings from the shell."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from pymodbus.client import AsyncModbusSerialClient

from .test_cli import READY_TIMEOUT_S, exists, is_link, pumpsim


async def test_dulco_line_faults_and_settings_from_the_shell(tmp_path: Path) -> None:
    link = tmp_path / "dulco"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pumpsim", "--dulco-link", str(link),
        "--dulco-timeout-ms", "2000", "--control", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)).decode()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        assert fields["dulco"] == str(link)
        assert is_link(str(link))
        control = fields["control"]

        client = AsyncModbusSerialClient(str(link), baudrate=19200, timeout=2, retries=0)
        assert await client.connect()
        try:
            rr = await client.read_holding_registers(61, count=4, device_id=20)
            assert rr.registers == [2000, 0, 0xAABB, 0xCCDD]  # timeout, gap, pattern
            assert (await client.read_holding_registers(100, count=1, device_id=20)).isError()
            assert (await client.write_register(1200, 7, device_id=20)).isError()
        finally:
            client.close()

        code, out, err = await pumpsim(
            "dulco-fault", "--control", control, "metering-monitor", "on"
        )
        assert code == 0, err
        assert json.loads(out)["errors"] == 1 << 5
        code, out, err = await pumpsim(
            "dulco-fault", "--control", control, "word-order", "--value", "low_first"
        )
        assert code == 0, err
        assert json.loads(out)["word_order"] == "low_first"
        code, out, err = await pumpsim(
            "dulco-fault", "--control", control, "modbus-timeout-ms", "--value", "20000"
        )
        assert code == 1
        assert "0..10000" in err
        code, out, err = await pumpsim("dulco-status", "--control", control)
        assert code == 0, err
        assert json.loads(out)["modbus_timeout_ms"] == 2000

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), READY_TIMEOUT_S) == 0
        assert not exists(str(link))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

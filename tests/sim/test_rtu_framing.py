"""How the RTU line cuts a byte stream into frames (the unit of every wire fault)."""

from __future__ import annotations

import asyncio
import os

import pytest
from pumpsim.bridge import _RtuSplitter, rtu_request_length, rtu_response_length
from pumpsim.harness import Simulator

from .wire import rtu_client

READ_INPUT_REQ = bytes.fromhex("01 04 00 00 00 15 31 c5")
WRITE_MULTI_REQ = bytes.fromhex("02 10 00 70 00 02 04 00 01 00 03") + b"\x00\x00"
READ_INPUT_REPLY = bytes([1, 4, 4, 0, 1, 0, 2]) + b"\x00\x00"
EXCEPTION_REPLY = bytes([1, 0x84, 2]) + b"\x00\x00"


@pytest.mark.parametrize(
    ("frame", "length"),
    [
        (READ_INPUT_REQ, 8),
        (WRITE_MULTI_REQ, 13),
        (WRITE_MULTI_REQ[:6], None),  # byte count not seen yet
        (b"\x01", None),
        (bytes([1, 6, 0, 110, 0, 1, 0, 0]), 8),
        (bytes([1, 23]) + bytes(8) + bytes([4]), 17),
        (bytes([1, 0x41]), 0),  # not a Modbus function: unsizable
    ],
)
def test_request_lengths(frame: bytes, length: int | None) -> None:
    assert rtu_request_length(frame) == length


@pytest.mark.parametrize(
    ("frame", "length"),
    [
        (READ_INPUT_REPLY, 9),
        (EXCEPTION_REPLY, 5),
        (bytes([1, 16, 0, 112, 0, 2, 0, 0]), 8),
        (bytes([1, 6, 0, 110, 0, 1, 0, 0]), 8),
        (bytes([1, 3]), None),
        (bytes([1, 0x41, 0]), 0),
    ],
)
def test_response_lengths(frame: bytes, length: int | None) -> None:
    assert rtu_response_length(frame) == length


def test_splitter_cuts_back_to_back_frames_and_keeps_a_partial_one() -> None:
    splitter = _RtuSplitter(rtu_request_length)
    stream = READ_INPUT_REQ + WRITE_MULTI_REQ + READ_INPUT_REQ[:3]
    assert splitter.feed(stream[:5]) == []
    assert splitter.feed(stream[5:]) == [READ_INPUT_REQ, WRITE_MULTI_REQ]
    assert splitter.pending
    assert splitter.feed(READ_INPUT_REQ[3:]) == [READ_INPUT_REQ]
    assert not splitter.pending


def test_splitter_passes_unsizable_bytes_through_whole() -> None:
    splitter = _RtuSplitter(rtu_request_length)
    assert splitter.feed(b"\x01\x41junk") == [b"\x01\x41junk"]
    assert splitter.feed(b"\x01") == []
    assert splitter.flush() == b"\x01"
    assert not splitter.pending


def _write_raw(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


async def test_line_noise_is_flushed_and_the_line_keeps_working() -> None:
    async with Simulator(pumps=1, tcp=False, rtu=True) as sim:
        assert sim.rtu_path is not None
        # A partial frame that never completes, then silence: the line must flush it.
        await asyncio.to_thread(_write_raw, sim.rtu_path, b"\x01\x10\x00")
        await asyncio.sleep(0.2)
        async with rtu_client(sim) as client:
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert rr.registers == [1]


async def test_a_request_with_a_bad_crc_is_ignored_and_the_line_keeps_working() -> None:
    async with Simulator(pumps=1, tcp=False, rtu=True) as sim:
        assert sim.rtu_path is not None
        bad = READ_INPUT_REQ[:-1] + bytes([READ_INPUT_REQ[-1] ^ 0xFF])
        await asyncio.to_thread(_write_raw, sim.rtu_path, bad)
        await asyncio.sleep(0.2)
        async with rtu_client(sim) as client:
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert rr.registers == [1]

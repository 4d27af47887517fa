"""Where wire faults live: a Modbus TCP proxy and a pseudo-terminal null-modem for RTU.

Both sit between the client and the pymodbus server and work on whole frames, so a fault
can pick its unit: the MBAP unit id (byte 6) for TCP, the first byte of the frame for RTU.
Faults act like a real line would:

- drop-link: requests to the unit are not delivered and its replies are discarded;
- latency: each reply of the unit leaves `ms` later (the pump has already acted, so a
  client that times out meanwhile holds an *uncertain* command, and on RTU the late
  reply lands in the next request's window, as on a real RS-485 line);
- corrupt-rtu: the CRC of the unit's frames is broken (replies by default; `direction`
  request: the device gets a request that fails its CRC and ignores it);
- truncate-rtu: a frame stops half way (a reply: the client gets a fragment and then
  silence; a request: the device's receiver resets on the gap and drops it);
- noise-rtu / foreign-frame-rtu: a second master on the bus: random bytes, or a valid
  request of another master to a unit that is not on this line, arrive just before the
  unit's reply;
- reset-tcp: the connection is reset (RST) instead of carrying the unit's request (the pump
  never sees it) or its reply (the pump acted, the answer is lost);
- half-open-tcp: the connection that carries the unit's next request goes dead without FIN
  or RST: nothing is forwarded either way again and the proxy never closes it (a peer that
  vanished); new connections work;
- silent-tcp: the endpoint accepts connections and reads every request, but delivers and
  answers nothing (a pump whose Modbus task hangs); it acts on the whole endpoint.

Requests for unit ids that have no pump (and broadcast, unit 0) are not delivered: on a
serial line nobody answers them, and the proxy behaves the same for TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import termios
import time
import tty
from collections.abc import Callable
from pathlib import Path

from pumpsim.errors import SimulatorStateError
from pumpsim.wire_faults import WireFaults, WireFaultTable

MBAP_HEADER_LEN = 7
MAX_MBAP_LENGTH = 254  # unit id + PDU (max 253)
RTU_MAX_FRAME = 256
# An RTU frame that cannot be sized from its function code is forwarded after this quiet time.
RTU_QUIET_FLUSH_S = 0.02
BITS_PER_CHAR_8N1 = 10


# ------------------------------------------------------------------------- TCP


class TcpProxy:
    """Accepts Modbus TCP clients and relays each frame to the internal server."""

    def __init__(self, upstream: tuple[str, int], faults: WireFaultTable) -> None:
        self._upstream = upstream
        self._faults = faults
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, host, port)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        conn = _Connection(writer)
        requests = asyncio.create_task(self._relay_requests(reader, up_writer, conn))
        replies = asyncio.create_task(self._relay_replies(up_reader, writer, conn))
        for task in (requests, replies):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait({requests, replies}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (requests, replies):
                task.cancel()
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)

    @staticmethod
    async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
        try:
            header = await reader.readexactly(MBAP_HEADER_LEN)
            length = int.from_bytes(header[4:6], "big")
            if not 2 <= length <= MAX_MBAP_LENGTH:
                return None  # not Modbus TCP: close the connection like a device would
            return header + await reader.readexactly(length - 1)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def _silent(self) -> WireFaults | None:
        """A unit whose silent-tcp fault is on (it holds the whole endpoint), or None."""
        return next((f for f in self._faults.values() if f.silent), None)

    async def _relay_requests(
        self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        while (frame := await self._read_frame(reader)) is not None:
            silent = self._silent()
            if silent is not None:
                silent.frames_swallowed += 1  # read, never delivered, never answered
                continue
            if conn.frozen:
                continue  # the peer is gone: nothing arrives anywhere
            faults = self._faults.get(frame[6])
            if faults is None:
                continue
            address = _pdu_address(frame[7:], request=True)
            if faults.take(faults.half_open, "request"):
                conn.frozen = True
                continue
            if faults.drop:
                faults.frames_dropped += 1
                continue
            if faults.take(faults.reset, "request", address):
                conn.reset()
                return
            up_writer.write(frame)

    async def _relay_replies(
        self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await self._read_frame(up_reader)) is not None:
            faults = self._faults.get(frame[6])
            if faults is None or conn.frozen:
                continue
            if self._silent() is not None:
                continue
            if faults.drop:
                faults.frames_dropped += 1
                continue
            address = _pdu_address(frame[7:], request=False)
            if faults.take(faults.reset, "reply", address):
                conn.reset()
                return
            if delay_s := faults.latency_s(address):
                loop.call_later(delay_s, self._late_write, conn, frame)
            else:
                writer.write(frame)

    @staticmethod
    def _late_write(conn: _Connection, frame: bytes) -> None:
        if not conn.frozen and not conn.writer.is_closing():
            conn.writer.write(frame)


class _Connection:
    """One client connection through the proxy: alive, frozen (half-open) or reset."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.frozen = False

    def reset(self) -> None:
        """Abort the client connection with a TCP RST (SO_LINGER 0), not a FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# ------------------------------------------------------------------------- RTU


def rtu_request_length(buf: bytes) -> int | None:
    """Length of the request frame at the start of `buf`; 0 if unknown; None if too short."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6, 8):
        return 8
    if fc in (15, 16):
        return None if len(buf) < 7 else 9 + buf[6]
    if fc == 22:
        return 10
    if fc == 23:
        return None if len(buf) < 11 else 13 + buf[10]
    if fc in (7, 11, 12, 17):
        return 4
    return 0


def rtu_response_length(buf: bytes) -> int | None:
    """Length of the response frame at the start of `buf`; 0 if unknown; None if too short."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4, 12, 17, 23):
        return None if len(buf) < 3 else 5 + buf[2]
    if fc in (5, 6, 8, 11, 15, 16):
        return 8
    if fc == 22:
        return 10
    if fc == 7:
        return 5
    return 0


def rtu_crc(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _pdu_address(pdu: bytes, request: bool) -> int | None:
    """The start register a request names or a write's reply echoes (fc 3, 4, 6, 16).

    `pdu` starts at the function code. A read reply carries no address: None.
    """
    if len(pdu) < 3:
        return None
    fc = pdu[0]
    if fc in (6, 16) or (request and fc in (3, 4)):
        return int.from_bytes(pdu[1:3], "big")
    return None


def _break_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


class _RtuSplitter:
    """Cuts a byte stream into RTU frames by function code; flushes unsizable bytes."""

    def __init__(self, sizer: Callable[[bytes], int | None]) -> None:
        self._sizer = sizer
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while self._buf:
            size = self._sizer(self._buf)
            if size is None:
                break
            if size == 0 or size > RTU_MAX_FRAME:
                frames.append(self._buf)
                self._buf = b""
                break
            if len(self._buf) < size:
                break
            frames.append(self._buf[:size])
            self._buf = self._buf[size:]
        return frames

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest

    @property
    def pending(self) -> bool:
        return bool(self._buf)


class _FdSender:
    """Delivers frames to a pty master in order, each after its wire time and delay."""

    def __init__(self, fd: int, baud: int, wire_timing: bool) -> None:
        self._fd = fd
        self._char_s = BITS_PER_CHAR_8N1 / baud if wire_timing else 0.0
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def send(self, frame: bytes, delay_s: float = 0.0) -> None:
        self._queue.put_nowait((time.monotonic() + delay_s, frame))

    async def _run(self) -> None:
        line_free_at = 0.0
        while True:
            ready_at, frame = await self._queue.get()
            done_at = max(ready_at, line_free_at) + len(frame) * self._char_s
            wait = done_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            line_free_at = done_at
            await self._write_all(frame)

    async def _write_all(self, data: bytes) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            except OSError:
                return  # the line is gone; the sender is being shut down
            data = data[written:]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _open_raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave


class RtuLine:
    """Two pty pairs joined master to master: the device side and the client side.

    The server opens the device-side slave, a pyserial client opens the client-side slave
    (through the symlink). This process keeps both slave fds open too, so a client that
    disconnects never makes the masters fail with EIO.
    """

    def __init__(
        self, faults: WireFaultTable, *, baud: int, link_path: str | None, wire_timing: bool = True
    ) -> None:
        self._faults = faults
        self._baud = baud
        self._link_path = Path(link_path) if link_path else None
        self._wire_timing = wire_timing
        self._fds: list[int] = []
        self._to_device: _FdSender | None = None
        self._to_client: _FdSender | None = None
        self._requests = _RtuSplitter(rtu_request_length)
        self._replies = _RtuSplitter(rtu_response_length)
        self._flush_handles: dict[str, asyncio.TimerHandle] = {}
        self.device_path = ""
        self.client_path = ""
        self.noise_bytes_discarded = 0

    def open(self) -> None:
        if self._fds:
            raise SimulatorStateError("RTU line already open")
        dev_master, dev_slave = _open_raw_pty()
        cli_master, cli_slave = _open_raw_pty()
        self._fds = [dev_master, dev_slave, cli_master, cli_slave]
        self._dev_master, self._cli_master = dev_master, cli_master
        self.device_path = os.ttyname(dev_slave)
        self.client_path = os.ttyname(cli_slave)
        if self._link_path is not None:
            if self._link_path.is_symlink():
                self._link_path.unlink()
            elif self._link_path.exists():
                self.close_fds()
                raise FileExistsError(f"{self._link_path} exists and is not a symlink")
            self._link_path.symlink_to(self.client_path)
        loop = asyncio.get_running_loop()
        self._to_device = _FdSender(dev_master, self._baud, self._wire_timing)
        self._to_client = _FdSender(cli_master, self._baud, self._wire_timing)
        loop.add_reader(cli_master, self._on_client_bytes)
        loop.add_reader(dev_master, self._on_device_bytes)

    @property
    def path(self) -> str:
        """What a client opens: the symlink when one was asked for, else the pty itself."""
        return str(self._link_path) if self._link_path is not None else self.client_path

    def _read(self, fd: int) -> bytes:
        try:
            return os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            # The pty is gone (we hold both slaves open, so only at shutdown): stop
            # watching it rather than being called back forever.
            asyncio.get_running_loop().remove_reader(fd)
            return b""

    def _arm_flush(
        self, name: str, splitter: _RtuSplitter, handle: Callable[[bytes], None]
    ) -> None:
        old = self._flush_handles.pop(name, None)
        if old is not None:
            old.cancel()
        if splitter.pending:

            def flush() -> None:
                rest = splitter.flush()
                if rest:
                    handle(rest)

            loop = asyncio.get_running_loop()
            self._flush_handles[name] = loop.call_later(RTU_QUIET_FLUSH_S, flush)

    def _on_client_bytes(self) -> None:
        chunk = self._read(self._cli_master)
        if not chunk:
            return
        for frame in self._requests.feed(chunk):
            self._request(frame)
        # An incomplete request followed by silence is line noise: a device's receiver
        # resets on the inter-frame gap, so it is discarded, never passed on to be glued
        # to the next request.
        self._arm_flush("requests", self._requests, self._discard_request)

    def _on_device_bytes(self) -> None:
        chunk = self._read(self._dev_master)
        if not chunk:
            return
        for frame in self._replies.feed(chunk):
            self._reply(frame)
        self._arm_flush("replies", self._replies, self._reply)

    def _request(self, frame: bytes) -> None:
        faults = self._faults.get(frame[0])
        if faults is None or self._to_device is None:
            return  # no pump answers that address on this line
        if faults.drop:
            faults.frames_dropped += 1
            return
        address = _pdu_address(frame[1:], request=True)
        if faults.take(faults.truncate, "request", address):
            # The device's receiver sees half a frame, then the gap: it resets and drops it.
            self._discard_request(frame[: len(frame) // 2])
            return
        if faults.take(faults.corruption, "request", address):
            frame = _break_crc(frame)  # delivered; the device checks the CRC and ignores it
        self._to_device.send(frame)

    def _discard_request(self, fragment: bytes) -> None:
        self.noise_bytes_discarded += len(fragment)

    def _reply(self, frame: bytes) -> None:
        faults = self._faults.get(frame[0])
        if faults is None or self._to_client is None:
            return
        if faults.drop:
            faults.frames_dropped += 1
            return
        address = _pdu_address(frame[1:], request=False)
        delay_s = faults.latency_s(address)
        if faults.take(faults.noise):
            self._to_client.send(faults.noise_bytes(), delay_s)
        if faults.take(faults.foreign):
            self._to_client.send(self._foreign_frame(), delay_s)
        if faults.take(faults.corruption, "reply", address):
            frame = _break_crc(frame)
        if faults.take(faults.truncate, "reply", address):
            frame = frame[: max(1, len(frame) // 2)]
        self._to_client.send(frame, delay_s)

    def _foreign_frame(self) -> bytes:
        """A valid request of another master: read holding 100..113 of an absent unit."""
        unit = next((u for u in range(247, 0, -1) if u not in self._faults), 0)
        body = bytes([unit, 0x03, 0x00, 0x64, 0x00, 0x0E])
        return body + rtu_crc(body).to_bytes(2, "little")

    async def close(self) -> None:
        for handle in self._flush_handles.values():
            handle.cancel()
        self._flush_handles.clear()
        if self._fds:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._cli_master)
            loop.remove_reader(self._dev_master)
        for sender in (self._to_device, self._to_client):
            if sender is not None:
                await sender.close()
        self._to_device = self._to_client = None
        link = self._link_path
        if link is not None and link.is_symlink() and os.readlink(link) == self.client_path:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        self.close_fds()

    def close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

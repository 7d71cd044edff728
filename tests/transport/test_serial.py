"""SerialTransport specifics: ports on a pty, errors, and the thread back end (loop://, RFC 2217)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
import serial
import serial.rfc2217

from metercom.clock import VirtualClock
from metercom.errors import ConnectError, ConnectionLost, InputError, TransportTimeout
from metercom.transport import (
    LineSettings,
    PtyTransport,
    SerialTransport,
    open_pty,
    open_serial,
    open_transport,
)

IEC_START = LineSettings.parse("7E1", 300)
CHAR_300_S = 10 / 300

# A pty hands bytes over through a kernel work queue: give the virtual loop a real grace period
# (the vclock fixture in conftest.py reads this flag).
USES_PTY = True
pytestmark = pytest.mark.usefixtures("vclock")


async def test_set_line_changes_the_baud_rate_of_the_open_port() -> None:
    master, slave_path = await open_pty()
    client = await open_transport(f"serial://{slave_path}?baud=300&format=7E1")
    assert isinstance(client, SerialTransport)
    assert client.is_pty
    assert client.line == IEC_START
    assert master.peer_line is not None
    assert master.peer_line.baud_rate == 300  # what the client set, as the kernel sees it
    await client.set_line(IEC_START.with_baud(9600))
    assert client.line == IEC_START.with_baud(9600)
    assert master.peer_line.baud_rate == 9600
    await client.close()
    await master.close()


async def test_a_pty_carries_all_8_bits_whatever_the_format() -> None:
    # Ptys refuse 7-bit settings on recent kernels and have no framing anyway.
    master, slave_path = await open_pty()
    client = await open_serial(slave_path, IEC_START)
    await client.write(b"\xb8\x38")
    await client.drain()
    assert await master.read(timeout_s=1.0) == b"\xb8\x38"
    await client.close()
    await master.close()


async def test_drain_on_a_pty_takes_no_time() -> None:
    master, slave_path = await open_pty()
    client = await open_serial(slave_path, IEC_START)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.write(b"x" * 100)
    await client.drain()
    assert loop.time() == started
    await client.close()
    await master.close()


async def _fake_uart(queue_depths: list[int]) -> tuple[SerialTransport, PtyTransport]:
    """A port on a pty that pretends to be a real UART whose OS queue reports ``queue_depths``."""
    master, slave_path = await open_pty()
    client = await open_serial(slave_path, IEC_START)
    port = client._port  # white box: the back end behind the transport
    depths = iter(queue_depths)
    port.is_pty = False
    port._out_waiting = lambda: next(depths, queue_depths[-1])  # type: ignore[attr-defined]
    return client, master


async def test_drain_polls_the_os_output_queue_of_a_real_uart(vclock: VirtualClock) -> None:
    client, master = await _fake_uart([30, 20, 1, 0])
    started = vclock.monotonic()
    await client.drain()
    # Polls after 50 ms (the cap), 50 ms, 33 ms (one character), then one more character for
    # the UART's shift register, which TIOCOUTQ does not count.
    assert vclock.monotonic() - started == pytest.approx(0.05 + 0.05 + CHAR_300_S + CHAR_300_S)
    await client.close()
    await master.close()


async def test_drain_gives_up_on_a_stalled_output_queue(vclock: VirtualClock) -> None:
    client, master = await _fake_uart([5])  # never moves: CTS holding the line
    started = vclock.monotonic()
    with pytest.raises(TransportTimeout, match="5 bytes still in the output queue"):
        await client.drain()
    # Twice the wire time of 5 characters plus a second, to the next poll.
    assert 2 * 5 * CHAR_300_S + 1.0 <= vclock.monotonic() - started <= 2 * 5 * CHAR_300_S + 1.06
    await client.close()
    await master.close()


async def test_missing_port_is_a_connect_error_with_a_hint() -> None:
    with pytest.raises(ConnectError, match="no such port"):
        await open_transport("/dev/ttyDOESNOTEXIST0")


async def test_a_port_in_use_is_refused() -> None:
    master, slave_path = await open_pty()
    first = await open_serial(slave_path)
    with pytest.raises(ConnectError, match="in use"):
        await open_serial(slave_path)
    await first.close()
    second = await open_serial(slave_path)  # the lock went with the first port
    await second.close()
    await master.close()


async def test_an_impossible_setting_is_an_input_error() -> None:
    master, slave_path = await open_pty()
    client = await open_serial(slave_path)
    with pytest.raises(InputError):
        await client.set_line(LineSettings(baud_rate=2**33))
    assert client.line == LineSettings()
    await client.close()
    await master.close()


async def test_the_device_vanishing_is_connection_lost() -> None:
    master, slave_path = await open_pty()
    client = await open_serial(slave_path)
    reader = asyncio.ensure_future(client.read(timeout_s=5.0))
    await asyncio.sleep(0.1)
    await master.close()  # as if the USB adapter were pulled
    with pytest.raises(ConnectionLost, match="device removed or the peer hung up"):
        await reader
    with pytest.raises(ConnectionLost):
        await client.write(b"x")
    await client.close()


async def test_socket_url_records_line_settings(holding_server, read_exact) -> None:
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        port = server.url.rsplit(":", 1)[1]
        client = await open_transport(f"socket://127.0.0.1:{port}?baud=300&format=7E1")
        assert client.line == IEC_START
        wire = await peers.get()
        await client.set_line(IEC_START.with_baud(9600))
        await client.write(b"\xff\x00")  # a raw socket: no escaping, no framing
        assert await read_exact(wire, 2) == b"\xff\x00"
        await client.close()


async def test_bad_socket_url_option_is_an_input_error() -> None:
    with pytest.raises(InputError, match="socket://"):
        await open_serial("socket://127.0.0.1:1?bogus=1")


# -- the thread back end (real time: its reader thread works in real time) -----------------------


@pytest.mark.realtime
async def test_loop_url_returns_what_was_written() -> None:
    port = await open_transport("loop://?baud=300&format=7E1")
    assert port.line == IEC_START
    await port.write(b"/?!\r\n")
    await port.drain()
    received = bytearray()
    while len(received) < 5:
        received += await port.read(timeout_s=2.0)
    assert received == b"/?!\r\n"
    await port.set_line(IEC_START.with_baud(9600))
    assert port.line.baud_rate == 9600
    with pytest.raises(TransportTimeout):
        await port.read(timeout_s=0.05)
    await port.close()
    with pytest.raises(ConnectionLost):
        await port.write(b"x")


@contextlib.contextmanager
def rfc2217_server() -> Iterator[tuple[int, serial.SerialBase]]:
    """An RFC 2217 server in threads, in front of a loopback port (so it echoes)."""
    device = serial.serial_for_url("loop://", timeout=0.05)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)
    stop = threading.Event()

    class Connection:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def write(self, data: bytes) -> None:
            with contextlib.suppress(OSError):
                self.sock.sendall(data)

    def run() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.settimeout(0.05)
        manager = serial.rfc2217.PortManager(device, Connection(sock))

        def device_to_network() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    data = device.read(device.in_waiting or 1)
                    if data:
                        sock.sendall(b"".join(manager.escape(data)))

        pump = threading.Thread(target=device_to_network, daemon=True)
        pump.start()
        while not stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            device.write(b"".join(manager.filter(data)))
        stop.set()
        pump.join()
        sock.close()

    server = threading.Thread(target=run, daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1], device
    finally:
        stop.set()
        listener.close()
        server.join(5.0)
        device.close()


@pytest.mark.realtime
# pyserial 3.5 calls Thread.setDaemon/setName, deprecated since Python 3.10.
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning", "ignore:setName:DeprecationWarning")
async def test_rfc2217_set_line_reaches_the_remote_port() -> None:
    with rfc2217_server() as (port, device):
        client = await open_transport(f"rfc2217://127.0.0.1:{port}?baud=300&format=7E1")
        assert device.baudrate == 300
        assert device.bytesize == 7
        await client.write(b"/?!\r\n")
        received = bytearray()
        while len(received) < 5:
            received += await client.read(timeout_s=3.0)
        assert received == b"/?!\r\n"
        await client.set_line(IEC_START.with_baud(9600))
        assert device.baudrate == 9600
        await client.close()


@pytest.mark.realtime
async def test_rfc2217_nobody_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError):
        await open_transport(f"rfc2217://127.0.0.1:{port}", connect_timeout_s=5.0)

"""open_pty(): a simulator's end of a pseudo-terminal that serial clients open by path."""

from __future__ import annotations

import os
import tty

import pytest

from metercom.errors import ConnectError, ConnectionLost
from metercom.transport import LineSettings, PtyTransport, open_pty, open_serial
from metercom.transport.pty import termios_line

# A pty hands bytes over through a kernel work queue: give the virtual loop a real grace period
# (the vclock fixture in conftest.py reads this flag).
USES_PTY = True
pytestmark = pytest.mark.usefixtures("vclock")


async def test_open_pty_gives_a_master_transport_and_a_slave_path() -> None:
    master, slave_path = await open_pty()
    assert isinstance(master, PtyTransport)
    assert master.slave_path == slave_path
    assert slave_path.startswith("/dev/")
    assert master.url == f"pty:{slave_path}"
    assert master.line is None
    await master.set_line(LineSettings.parse("7E1", 300))
    assert master.line == LineSettings.parse("7E1", 300)  # recorded only
    await master.close()
    assert master.peer_line is None


async def test_the_simulator_survives_clients_coming_and_going(read_exact) -> None:
    master, slave_path = await open_pty()
    for request in (b"first client", b"second client"):
        client = await open_serial(slave_path)
        await client.write(request)
        assert await read_exact(master, len(request)) == request
        await master.write(b"ok")
        assert await read_exact(client, 2) == b"ok"
        await client.close()
    await master.close()


async def test_a_new_client_never_sees_bytes_written_before_it_opened(read_exact) -> None:
    master, slave_path = await open_pty()
    await master.write(b"stale answer nobody heard")
    await master.drain()
    client = await open_serial(slave_path)  # pyserial flushes the input queue on open
    await master.write(b"fresh")
    assert await read_exact(client, 5) == b"fresh"
    await client.close()
    await master.close()


async def test_closing_the_master_hangs_up_the_line() -> None:
    master, slave_path = await open_pty()
    await master.close()
    await master.close()  # idempotent
    with pytest.raises(ConnectionLost):
        await master.write(b"x")
    with pytest.raises(ConnectError):
        await open_serial(slave_path)  # the pty is gone


async def test_peer_line_follows_the_client() -> None:
    master, slave_path = await open_pty()
    client = await open_serial(slave_path, LineSettings(2400))
    assert master.peer_line == LineSettings(2400)
    await client.set_line(LineSettings(19200))
    assert master.peer_line == LineSettings(19200)
    await client.close()
    await master.close()


def test_termios_line_reads_a_raw_terminal() -> None:
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        settings = termios_line(slave_fd)
        assert settings is not None
        assert settings.frame_format == "8N1"
    finally:
        os.close(master_fd)
        os.close(slave_fd)

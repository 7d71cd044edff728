"""TCP specifics: format emulation for parity-passing bridges, connect errors, flow control."""

from __future__ import annotations

import asyncio
import socket

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConnectError, InputError
from metercom.transport import LineSettings, TcpTransport, Transport, open_tcp, open_transport, serve


async def test_format_emulation_puts_parity_in_bit_7_on_the_wire(holding_server, read_exact) -> None:
    # The "bridge" is a plain TCP server: it sees exactly the bytes on the bridge's 8N1 wire.
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url + "?format=7E1&baud=300")
        assert isinstance(client, TcpTransport)
        assert client.emulated_format == "7E1"
        assert client.line == LineSettings.parse("7E1", 300)
        wire = await peers.get()
        await client.write(b"/?!\r\n")
        # Field note: /?!\r\n on an 8N1 wire becomes AF 3F 21 8D 0A.
        assert await read_exact(wire, 5) == bytes.fromhex("AF 3F 21 8D 0A")
        # The meter answers '8' with good parity, then '8' without its parity bit.
        await wire.write(b"\xb8\x38")
        assert await read_exact(client, 2) == b"88"
        assert client.parity_errors == 1
        await client.close()


async def test_set_line_switches_the_emulated_format(holding_server, read_exact) -> None:
    # IEC 62056-21 mode E: the handshake in 7E1, then HDLC in 8N1 on the same connection.
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url + "?format=7E1")
        wire = await peers.get()
        await client.set_line(LineSettings.parse("8N1", 9600))
        assert client.emulated_format == "8N1"  # type: ignore[attr-defined]
        await client.write(b"\x7e\xa0\x7e")
        assert await read_exact(wire, 3) == b"\x7e\xa0\x7e"
        with pytest.raises(InputError, match="8E1"):
            await client.set_line(LineSettings.parse("8E1", 9600))
        assert client.line == LineSettings.parse("8N1", 9600)  # unchanged after the refusal
        await client.close()


async def test_without_emulation_set_line_only_records(holding_server, read_exact) -> None:
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        wire = await peers.get()
        assert client.line is None
        await client.set_line(LineSettings.parse("7E1", 300))
        await client.write(b"/?!\r\n")
        assert await read_exact(wire, 5) == b"/?!\r\n"
        await client.close()


async def test_a_server_can_emulate_too(holding_server, read_exact) -> None:
    # A simulated meter behind a parity-passing bridge, read by a client that emulates as well.
    async with holding_server("tcp://127.0.0.1:0?format=7E1") as (server, peers):
        assert server.url.endswith("?format=7E1")
        client = await open_transport(server.url)
        meter = await peers.get()
        await meter.write(b"/ABC5\\2ZMD\r\n")
        assert await read_exact(client, 12) == b"/ABC5\\2ZMD\r\n"
        raw = await open_transport(server.url.partition("?")[0])
        raw_meter = await peers.get()
        await raw_meter.write(b"8")
        assert await read_exact(raw, 1) == b"\xb8"
        await client.close()
        await raw.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_names_host_and_port() -> None:
    port = _free_port()
    with pytest.raises(ConnectError, match=rf"127\.0\.0\.1:{port} refused"):
        await open_transport(f"tcp://127.0.0.1:{port}")


async def test_connect_timeout(vclock: VirtualClock) -> None:
    # A listener that never accepts, with its backlog full: further SYNs go unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        first = await open_tcp("127.0.0.1", port, connect_timeout_s=1.0)
        started = vclock.monotonic()
        with pytest.raises(ConnectError, match=rf"127\.0\.0\.1:{port} within 2 s") as info:
            await open_transport(f"tcp://127.0.0.1:{port}", connect_timeout_s=2.0)
        assert isinstance(info.value.__cause__, TimeoutError)
        assert vclock.monotonic() - started == pytest.approx(2.0)
        await first.close()


async def test_drain_waits_until_the_peer_takes_the_bytes(holding_server, read_exact) -> None:
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        peer = await peers.get()
        # Small kernel buffers (loopback autotuning could otherwise swallow megabytes), so that
        # 8 MiB is more than every buffer on the way: 1 MiB in the receiver's user space plus a
        # few hundred kB in the kernel.
        for side in (client, peer):
            sock = side._aio.get_extra_info("socket")  # white box: the transport's socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        payload = bytes(range(256)) * (32 * 1024)
        await client.write(payload)
        # Nobody reads: the receiver pauses at its high-water mark, the kernel buffers fill,
        # and the bytes wait in user space.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.drain(), 1.0)
        drainer = asyncio.ensure_future(client.drain())
        assert await read_exact(peer, len(payload), 30.0) == payload
        await drainer
        await client.close()


async def test_ipv6_loopback(read_exact) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    peers: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(transport: Transport) -> None:
        await peers.put(await transport.read(timeout_s=1.0))

    async with await serve("tcp://[::1]:0", handler) as server:
        assert server.url.startswith("tcp://[::1]:")
        client = await open_transport(server.url)
        await client.write(b"v6")
        assert await asyncio.wait_for(peers.get(), 1.0) == b"v6"
        await client.close()

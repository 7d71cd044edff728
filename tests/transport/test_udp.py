"""UDP specifics: datagram boundaries, truncation, unreachable peers."""

from __future__ import annotations

import socket

import pytest

from metercom.errors import ConnectionLost, InputError, TransportTimeout
from metercom.transport import open_transport
from metercom.transport.udp import MAX_DATAGRAM


async def test_each_read_returns_one_datagram(holding_server) -> None:
    async with holding_server("udp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        assert client.datagram
        await client.write(b"first")
        peer = await peers.get()
        await client.write(b"second")
        assert await peer.read(timeout_s=1.0) == b"first"
        assert await peer.read(timeout_s=1.0) == b"second"
        await client.close()


async def test_a_long_datagram_is_cut_to_max_bytes(holding_server) -> None:
    async with holding_server("udp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        await client.write(b"0123456789")
        await client.write(b"next")
        peer = await peers.get()
        assert await peer.read(4, timeout_s=1.0) == b"0123"  # the rest is lost, as with recv()
        assert await peer.read(timeout_s=1.0) == b"next"
        await client.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_peer_raises_once_and_the_link_stays_usable() -> None:
    client = await open_transport(f"udp://127.0.0.1:{_free_udp_port()}")
    await client.write(b"anyone?")
    with pytest.raises(ConnectionLost, match="unreachable"):
        await client.read(timeout_s=1.0)
    with pytest.raises(TransportTimeout):
        await client.read(timeout_s=1.0)
    await client.write(b"still here")  # UDP has no connection to lose
    await client.close()


async def test_oversized_datagram_is_refused() -> None:
    client = await open_transport(f"udp://127.0.0.1:{_free_udp_port()}")
    with pytest.raises(InputError, match="65507"):
        await client.write(bytes(MAX_DATAGRAM + 1))
    await client.close()


async def test_empty_write_sends_nothing(holding_server) -> None:
    async with holding_server("udp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        await client.write(b"")
        await client.write(b"x")
        peer = await peers.get()
        assert await peer.read(timeout_s=1.0) == b"x"
        await client.close()

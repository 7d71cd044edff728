"""DESIGN.md section 7.6: one conformance suite for every transport.

Each test runs against TCP, UDP, a serial port on a pty pair, a serial ``socket://`` URL to a
local TCP server, and the simulated line, on the virtual clock.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from metercom.errors import ConnectionLost, TransportTimeout
from metercom.transport import LineSettings, Transport

# Fixtures from conftest.py: ``link`` (parametrized over every kind of link: an async context
# manager factory giving a Pair with .client, .server and what the link promises) and
# ``read_exact(transport, n_bytes, timeout_s=5.0)``.


def _payload(n_bytes: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n_bytes)


async def test_round_trip(link, read_exact) -> None:
    async with link() as pair:
        request = b"\x01request\x00\xff\x7e"
        await pair.client.write(request)
        await pair.client.drain()
        assert await read_exact(pair.server, len(request)) == request
        reply = b"reply \x80\x81"
        await pair.server.write(reply)
        await pair.server.drain()
        assert await read_exact(pair.client, len(reply)) == reply


async def _send_receive(read_exact, sender: Transport, receiver: Transport, payload: bytes) -> bytes:
    async def send() -> None:
        await sender.write(payload)
        await sender.drain()

    # Concurrently, as on any real link: kernel buffers are finite, so a sender that drains
    # before anyone reads could wait forever on a pty or a socket.
    _, received = await asyncio.gather(send(), read_exact(receiver, len(payload), timeout_s=30.0))
    return received


async def test_large_payload_in_order(link, read_exact) -> None:
    async with link() as pair:
        payload = _payload(8192)
        assert await _send_receive(read_exact, pair.client, pair.server, payload) == payload
        assert await _send_receive(read_exact, pair.server, pair.client, payload[::-1]) == payload[::-1]


async def test_many_small_writes_arrive_in_order(link, read_exact) -> None:
    async with link() as pair:
        chunks = [bytes([i]) * (1 + i % 7) for i in range(60)]
        for chunk in chunks:
            await pair.client.write(chunk)
        await pair.client.drain()
        if pair.client.datagram:
            received = [await pair.server.read(65535, timeout_s=1.0) for _ in chunks]
            assert received == chunks
        else:
            expected = b"".join(chunks)
            assert await read_exact(pair.server, len(expected)) == expected


async def test_read_returns_at_most_max_bytes(link, read_exact) -> None:
    async with link() as pair:
        await pair.server.write(b"0123456789" * 10)
        await pair.server.drain()
        first = await pair.client.read(10, timeout_s=1.0)
        assert 1 <= len(first) <= 10
        assert first == b"0123456789"[: len(first)]


async def test_read_timeout_fires_at_the_right_time(link, read_exact) -> None:
    async with link() as pair:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportTimeout, match=r"no data within 2\.5 s") as info:
            await pair.client.read(timeout_s=2.5)
        assert loop.time() - started == pytest.approx(2.5, abs=1e-6)
        assert pair.client.url in str(info.value)
        # The link is still usable after a timeout.
        await pair.server.write(b"late")
        await pair.server.drain()
        assert await read_exact(pair.client, 4) == b"late"


async def test_zero_timeout_polls(link, read_exact) -> None:
    async with link() as pair:
        with pytest.raises(TransportTimeout):
            await pair.client.read(timeout_s=0)


async def test_peer_close_raises_connection_lost(link, read_exact) -> None:
    async with link() as pair:
        if not pair.client_sees_close:
            pytest.skip(f"{pair.kind} has no notion of the peer closing")
        await pair.server.write(b"bye")
        await pair.server.drain()
        if not pair.delivers_before_close:
            assert await read_exact(pair.client, 3) == b"bye"
        await pair.server.close()
        if pair.delivers_before_close:
            assert await read_exact(pair.client, 3) == b"bye"
        with pytest.raises(ConnectionLost):
            await pair.client.read(timeout_s=5.0)
        # Still lost on the next read, and writing is refused too.
        with pytest.raises(ConnectionLost):
            await pair.client.read(timeout_s=5.0)
        with pytest.raises(ConnectionLost):
            await pair.client.write(b"anyone?")


async def test_client_close_is_seen_by_server(link, read_exact) -> None:
    async with link() as pair:
        if not pair.server_sees_close:
            pytest.skip(f"the server side of {pair.kind} does not see a client close")
        await pair.client.close()
        with pytest.raises(ConnectionLost):
            await pair.server.read(timeout_s=5.0)


async def test_write_after_close_raises(link, read_exact) -> None:
    async with link() as pair:
        await pair.client.close()
        with pytest.raises(ConnectionLost, match="closed on this side"):
            await pair.client.write(b"x")
        with pytest.raises(ConnectionLost):
            await pair.client.read(timeout_s=1.0)
        with pytest.raises(ConnectionLost):
            await pair.client.drain()
        await pair.client.close()  # idempotent


async def test_close_fails_a_pending_read(link, read_exact) -> None:
    async with link() as pair:
        reader = asyncio.ensure_future(pair.client.read(timeout_s=10.0))
        await asyncio.sleep(0.5)
        await pair.client.close()
        with pytest.raises(ConnectionLost):
            await reader


async def test_discard_input_drops_stale_bytes(link, read_exact) -> None:
    async with link() as pair:
        await pair.server.write(b"stale")
        await pair.server.drain()
        await asyncio.sleep(0.1)  # virtual: let the bytes arrive (wire time on the simulated line)
        pair.client.discard_input()
        await pair.server.write(b"fresh")
        await pair.server.drain()
        assert await read_exact(pair.client, 5) == b"fresh"
        with pytest.raises(TransportTimeout):
            await pair.client.read(timeout_s=0.1)


async def test_async_context_manager_closes(link, read_exact) -> None:
    async with link() as pair:
        async with pair.client as client:
            assert client is pair.client
            await client.write(b"in")
            await client.drain()
        assert await read_exact(pair.server, 2) == b"in"
        with pytest.raises(ConnectionLost):
            await pair.client.write(b"out")
        if pair.server_sees_close:
            with pytest.raises(ConnectionLost):
                await pair.server.read(timeout_s=5.0)


async def test_set_line_is_reported(link, read_exact) -> None:
    async with link() as pair:
        settings = LineSettings.parse("8N1", 4800)
        await pair.client.set_line(settings)
        assert pair.client.line == settings


async def test_real_links_take_no_virtual_time(link, read_exact) -> None:
    async with link() as pair:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pair.client.write(b"ping")
        await pair.client.drain()
        assert await read_exact(pair.server, 4) == b"ping"
        elapsed_s = loop.time() - started
        if pair.kind == "simline":
            # 4 characters at 19200 Bd 8N1 plus the line's 2 ms latency.
            assert elapsed_s == pytest.approx(4 * 10 / 19200 + 0.002)
        else:
            assert elapsed_s < 1e-3

"""serve(): bound URLs, one transport per peer, handler failures, shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from metercom.errors import ConnectError, ConnectionLost, InputError, TransportTimeout
from metercom.transport import Transport, UdpTransport, open_transport, serve


async def echo(transport: Transport) -> None:
    while True:
        await transport.write(await transport.read(65535))


async def test_port_zero_gives_the_bound_url() -> None:
    async with await serve("tcp://127.0.0.1:0", echo) as server:
        host_port = server.url.removeprefix("tcp://")
        assert host_port.startswith("127.0.0.1:")
        assert int(host_port.rsplit(":", 1)[1]) > 0


async def test_many_tcp_clients_are_served_at_once() -> None:
    async with await serve("tcp://127.0.0.1:0", echo) as server:
        clients = [await open_transport(server.url) for _ in range(20)]
        await asyncio.sleep(0)
        assert server.handlers_running == 20
        for index, client in enumerate(clients):
            await client.write(f"client {index}".encode())
        for index, client in enumerate(clients):
            assert await client.read(timeout_s=1.0) == f"client {index}".encode()
        for client in clients:
            await client.close()


async def test_udp_gives_one_transport_per_remote_address() -> None:
    seen: list[Transport] = []

    async def handler(transport: Transport) -> None:
        seen.append(transport)
        await echo(transport)

    async with await serve("udp://127.0.0.1:0", handler) as server:
        one = await open_transport(server.url)
        two = await open_transport(server.url)
        await one.write(b"one")
        await two.write(b"two")
        await one.write(b"one again")
        assert await one.read(timeout_s=1.0) == b"one"
        assert await two.read(timeout_s=1.0) == b"two"
        assert await one.read(timeout_s=1.0) == b"one again"
        assert len(seen) == 2
        assert all(isinstance(peer, UdpTransport) and peer.datagram for peer in seen)
        assert seen[0].remote_addr != seen[1].remote_addr  # type: ignore[attr-defined]
        await one.close()
        await two.close()


async def test_udp_peer_is_forgotten_when_its_handler_returns() -> None:
    calls: list[bytes] = []

    async def once(transport: Transport) -> None:
        request = await transport.read(timeout_s=1.0)
        calls.append(request)
        await transport.write(request.upper())

    async with await serve("udp://127.0.0.1:0", once) as server:
        client = await open_transport(server.url)
        for request in (b"a", b"b"):
            await client.write(request)
            assert await client.read(timeout_s=1.0) == request.upper()
            await asyncio.sleep(0.01)
        assert calls == [b"a", b"b"]
        await client.close()


async def test_a_failing_handler_is_logged_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def picky(transport: Transport) -> None:
        if await transport.read(timeout_s=1.0) == b"bad":
            raise RuntimeError("simulator bug")
        await transport.write(b"ok")

    async with await serve("tcp://127.0.0.1:0", picky) as server:
        with caplog.at_level(logging.ERROR, logger="metercom.transport.server"):
            bad = await open_transport(server.url)
            await bad.write(b"bad")
            with pytest.raises(ConnectionLost):  # the server closed the link after the failure
                await bad.read(timeout_s=1.0)
        assert "simulator bug" in caplog.text
        good = await open_transport(server.url)
        await good.write(b"good")
        assert await good.read(timeout_s=1.0) == b"ok"
        await bad.close()
        await good.close()


async def test_a_peer_going_away_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async with await serve("tcp://127.0.0.1:0", echo) as server:
        with caplog.at_level(logging.ERROR, logger="metercom.transport.server"):
            client = await open_transport(server.url)
            await client.close()
            await asyncio.sleep(0.1)
        assert server.handlers_running == 0
        assert caplog.text == ""


async def test_close_cancels_handlers_and_wait_closed_waits_for_them() -> None:
    cleaned_up = asyncio.Event()

    async def slow(transport: Transport) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    server = await serve("tcp://127.0.0.1:0", slow)
    client = await open_transport(server.url)
    await asyncio.sleep(0)
    assert server.handlers_running == 1
    server.close()
    await server.wait_closed()
    assert cleaned_up.is_set()
    with pytest.raises(ConnectionLost):
        await client.read(timeout_s=1.0)
    await client.close()
    with pytest.raises(ConnectError):
        await open_transport(server.url, connect_timeout_s=1.0)


async def test_udp_server_close() -> None:
    server = await serve("udp://127.0.0.1:0", echo)
    client = await open_transport(server.url)
    await client.write(b"x")
    assert await client.read(timeout_s=1.0) == b"x"
    server.close()
    await server.wait_closed()
    await client.write(b"y")
    with pytest.raises((ConnectionLost, TransportTimeout)):
        await client.read(timeout_s=1.0)
    await client.close()


@pytest.mark.parametrize("url", ["serial:///dev/ttyUSB0", "loop://", "tcp://127.0.0.1", "ftp://x:1"])
async def test_only_tcp_and_udp_can_be_served(url: str) -> None:
    with pytest.raises(InputError, match="Accepted forms"):
        await serve(url, echo)


async def test_a_busy_port_is_a_connect_error() -> None:
    async with await serve("tcp://127.0.0.1:0", echo) as server:
        with pytest.raises(ConnectError, match="cannot listen"):
            await serve(server.url, echo)

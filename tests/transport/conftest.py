"""Link pairs for the transport tests: a client and the server side of the same link.

Every pair lives on 127.0.0.1 or in-process (pty, simulated line), so the tests run on the
virtual clock. Loopback TCP and UDP bytes are readable the instant they are written. A pty is
different: the kernel hands written bytes to the other side from a work queue, microseconds
later, so a virtual loop that jumps as soon as nothing is readable could skip past them. Tests
that use a pty therefore get a virtual clock with a small real grace period (the loop waits up
to that long for real I/O before each jump); everything else jumps at once.

Tests get the helpers as fixtures (``link``, ``read_exact``, ``holding_server``): with
``--import-mode=importlib`` a conftest cannot be imported by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from metercom.clock import VirtualClock
from metercom.transport import (
    LineSettings,
    SimulatedLine,
    Transport,
    TransportServer,
    open_pty,
    open_transport,
    serve,
)


@dataclass
class Pair:
    """Two ends of one link and what the link can promise."""

    kind: str
    client: Transport
    server: Transport
    #: The client's read raises ConnectionLost after the server closes.
    client_sees_close: bool = True
    #: The server's read raises ConnectionLost after the client closes.
    server_sees_close: bool = True
    #: Bytes sent right before a close still reach the other end.
    delivers_before_close: bool = True


async def read_exact(transport: Transport, n_bytes: int, timeout_s: float = 5.0) -> bytes:
    """Read exactly ``n_bytes`` from a stream link (one datagram from a datagram link)."""
    if transport.datagram:
        return await transport.read(65535, timeout_s=timeout_s)
    data = bytearray()
    while len(data) < n_bytes:
        data += await transport.read(n_bytes - len(data), timeout_s=timeout_s)
    return bytes(data)


@asynccontextmanager
async def holding_server(url: str) -> AsyncIterator[tuple[TransportServer, asyncio.Queue[Transport]]]:
    """A server whose handler hands each peer transport to the test and then just waits."""
    peers: asyncio.Queue[Transport] = asyncio.Queue()

    async def handler(transport: Transport) -> None:
        await peers.put(transport)
        await asyncio.Event().wait()  # until the server is closed

    server = await serve(url, handler)
    try:
        yield server, peers
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[Pair]:
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        server_side = await asyncio.wait_for(peers.get(), 1.0)
        try:
            yield Pair("tcp", client, server_side)
        finally:
            await client.close()


@asynccontextmanager
async def udp_pair() -> AsyncIterator[Pair]:
    async with holding_server("udp://127.0.0.1:0") as (server, peers):
        client = await open_transport(server.url)
        # A UDP server learns of a peer from its first datagram.
        await client.write(b"hello")
        server_side = await asyncio.wait_for(peers.get(), 1.0)
        assert await server_side.read(timeout_s=1.0) == b"hello"
        try:
            yield Pair("udp", client, server_side, client_sees_close=False, server_sees_close=False)
        finally:
            await client.close()


@asynccontextmanager
async def pty_pair() -> AsyncIterator[Pair]:
    master, slave_path = await open_pty()
    client = await open_transport(slave_path, line=LineSettings(9600))
    try:
        # The pty keeps its slave open (so a simulator survives clients coming and going) and a
        # hang-up flushes the tty's queues: a pty sees no client close and drops unread bytes.
        yield Pair("pty", client, master, server_sees_close=False, delivers_before_close=False)
    finally:
        await client.close()
        await master.close()


@asynccontextmanager
async def socket_url_pair() -> AsyncIterator[Pair]:
    async with holding_server("tcp://127.0.0.1:0") as (server, peers):
        port = server.url.rsplit(":", 1)[1]
        client = await open_transport(f"socket://127.0.0.1:{port}")
        server_side = await asyncio.wait_for(peers.get(), 1.0)
        try:
            yield Pair("socket", client, server_side)
        finally:
            await client.close()


@asynccontextmanager
async def simline_pair() -> AsyncIterator[Pair]:
    line = SimulatedLine(LineSettings(19200), latency_s=0.002, name="conformance")
    try:
        yield Pair("simline", line.a, line.b)
    finally:
        await line.close()


LinkFactory = Callable[[], AbstractAsyncContextManager[Pair]]

PAIRS: dict[str, LinkFactory] = {
    "tcp": tcp_pair,
    "udp": udp_pair,
    "pty-serial": pty_pair,
    "socket-url": socket_url_pair,
    "simline": simline_pair,
}


#: Real seconds a virtual loop waits for pty I/O before jumping (see the module docstring).
PTY_GRACE_S = 0.05


@pytest.fixture
def vclock(request: pytest.FixtureRequest) -> VirtualClock:
    """The virtual clock; with a real grace period where a pty is involved.

    Modules that talk through ptys set ``USES_PTY = True`` and use this fixture for every test.
    """
    callspec = getattr(request.node, "callspec", None)
    pty_link = callspec is not None and callspec.params.get("link") == "pty-serial"
    uses_pty = pty_link or getattr(request.module, "USES_PTY", False)
    return VirtualClock(real_grace_s=PTY_GRACE_S if uses_pty else 0.0)


@pytest.fixture(params=sorted(PAIRS))
def link(request: pytest.FixtureRequest, vclock: VirtualClock) -> LinkFactory:
    """Parametrizes a test over every kind of link; ``async with link() as pair: ...``.

    Depends on ``vclock`` so that the test runs on the clock chosen for its kind of link.
    """
    return PAIRS[request.param]


@pytest.fixture(name="read_exact")
def read_exact_fixture() -> Callable[[Transport, int, float], Awaitable[bytes]]:
    return read_exact


@pytest.fixture(name="holding_server")
def holding_server_fixture() -> Callable[
    [str], AbstractAsyncContextManager[tuple[TransportServer, asyncio.Queue[Transport]]]
]:
    return holding_server

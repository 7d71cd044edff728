"""UDP transport: datagrams to one peer (DLMS/COSEM over the UDP wrapper, IEC 62056-47).

Rule: one :meth:`~UdpTransport.write` sends one datagram and one :meth:`~UdpTransport.read`
returns one whole datagram (``datagram = True``), never a merge or a split. A datagram longer
than ``max_bytes`` is cut like ``recv()`` cuts it, so datagram users pass a ``max_bytes`` as
large as their biggest PDU (65535 is always enough).

Theory of operation: the client side uses a *connected* UDP socket, so the kernel drops
datagrams from any other source and reports ICMP "port unreachable" for our peer; that report
makes the next read raise :class:`~metercom.errors.ConnectionLost` once, and the transport stays
usable (UDP has no connection; the meter may simply not be up yet). UDP has no close either: a
peer that goes away is only noticed by read timeouts. The server side (see ``server.py``) shares
one socket among many peers; each peer gets its own :class:`UdpTransport` that sends with
``sendto`` and is fed by the server.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from metercom.errors import ConnectError, ConnectionLost, InputError
from metercom.transport._rx import ReceiveBuffer
from metercom.transport.base import LineSettings, Transport
from metercom.transport.tcp import format_host_port

__all__ = ["MAX_DATAGRAM", "UdpTransport", "open_udp"]

#: Largest UDP payload over IPv4 (65535 minus 8 bytes UDP and 20 bytes IP header).
MAX_DATAGRAM = 65507


class DatagramProtocol(asyncio.DatagramProtocol):
    """Feeds datagrams of a connected socket into a receive buffer; tracks write pausing.

    The UDP server subclasses it and routes datagrams by source address instead.
    """

    def __init__(self, rx: ReceiveBuffer) -> None:
        self.rx = rx
        self.paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # high=0: pause as soon as a datagram stays queued, resume when the queue is empty.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: Any) -> None:  # noqa: ARG002 - connected socket
        self.rx.feed(data)

    def error_received(self, exc: Exception) -> None:
        self.rx.feed_transient(ConnectionLost, f"the peer is unreachable: {exc}", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.rx.feed_eof("the socket was closed", exc)
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_written(self) -> None:
        while self.paused:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                self.drain_waiters.remove(waiter)


class UdpTransport(Transport):
    """Datagrams to one peer.

    Client side: :func:`open_udp` (owns a connected socket). Server side: made by
    :func:`~metercom.transport.server.serve`, sharing the server's socket.
    """

    datagram = True

    def __init__(
        self,
        url: str,
        aio: asyncio.DatagramTransport,
        rx: ReceiveBuffer,
        *,
        remote_addr: Any = None,
        owner: DatagramProtocol | None = None,
        on_close: Callable[[UdpTransport], None] | None = None,
        wait_written: Callable[[], Any] | None = None,
    ) -> None:
        self.url = url
        self._aio = aio
        self._rx = rx
        self._remote_addr = remote_addr
        self._owner = owner
        self._on_close = on_close
        self._wait_written = wait_written
        self._line: LineSettings | None = None
        self._closed = False
        rx.url = url

    @property
    def line(self) -> LineSettings | None:
        return self._line

    @property
    def remote_addr(self) -> Any:
        """The peer's socket address."""
        return self._remote_addr if self._remote_addr is not None else self._aio.get_extra_info("peername")

    def feed(self, data: bytes) -> None:
        """Hand a datagram from the peer to this transport (used by the UDP server)."""
        self._rx.feed(data)

    def feed_eof(self, reason: str) -> None:
        """The shared socket is gone (used by the UDP server): reads raise ConnectionLost."""
        self._rx.feed_eof(reason)

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self._rx.read(max_bytes, timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if self._aio.is_closing():
            raise ConnectionLost(f"{self.url}: the socket is closed")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if len(data) > MAX_DATAGRAM:
            raise InputError(
                f"{self.url}: a datagram of {len(data)} bytes exceeds the UDP limit of {MAX_DATAGRAM}"
            )
        if not data:
            return
        if self._remote_addr is None:
            self._aio.sendto(data)
        else:
            self._aio.sendto(data, self._remote_addr)

    async def drain(self) -> None:
        # A datagram leaves as one sendto(); asyncio only queues when the socket buffer is full.
        self._check_open()
        if self._wait_written is not None:
            await self._wait_written()

    async def set_line(self, settings: LineSettings) -> None:
        self._line = settings

    def discard_input(self) -> None:
        self._rx.discard()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx.close_local()
        if self._on_close is not None:
            self._on_close(self)
        if self._owner is not None:
            self._aio.close()
            await asyncio.shield(self._owner.closed)


async def open_udp(
    host: str, port: int, *, line: LineSettings | None = None, url: str | None = None
) -> UdpTransport:
    """A connected UDP socket to ``host:port``; raises ConnectError if it cannot be set up."""
    target = format_host_port(host, port)
    url = url or f"udp://{target}"
    loop = asyncio.get_running_loop()
    rx = ReceiveBuffer(url, datagram=True)
    try:
        aio, protocol = await loop.create_datagram_endpoint(
            lambda: DatagramProtocol(rx), remote_addr=(host, port)
        )
    except socket.gaierror as exc:
        raise ConnectError(f"{url}: cannot resolve host {host!r}: {exc.strerror}") from exc
    except OSError as exc:
        raise ConnectError(f"{url}: cannot open a UDP socket to {target}: {exc.strerror or exc}") from exc
    transport = UdpTransport(url, aio, rx, owner=protocol, wait_written=protocol.wait_written)
    if line is not None:
        await transport.set_line(line)
    return transport

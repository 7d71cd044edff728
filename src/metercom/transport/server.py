"""Serving links: accept TCP connections or UDP peers and hand each to a handler as a Transport.

Rule: simulators (and tests) never touch sockets; they call
``server = await serve("tcp://127.0.0.1:0", handler)`` and get one
:class:`~metercom.transport.base.Transport` per peer in ``handler(transport)``, the same class a
client would use, so a simulator runs unchanged on TCP, UDP, a pty or the simulated line.

Theory of operation:

* TCP: every accepted connection becomes a :class:`~metercom.transport.tcp.TcpTransport` (with
  format emulation when the URL has ``?format=``) and runs ``handler`` in its own task.
* UDP: one socket serves all peers. The first datagram from a new source address creates a
  :class:`~metercom.transport.udp.UdpTransport` for that address and starts ``handler``; later
  datagrams from that address go to the same transport, and its writes go back to it. When the
  handler returns, the peer is forgotten; its next datagram starts a new handler.
* The transport is closed when its handler returns. A handler ending with a ``TransportError``
  (the peer went away) is normal and logged at debug level; any other exception is logged with
  its traceback and does not stop the server.
* ``close()`` stops accepting and cancels running handlers (they may clean up in ``finally``);
  ``wait_closed()`` waits until they have all finished. :attr:`TransportServer.url` is the bound
  URL, with the real port when port 0 was asked for, so it can be handed straight to
  :func:`~metercom.transport.url.open_transport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from metercom.errors import ConnectError, TransportError
from metercom.transport._aio import StreamProtocol
from metercom.transport._rx import ReceiveBuffer
from metercom.transport.base import LineSettings, Transport
from metercom.transport.tcp import TcpTransport, format_host_port, tune_tcp_socket
from metercom.transport.udp import DatagramProtocol, UdpTransport
from metercom.transport.url import TransportUrl, parse_transport_url

__all__ = ["Handler", "TransportServer", "serve"]

log = logging.getLogger(__name__)

#: What a server runs for each peer.
Handler = Callable[[Transport], Awaitable[None]]


class TransportServer:
    """A listening TCP or UDP endpoint; see the module docstring."""

    def __init__(self, target: TransportUrl, handler: Handler, line: LineSettings | None) -> None:
        self._target = target
        self._handler = handler
        self._line = line
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._tcp_server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_peers: dict[Any, UdpTransport] = {}
        self.url = target.url

    def __repr__(self) -> str:
        return f"<TransportServer {self.url} peers={len(self._tasks)}>"

    @property
    def handlers_running(self) -> int:
        """Handlers currently running (one per connected peer)."""
        return len(self._tasks)

    # -- peers ----------------------------------------------------------------------------------

    def _start(self, transport: Transport) -> None:
        task = asyncio.get_running_loop().create_task(self._run(transport), name=f"serve {transport.url}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, transport: Transport) -> None:
        try:
            await self._handler(transport)
        except TransportError as exc:
            log.debug("%s: handler for %s ended: %s", self.url, transport.url, exc)
        except Exception:
            log.exception("%s: handler for %s failed", self.url, transport.url)
        finally:
            await transport.close()

    # -- TCP ------------------------------------------------------------------------------------

    def _tcp_protocol(self) -> StreamProtocol:
        return _TcpServerProtocol(self)

    def _tcp_connected(self, protocol: StreamProtocol, aio: asyncio.Transport) -> None:
        peer = aio.get_extra_info("peername")
        url = f"tcp://{format_host_port(peer[0], peer[1])}" if peer else "tcp://?"
        if self._closing:
            aio.abort()
            return
        tune_tcp_socket(aio)
        protocol.rx.set_flow_control(protocol.pause_reading, protocol.resume_reading)
        line = self._line or self._target.line
        self._start(TcpTransport(url, aio, protocol, line=line, emulate_format=self._target.emulate_format))

    # -- UDP ------------------------------------------------------------------------------------

    def _udp_datagram(self, data: bytes, addr: Any) -> None:
        peer = self._udp_peers.get(addr)
        if peer is None:
            if self._closing or self._udp is None:
                return
            url = f"udp://{format_host_port(addr[0], addr[1])}"
            peer = UdpTransport(
                url,
                self._udp,
                ReceiveBuffer(url, datagram=True),
                remote_addr=addr,
                on_close=self._udp_forget,
            )
            self._udp_peers[addr] = peer
            self._start(peer)
        peer.feed(data)

    def _udp_lost(self) -> None:
        for peer in list(self._udp_peers.values()):
            peer.feed_eof("the server socket was closed")

    def _udp_forget(self, peer: UdpTransport) -> None:
        if self._udp_peers.get(peer.remote_addr) is peer:
            del self._udp_peers[peer.remote_addr]

    # -- lifetime -------------------------------------------------------------------------------

    async def listen(self) -> None:
        """Bind and start accepting (called by :func:`serve`)."""
        target = self._target
        loop = asyncio.get_running_loop()
        try:
            if target.kind == "tcp":
                self._tcp_server = await loop.create_server(self._tcp_protocol, target.host, target.port)
                bound = self._tcp_server.sockets[0].getsockname()
            else:
                aio, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpServerProtocol(self), local_addr=(target.host, target.port)
                )
                self._udp = aio
                bound = aio.get_extra_info("sockname")
        except OSError as exc:
            raise ConnectError(f"{target.url}: cannot listen: {exc.strerror or exc}") from exc
        query = target.url.partition("?")[2]
        self.url = f"{target.kind}://{format_host_port(bound[0], bound[1])}" + (f"?{query}" if query else "")

    def close(self) -> None:
        """Stop accepting and cancel every running handler."""
        self._closing = True
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the listener is closed and every handler has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._tcp_server is not None:
            await self._tcp_server.wait_closed()

    async def __aenter__(self) -> TransportServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


class _TcpServerProtocol(StreamProtocol):
    def __init__(self, server: TransportServer) -> None:
        super().__init__(ReceiveBuffer("tcp://?"))
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server._tcp_connected(self, transport)  # type: ignore[arg-type]  # a TCP transport


class _UdpServerProtocol(DatagramProtocol):
    def __init__(self, server: TransportServer) -> None:
        super().__init__(ReceiveBuffer("udp://server", datagram=True))
        self._server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._server._udp_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # On an unconnected socket an ICMP error cannot be tied to one peer reliably.
        log.debug("%s: %s", self._server.url, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._server._udp_lost()


async def serve(url: str, handler: Handler, *, line: LineSettings | None = None) -> TransportServer:
    """Listen on ``tcp://host:port`` or ``udp://host:port`` (port 0: the OS picks one).

    ``line`` is recorded on every peer transport (and gives the emulated format for
    ``tcp://...?format=``). Raises :class:`~metercom.errors.InputError` for a bad URL and
    :class:`~metercom.errors.ConnectError` when the address cannot be bound.
    """
    server = TransportServer(parse_transport_url(url, server=True), handler, line)
    await server.listen()
    return server

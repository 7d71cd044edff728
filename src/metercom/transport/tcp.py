"""TCP transport: a byte stream to a meter, a TCP modem or a serial-to-TCP bridge.

Rule: TCP is a plain byte pipe. It has no baud rate or character format of its own, so
:meth:`TcpTransport.set_line` only records what the protocol asked for; a transparent bridge
sets its own serial side. The one exception is *format emulation* (below).

Theory of operation: built on asyncio's transport/protocol layer (the layer under asyncio
streams; a StreamReader has no public way to drop buffered input, which ``discard_input``
needs). Received bytes go into a shared :class:`~metercom.transport._rx.ReceiveBuffer`; an EOF
or reset from the peer becomes :class:`~metercom.errors.ConnectionLost` once buffered bytes
have been read. ``drain()`` returns when asyncio has handed every byte to the kernel; TCP has
no way to tell when the far end's UART has sent them, so protocols that switch baud rate over a
bridge must add the bridge's own settle time.

Format emulation (``tcp://host:port?format=7E1``): many cheap bridges (ESP8266 software UARTs,
some GSM modems) run their UART at 8N1 whatever the meter speaks. A 7E1 meter's parity bit then
arrives as bit 7 of every byte, and the meter ignores requests whose bit 7 is not its parity
(field note: ``/?!\\r\\n`` on such a wire is ``AF 3F 21 8D 0A``). With emulation on, this
transport adds the parity bit on send and checks and strips it on receive, counting bad
characters in :attr:`TcpTransport.parity_errors`; ``set_line`` then switches the emulated format
(IEC 62056-21 mode E changes from 7E1 to 8N1 for HDLC). Only 10-bit formats can be emulated.
"""

from __future__ import annotations

import asyncio
import socket

from metercom.errors import ConnectError, ConnectionLost
from metercom.transport._aio import StreamProtocol
from metercom.transport._rx import ReceiveBuffer
from metercom.transport._uart import PipeEmulation, pipe_emulation
from metercom.transport.base import LineSettings, Transport

__all__ = ["TcpTransport", "format_host_port", "open_tcp"]

#: The format a pipe emulates when asked to emulate without being told which (IEC 62056-21's).
PIPE_DEFAULT = LineSettings(bytesize=7, parity="E", stopbits=1)

#: How long ``close()`` lets asyncio flush unsent bytes before it aborts the connection.
CLOSE_FLUSH_S = 2.0


def format_host_port(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, as in URLs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TcpTransport(Transport):
    """One TCP connection; made by :func:`open_tcp`, or by :func:`~metercom.transport.server.serve`."""

    def __init__(
        self,
        url: str,
        aio: asyncio.Transport,
        protocol: StreamProtocol,
        *,
        line: LineSettings | None = None,
        emulate_format: bool = False,
    ) -> None:
        self.url = url
        self._aio = aio
        self._protocol = protocol
        self._rx = protocol.rx
        self._line = line
        self._closed = False
        #: Received characters whose parity (emulated format) was wrong; they are still delivered.
        self.parity_errors = 0
        #: Received characters whose stop bit (emulated format) was wrong; still delivered.
        self.framing_errors = 0
        self._emulation: PipeEmulation | None = None
        if emulate_format:
            self._emulation = pipe_emulation((line or PIPE_DEFAULT).frame_format)
            protocol.decode = self._decode
        self._rx.url = url

    @property
    def line(self) -> LineSettings | None:
        return self._line

    @property
    def emulated_format(self) -> str | None:
        """The character format emulated on this byte pipe, or ``None`` when it is passed as is."""
        return None if self._emulation is None else self._emulation.frame_format

    def _decode(self, data: bytes) -> bytes:
        if self._emulation is None:
            return data
        decoded, parity_errors, framing_errors = self._emulation.decode(data)
        self.parity_errors += parity_errors
        self.framing_errors += framing_errors
        return decoded

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self._rx.read(max_bytes, timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if self._aio.is_closing() or self._protocol.lost:
            raise ConnectionLost(f"{self.url}: the connection is closed (peer closed it or it failed)")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if data:
            self._aio.write(self._emulation.encode(data) if self._emulation is not None else data)

    async def drain(self) -> None:
        self._check_open()
        await self._protocol.wait_written()
        if self._protocol.lost and self._aio.get_write_buffer_size():
            raise ConnectionLost(f"{self.url}: the connection was lost before all bytes were sent")

    async def set_line(self, settings: LineSettings) -> None:
        if self._emulation is not None:
            # Build first: an impossible format raises before anything changes.
            self._emulation = pipe_emulation(settings.frame_format)
        self._line = settings

    def discard_input(self) -> None:
        # Bytes still in the kernel's socket buffer are not touched; asyncio moves them to us on
        # its next pass and they then count as new. Call this right before sending a request.
        self._rx.discard()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx.close_local()
        if not self._aio.is_closing():
            self._aio.close()  # flushes what is queued, then closes
        try:
            async with asyncio.timeout(CLOSE_FLUSH_S):
                await self._protocol.wait_closed()
        except TimeoutError:
            # The peer does not take our bytes (window closed); give up on them.
            self._aio.abort()
            await self._protocol.wait_closed()


async def open_tcp(
    host: str,
    port: int,
    *,
    line: LineSettings | None = None,
    emulate_format: bool = False,
    connect_timeout_s: float = 10.0,
    url: str | None = None,
) -> TcpTransport:
    """Connect to ``host:port``.

    ``line`` is recorded (and, with ``emulate_format``, gives the emulated character format).
    Raises :class:`~metercom.errors.ConnectError` naming ``host:port`` when the connection is
    refused, the name does not resolve, or nothing answers within ``connect_timeout_s`` (the
    exception's ``__cause__`` is then a ``TimeoutError``).
    """
    target = format_host_port(host, port)
    url = url or f"tcp://{target}"
    loop = asyncio.get_running_loop()
    rx = ReceiveBuffer(url)
    protocol = StreamProtocol(rx)
    rx.set_flow_control(protocol.pause_reading, protocol.resume_reading)
    try:
        async with asyncio.timeout(connect_timeout_s):
            aio, _ = await loop.create_connection(lambda: protocol, host, port)
    except TimeoutError as exc:
        raise ConnectError(
            f"{url}: no connection to {target} within {connect_timeout_s:g} s "
            "(host down, firewall dropping packets, or the listener's queue is full)"
        ) from exc
    except socket.gaierror as exc:
        raise ConnectError(f"{url}: cannot resolve host {host!r}: {exc.strerror}") from exc
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{url}: connection to {target} refused (nothing listens on that port)") from exc
    except OSError as exc:
        raise ConnectError(f"{url}: cannot connect to {target}: {exc.strerror or exc}") from exc
    tune_tcp_socket(aio)
    return TcpTransport(url, aio, protocol, line=line, emulate_format=emulate_format)


def tune_tcp_socket(aio: asyncio.BaseTransport) -> None:
    sock = aio.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Meter protocols are request/response with small frames: Nagle's algorithm would hold a
        # short request back waiting for an ACK of the previous one (asyncio already sets this on
        # recent Pythons; setting it again is harmless).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

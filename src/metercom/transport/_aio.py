"""The asyncio protocol behind every stream transport (TCP, serial ports, ``socket://``).

Rule: asyncio calls this protocol; it feeds a :class:`~metercom.transport._rx.ReceiveBuffer`
and tells the owning transport when the write buffer is empty and when the link is gone. The
owning transport (TcpTransport, SerialTransport) turns that into the four verbs.

Theory of ``drain()``: the write-buffer limits are set to zero, so asyncio calls
``pause_writing`` the moment anything stays queued in user space and ``resume_writing`` the
moment the queue is empty again. Waiting for "resumed" is therefore waiting until every byte has
been handed to the kernel. What the kernel and the hardware do after that is the transport's
business (a serial port also polls the OS output queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from metercom.transport._rx import ReceiveBuffer

__all__ = ["StreamProtocol"]


class StreamProtocol(asyncio.Protocol):
    """Feeds received bytes into ``rx``; tracks write-buffer emptiness and connection loss."""

    def __init__(self, rx: ReceiveBuffer, *, decode: Callable[[bytes], bytes] | None = None) -> None:
        self.rx = rx
        self.decode = decode
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.lost = False
        self.lost_exc: BaseException | None = None
        self._closed: asyncio.Future[None] | None = None
        #: Called once with the exception (or None) when the connection is gone.
        self.on_lost: Callable[[BaseException | None], None] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._closed = asyncio.get_running_loop().create_future()
        # high=0: pause_writing as soon as anything is queued, resume when the queue is empty.
        self.transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        self.rx.feed(self.decode(data) if self.decode is not None else data)

    def eof_received(self) -> bool:
        self.rx.feed_eof("the peer closed the connection")
        return False  # let asyncio close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.lost_exc = exc
        if exc is None:
            self.rx.feed_eof("the connection was closed")
        else:
            self.rx.feed_eof(f"the connection failed: {exc}", exc)
        self._wake_drain()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self.on_lost is not None:
            self.on_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    # -- for the owning transport ---------------------------------------------------------------

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    @property
    def write_pending(self) -> bool:
        """True while bytes wait in asyncio's user-space write buffer."""
        return self._paused and not self.lost

    def _wake_drain(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_written(self) -> None:
        """Return once asyncio's write buffer is empty or the connection is gone."""
        while self.write_pending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                self._drain_waiters.remove(waiter)

    async def wait_closed(self) -> None:
        """Return once asyncio has reported the connection lost."""
        if self._closed is not None:
            await asyncio.shield(self._closed)

"""The receive side every transport shares: buffered bytes, waiting readers, end of stream.

Rule: a transport's I/O callbacks *feed* a :class:`ReceiveBuffer` and its ``read()`` *takes* from
it; nothing else touches received bytes. That gives every link the same observable behaviour:

* ``read()`` returns as soon as at least one byte is buffered (stream links), or the oldest
  whole datagram (datagram links), and never waits when data is already there;
* after the peer closed the link, buffered bytes are still handed out first, and only then does
  ``read()`` raise :class:`~metercom.errors.ConnectionLost`;
* after a local ``close()`` every read raises at once and buffered bytes are dropped;
* a timeout raises :class:`~metercom.errors.TransportTimeout` at exactly ``timeout_s`` seconds on
  the running loop's clock (virtual time in tests), and cancelling a read loses no bytes, since
  bytes only leave the buffer when ``read()`` returns them.

Flow control: when more than ``high_water`` bytes pile up unread the buffer asks its owner to
pause reading from the OS (``pause``), and to resume once a reader has taken it below a quarter
of that, so a flooding peer cannot grow our memory without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from metercom.errors import ConnectionLost, InputError, TransportError, TransportTimeout

__all__ = ["ReceiveBuffer"]

#: Bytes a stream buffer holds before it asks its owner to stop reading from the OS.
DEFAULT_HIGH_WATER = 1 << 20


class ReceiveBuffer:
    """Bytes (or datagrams) received but not yet read, and how the stream ended."""

    def __init__(
        self,
        url: str,
        *,
        datagram: bool = False,
        high_water: int = DEFAULT_HIGH_WATER,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.datagram = datagram
        self._stream = bytearray()
        self._datagrams: deque[bytes] = deque()
        self._queued = 0
        self._high_water = high_water
        self._pause = pause
        self._resume = resume
        self._paused = False
        # (exception class, message, cause) once the stream has ended; kept as parts so every
        # read raises a fresh exception instead of re-raising one instance with a growing traceback.
        self._end: tuple[type[TransportError], str, BaseException | None] | None = None
        self._closed_locally = False
        # A one-shot error (an ICMP "port unreachable" on UDP): raised by one read, then forgotten.
        self._transient: tuple[type[TransportError], str, BaseException | None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        #: Datagrams dropped because ``high_water`` bytes of datagrams were already unread.
        self.dropped_datagrams = 0

    def set_flow_control(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Tell the buffer how to stop and restart reading from the OS."""
        self._pause, self._resume = pause, resume

    # -- feeding (called from I/O callbacks) ----------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes (stream links) or one datagram (datagram links)."""
        # An empty datagram carries nothing a protocol could use, and read() promises >= 1 byte.
        if self._end is not None or not data:
            return
        if self.datagram:
            if self._queued + len(data) > self._high_water:
                # Nobody reads and the peer keeps sending: drop, as a full socket buffer would.
                self.dropped_datagrams += 1
                return
            self._datagrams.append(bytes(data))
        else:
            self._stream += data
        self._queued += len(data)
        if self._pause is not None and not self._paused and self._queued > self._high_water:
            self._paused = True
            self._pause()
        self._wake()

    def feed_eof(self, reason: str, cause: BaseException | None = None) -> None:
        """The peer closed the link: readers get ``ConnectionLost`` once the buffer is empty."""
        self.feed_end(ConnectionLost, reason, cause)

    def feed_end(self, kind: type[TransportError], reason: str, cause: BaseException | None = None) -> None:
        """End the stream with an error of class ``kind`` (first end wins)."""
        if self._end is None:
            self._end = (kind, reason, cause)
        self._wake()

    def feed_transient(
        self, kind: type[TransportError], reason: str, cause: BaseException | None = None
    ) -> None:
        """Make the next read that finds no data raise once; the link stays usable."""
        if self._end is None:
            self._transient = (kind, reason, cause)
            self._wake()

    def close_local(self) -> None:
        """The link was closed on this side: drop buffered bytes, fail every pending read."""
        self._closed_locally = True
        self._stream.clear()
        self._datagrams.clear()
        self._queued = 0
        self.feed_end(ConnectionLost, "the link was closed on this side")

    # -- state ----------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._queued

    @property
    def ended(self) -> bool:
        """True once the peer closed, the link failed or it was closed here."""
        return self._end is not None

    @property
    def closed_locally(self) -> bool:
        return self._closed_locally

    def _has_data(self) -> bool:
        return bool(self._datagrams) if self.datagram else bool(self._stream)

    def _ready(self) -> bool:
        return self._has_data() or self._end is not None or self._transient is not None

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- taking ---------------------------------------------------------------------------------

    def discard(self) -> int:
        """Drop everything buffered; returns how many bytes were dropped."""
        dropped = self._queued
        self._stream.clear()
        self._datagrams.clear()
        self._queued = 0
        self._maybe_resume()
        return dropped

    def _raise_end(self, end: tuple[type[TransportError], str, BaseException | None]) -> None:
        kind, reason, cause = end
        raise kind(f"{self.url}: {reason}") from cause

    def take_nowait(self, max_bytes: int) -> bytes:
        """Return up to ``max_bytes`` buffered bytes (maybe none); raise if the stream has ended."""
        if self._closed_locally and self._end is not None:
            self._raise_end(self._end)
        if self.datagram:
            if self._datagrams:
                packet = self._datagrams.popleft()
                self._queued -= len(packet)
                # Like recv() on a datagram socket: the rest of a too-long datagram is lost.
                return packet[:max_bytes]
        elif self._stream:
            data = bytes(self._stream[:max_bytes])
            del self._stream[:max_bytes]
            self._queued -= len(data)
            self._maybe_resume()
            return data
        if self._transient is not None:
            transient, self._transient = self._transient, None
            self._raise_end(transient)
        if self._end is not None:
            self._raise_end(self._end)
        return b""

    def _maybe_resume(self) -> None:
        if self._paused and self._queued <= self._high_water // 4:
            self._paused = False
            if self._resume is not None:
                self._resume()

    async def read(self, max_bytes: int, timeout_s: float | None) -> bytes:
        """Wait for data as described in the module docstring."""
        if max_bytes < 1:
            raise InputError(f"max_bytes must be at least 1, got {max_bytes}")
        if not self._ready():
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(None if timeout_s is None else max(0.0, timeout_s)):
                    while not self._ready():
                        waiter: asyncio.Future[None] = loop.create_future()
                        self._waiters.append(waiter)
                        try:
                            await waiter
                        finally:
                            self._waiters.remove(waiter)
            except TimeoutError:
                raise TransportTimeout(f"{self.url}: no data within {timeout_s:g} s") from None
        return self.take_nowait(max_bytes)

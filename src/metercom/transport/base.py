"""The transport contract: bytes in, bytes out, no protocol knowledge.

A :class:`Transport` is one open link to one peer (a serial port, a TCP connection, one end of
a simulated line...). Protocol sessions drive it with four verbs:

* ``await read(max_bytes, timeout_s=...)`` returns at least one byte (one whole datagram on
  UDP), raises :class:`~metercom.errors.TransportTimeout` when nothing came in time and
  :class:`~metercom.errors.ConnectionLost` when the peer closed the link.
* ``await write(data)`` queues bytes for sending and returns without waiting for the wire.
* ``await drain()`` returns once every written byte has physically left (a serial port's
  ``tcdrain``; on the simulated line, the virtual time the last stop bit ends). Protocols call it
  before changing baud rate or turning a half-duplex line around.
* ``await set_line(settings)`` changes baud rate and character format where the link has them
  (serial ports, RFC 2217, the simulated line); on plain byte pipes such as TCP it only records
  the settings, since a transparent converter sets its own.

All transports raise only :class:`~metercom.errors.TransportError` subclasses; ``OSError`` and
``serial.SerialException`` are translated at this boundary.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

from metercom.errors import InputError

__all__ = ["LineSettings", "Transport"]

_FORMAT = re.compile(r"^([5-8])([NEOMS])([12])$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Baud rate and character format of an asynchronous serial line.

    ``LineSettings.parse("7E1", baud_rate=300)``; :attr:`bits_per_char` counts start, data,
    parity and stop bits (7E1 and 8N1 are both 10), so one character takes :attr:`char_time_s`.
    """

    baud_rate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    def __post_init__(self) -> None:
        if self.baud_rate <= 0:
            raise InputError(f"baud rate must be positive, got {self.baud_rate}")
        if self.bytesize not in (5, 6, 7, 8):
            raise InputError(f"character size must be 5..8 bits, got {self.bytesize}")
        if self.parity not in ("N", "E", "O", "M", "S"):
            raise InputError(f"parity must be one of N, E, O, M, S, got {self.parity!r}")
        if self.stopbits not in (1, 2):
            raise InputError(f"stop bits must be 1 or 2, got {self.stopbits}")

    @classmethod
    def parse(cls, frame_format: str, baud_rate: int = 9600) -> LineSettings:
        """From a format string such as ``"7E1"`` or ``"8N1"``."""
        m = _FORMAT.match(frame_format.strip())
        if m is None:
            raise InputError(f"not a character format: {frame_format!r} (expected e.g. 7E1 or 8N1)")
        return cls(baud_rate, int(m[1]), m[2].upper(), int(m[3]))

    @property
    def frame_format(self) -> str:
        return f"{self.bytesize}{self.parity}{self.stopbits}"

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time_s(self) -> float:
        """Seconds one character occupies the line."""
        return self.bits_per_char / self.baud_rate

    def wire_time_s(self, n_bytes: int) -> float:
        """Seconds ``n_bytes`` characters occupy the line, back to back."""
        return n_bytes * self.bits_per_char / self.baud_rate

    def with_baud(self, baud_rate: int) -> LineSettings:
        return replace(self, baud_rate=baud_rate)

    def __str__(self) -> str:
        return f"{self.baud_rate} {self.frame_format}"


class Transport(ABC):
    """One open link. Use as an async context manager or call :meth:`close`."""

    #: The URL the link was opened from (for messages and logs).
    url: str = ""
    #: True where the link carries datagrams (UDP): each :meth:`read` returns one whole datagram.
    datagram: bool = False

    @property
    @abstractmethod
    def line(self) -> LineSettings | None:
        """Current line settings, or ``None`` for links without any (TCP, UDP)."""

    @abstractmethod
    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        """Return 1..``max_bytes`` bytes as soon as any are available.

        Raises ``TransportTimeout`` after ``timeout_s`` seconds without a byte (``None`` waits
        forever) and ``ConnectionLost`` once the peer has closed the link.
        """

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; raises ``ConnectionLost`` on a closed link."""

    @abstractmethod
    async def drain(self) -> None:
        """Wait until every written byte has left the link."""

    @abstractmethod
    async def set_line(self, settings: LineSettings) -> None:
        """Change baud rate and character format (recorded only on links without them)."""

    @abstractmethod
    def discard_input(self) -> None:
        """Drop bytes received but not yet read (stale echoes and noise before a new request)."""

    @abstractmethod
    async def close(self) -> None:
        """Close the link; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

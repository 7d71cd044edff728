"""The IEC 62056-47 wrapper: an 8-byte header in front of every APDU on TCP and UDP.

Rule (IEC 62056-47:2006, the wrapper sub-layer of the COSEM transport layer for IPv4
networks; Green Book clause 7.3.3, "the wrapper protocol data unit")::

    version (2) = 0x0001 | source wPort (2) | destination wPort (2) | length (2) | APDU (length bytes)

All fields are big-endian. The wPort (wrapper port) plays the role of the HDLC address: the
client wPort is the client SAP (0x10 public client, 0x01 management process), the server
wPort addresses a logical device (0x01 management logical device, 0x7F all-station). The
length counts the APDU only and has 16 bits, so an APDU is at most 65535 bytes. On UDP every
datagram carries exactly one wrapper frame; on TCP frames follow each other in the byte stream
with nothing in between, so a receiver finds frame boundaries from the length fields alone.

Theory of operation. :meth:`WrapperFrame.from_bytes` decodes exactly one frame and is also the
datagram decoder (:func:`decode_datagram`). :class:`WrapperStreamDecoder` reassembles frames
from TCP reads of any size: it waits for a whole header, checks the version and bounds the
length by ``max_length`` before waiting for the body, so a corrupt length cannot make it hold
more than ``8 + max_length`` bytes. A TCP stream has no resynchronisation point: after a bad
header the decoder stays broken and repeats the error (the connection must be closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "HEADER_LENGTH",
    "MAX_LENGTH",
    "VERSION",
    "WrapperFrame",
    "WrapperStreamDecoder",
    "decode_datagram",
]

_LAYER = "wrapper"

VERSION: Final = 0x0001
HEADER_LENGTH: Final = 8
MAX_LENGTH: Final = 0xFFFF


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One wrapper frame: source and destination wPort and the APDU it carries."""

    source_wport: int
    destination_wport: int
    apdu: bytes
    version: int = VERSION

    def to_bytes(self) -> bytes:
        """Encode header + APDU. Raises :class:`LocalProtocolError` on out-of-range fields."""
        for name, value in (
            ("source_wport", self.source_wport),
            ("destination_wport", self.destination_wport),
            ("version", self.version),
        ):
            if not 0 <= value <= 0xFFFF:
                raise LocalProtocolError(f"{name} must fit in 16 bits, got {value}", layer=_LAYER)
        if len(self.apdu) > MAX_LENGTH:
            raise LocalProtocolError(
                f"APDU of {len(self.apdu)} bytes does not fit the 16-bit wrapper length", layer=_LAYER
            )
        return (
            self.version.to_bytes(2, "big")
            + self.source_wport.to_bytes(2, "big")
            + self.destination_wport.to_bytes(2, "big")
            + len(self.apdu).to_bytes(2, "big")
            + self.apdu
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, max_length: int = MAX_LENGTH) -> WrapperFrame:
        """Decode exactly one frame. Raises :class:`FrameError` on a wrong version, a length
        that disagrees with the data, or a length above ``max_length``."""
        data = bytes(data)
        version, source, destination, length = _parse_header(data, max_length)
        if len(data) != HEADER_LENGTH + length:
            raise FrameError(
                f"wrapper length field says {length} bytes, {len(data) - HEADER_LENGTH} follow the header",
                layer=_LAYER,
                data=data,
            )
        return cls(source, destination, data[HEADER_LENGTH:], version)


def _parse_header(data: bytes | bytearray, max_length: int) -> tuple[int, int, int, int]:
    if len(data) < HEADER_LENGTH:
        raise FrameError(
            f"truncated wrapper header: {len(data)} of 8 bytes",
            layer=_LAYER,
            data=bytes(data[:HEADER_LENGTH]),
        )
    version = (data[0] << 8) | data[1]
    if version != VERSION:
        raise FrameError(
            f"wrapper version 0x{version:04x}, expected 0x0001 (is this really a DLMS wrapper stream?)",
            layer=_LAYER,
            data=bytes(data[:HEADER_LENGTH]),
        )
    length = (data[6] << 8) | data[7]
    if length > max_length:
        raise FrameError(
            f"wrapper length {length} exceeds the configured maximum {max_length}",
            layer=_LAYER,
            data=bytes(data[:HEADER_LENGTH]),
        )
    return version, (data[2] << 8) | data[3], (data[4] << 8) | data[5], length


def decode_datagram(datagram: bytes, *, max_length: int = MAX_LENGTH) -> WrapperFrame:
    """Decode one UDP datagram: exactly one wrapper frame, nothing before or after it."""
    return WrapperFrame.from_bytes(datagram, max_length=max_length)


class WrapperStreamDecoder:
    """Reassemble wrapper frames from a TCP byte stream, whatever the read sizes.

    ``feed(data)`` appends bytes, ``next()`` returns a :class:`WrapperFrame` or NEED_DATA and
    raises :class:`FrameError` (then, and on every later call) when the stream is corrupt.
    """

    def __init__(self, *, max_length: int = MAX_LENGTH) -> None:
        if not 0 <= max_length <= MAX_LENGTH:
            raise LocalProtocolError(f"max_length must be 0..{MAX_LENGTH}", layer=_LAYER)
        self.max_length = max_length
        self._buffer = bytearray()
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def broken(self) -> bool:
        """True once a corrupt header was seen; the stream cannot be resynchronised."""
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is None:
            self._buffer += data

    def __iter__(self) -> Iterator[WrapperFrame]:
        while (item := self.next()) is not NEED_DATA:
            yield item

    def next(self) -> WrapperFrame | NeedData:
        if self._error is not None:
            raise self._error
        buf = self._buffer
        if len(buf) < HEADER_LENGTH:
            return NEED_DATA
        try:
            version, source, destination, length = _parse_header(buf, self.max_length)
        except RemoteProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            raise
        end = HEADER_LENGTH + length
        if len(buf) < end:
            return NEED_DATA
        apdu = bytes(buf[HEADER_LENGTH:end])
        del buf[:end]
        return WrapperFrame(source, destination, apdu, version)

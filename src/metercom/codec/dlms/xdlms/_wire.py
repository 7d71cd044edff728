"""Bounded A-XDR reading and checked writing shared by the xDLMS APDU codecs (internal).

Rule: a :class:`Reader` never reads past its buffer and never lets anything but
:class:`~metercom.errors.RemoteProtocolError` out. Its messages name the APDU, the field and
the offset, and dump only the first three bytes of the APDU (tag, choice, invoke-id): the
values behind them may be a password (SET of an LLS secret, ACTION change_secret), so nothing
from a value is ever shown. A-XDR errors from :mod:`metercom.codec.dlms.axdr` are re-raised
with their dump removed for the same reason.

Writers check every integer against its field width and raise
:class:`~metercom.errors.LocalProtocolError` for values that do not fit.
"""

from __future__ import annotations

from typing import Final

from metercom.codec.dlms.axdr import decode_data, encode_length
from metercom.errors import LocalProtocolError, RemoteProtocolError
from metercom.model.dlms_data import Data

LAYER: Final = "xdlms"

Buffer = bytes | bytearray | memoryview


def as_bytes(data: object) -> bytes:
    """The input of a decoder as ``bytes`` (copied once if it is a bytearray or memoryview)."""
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise LocalProtocolError(f"expected bytes, got {type(data).__name__}", layer=LAYER)


def _reason(exc: RemoteProtocolError) -> str:
    """The message of an A-XDR error without its hex dump (see the module docstring)."""
    text = str(exc)
    if exc.data is not None and text.endswith("]"):
        text = text.rsplit(" [", 1)[0]
    return text


class Reader:
    """A cursor over one APDU. ``apdu`` names it in error messages."""

    __slots__ = ("apdu", "buf", "end", "pos")

    def __init__(self, buf: bytes, apdu: str, pos: int = 0) -> None:
        self.buf = buf
        self.apdu = apdu
        self.pos = pos
        self.end = len(buf)

    def error(self, message: str, at: int | None = None) -> RemoteProtocolError:
        """An error about the field at ``at`` (default: the current position)."""
        where = self.pos if at is None else at
        return RemoteProtocolError(
            f"{self.apdu}: {message} at offset {where}", layer=LAYER, data=self.buf[:3]
        )

    def truncated(self, what: str, need: int) -> RemoteProtocolError:
        return self.error(f"truncated: {what} needs {need} byte(s), {max(self.end - self.pos, 0)} left")

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return self.end - self.pos

    def u8(self, what: str) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.truncated(what, 1)
        self.pos = pos + 1
        return self.buf[pos]

    def u16(self, what: str) -> int:
        pos = self.pos
        stop = pos + 2
        if stop > self.end:
            raise self.truncated(what, 2)
        self.pos = stop
        return int.from_bytes(self.buf[pos:stop], "big")

    def u32(self, what: str) -> int:
        pos = self.pos
        stop = pos + 4
        if stop > self.end:
            raise self.truncated(what, 4)
        self.pos = stop
        return int.from_bytes(self.buf[pos:stop], "big")

    def flag(self, what: str) -> bool:
        """An OPTIONAL usage flag or a BOOLEAN: 00 is FALSE, anything else TRUE (as A-XDR)."""
        return self.u8(what) != 0

    def fixed(self, size: int, what: str) -> bytes:
        pos = self.pos
        stop = pos + size
        if stop > self.end:
            raise self.truncated(what, size)
        self.pos = stop
        return self.buf[pos:stop]

    def length(self, what: str) -> int:
        """An A-XDR length (short or long form, up to 4 length bytes)."""
        pos = self.pos
        if pos >= self.end:
            raise self.truncated(f"{what} length", 1)
        first = self.buf[pos]
        if first < 0x80:
            self.pos = pos + 1
            return first
        n = first & 0x7F
        if n == 0 or n > 4:
            raise self.error(f"{what}: length form 0x{first:02x} not supported (1..4 length bytes)")
        stop = pos + 1 + n
        if stop > self.end:
            raise self.truncated(f"{what} length", 1 + n)
        self.pos = stop
        return int.from_bytes(self.buf[pos + 1 : stop], "big")

    def octet_string(self, what: str) -> bytes:
        """OCTET STRING: A-XDR length, then that many bytes (checked against the bytes left)."""
        size = self.length(what)
        return self.fixed(size, what)

    def count(self, what: str, min_item_size: int) -> int:
        """A SEQUENCE OF element count; no element takes fewer than ``min_item_size`` bytes."""
        start = self.pos
        n = self.length(f"{what} count")
        if n * min_item_size > self.end - self.pos:
            raise self.error(
                f"{what} claims {n} elements of at least {min_item_size} byte(s), "
                f"only {self.end - self.pos} byte(s) left",
                at=start,
            )
        return n

    def data(self, what: str) -> Data:
        """One tagged ``Data`` value."""
        start = self.pos
        try:
            value, self.pos = decode_data(self.buf, start)
        except RemoteProtocolError as exc:
            raise self.error(f"{what} is not valid A-XDR data ({_reason(exc)})", at=start) from None
        return value

    def rest(self) -> bytes:
        """Everything not read yet."""
        pos = self.pos
        self.pos = self.end
        return self.buf[pos:]

    def finish(self) -> None:
        """Check that the APDU has been read completely."""
        if self.pos != self.end:
            raise self.error(f"{self.end - self.pos} unexpected byte(s) after the last field")


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def check_uint(value: object, bits: int, what: str) -> int:
    """``value`` as an unsigned integer of ``bits`` bits, else :class:`LocalProtocolError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise LocalProtocolError(
            f"{what} must be an integer 0..{(1 << bits) - 1}, got {value!r}", layer=LAYER
        )
    return value


def check_int8(value: object, what: str) -> int:
    """``value`` as an Integer8 (-128..127), else :class:`LocalProtocolError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
        raise LocalProtocolError(f"{what} must be an Integer8 (-128..127), got {value!r}", layer=LAYER)
    return value


def check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise LocalProtocolError(f"{what} must be bytes, got {type(value).__name__}", layer=LAYER)
    return value


def octet_string(value: bytes) -> bytes:
    """OCTET STRING: A-XDR length, then the bytes."""
    return encode_length(len(value)) + value


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")

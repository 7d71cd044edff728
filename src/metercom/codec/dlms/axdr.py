"""A-XDR encoding (IEC 61334-6) of DLMS data, with the BER-style length used throughout DLMS.

Rule: every decoder is bounded. A length is checked against the bytes actually available
before anything is allocated, and no input can decode into more elements than it has bytes.
"""

from __future__ import annotations

from metercom.errors import RemoteProtocolError

__all__ = ["decode_length", "encode_length"]

_LAYER = "a-xdr"


def encode_length(length: int) -> bytes:
    """Encode a length: one byte below 128, else ``0x80 | n`` followed by ``n`` big-endian bytes."""
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def decode_length(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a length at ``offset``; return ``(length, offset after it)``.

    Accepts the long form even where the short one would do (Kamstrup sends ``81 xx``) and up to
    four length bytes. Raises :class:`RemoteProtocolError` on truncation or an oversize form.
    """
    if offset >= len(data):
        raise RemoteProtocolError("length expected, input ended", layer=_LAYER, data=bytes(data[-16:]))
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise RemoteProtocolError(
            f"length form 0x{first:02x} not supported (1..4 length bytes allowed)",
            layer=_LAYER,
            data=bytes(data[offset : offset + 8]),
        )
    end = offset + 1 + n
    if end > len(data):
        raise RemoteProtocolError(
            f"length of {n} bytes announced, only {len(data) - offset - 1} left", layer=_LAYER
        )
    return int.from_bytes(data[offset + 1 : end], "big"), end

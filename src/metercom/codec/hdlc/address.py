"""HDLC addresses of DLMS: one byte for a client, one, two or four bytes for a server.

Rule (IEC 62056-46:2002+A1:2006, clause 6.4.2.2 "address field"; Green Book clause 8.4.2):
every address byte carries 7 address bits in its upper bits and an extension bit in bit 0;
the extension bit is 1 on the last byte of an address and 0 on all others, so a receiver
finds the end of the destination and source address fields without knowing their sizes.

* A client address is one byte: the client SAP (0x10 public client, 0x01 management process,
  0x7F all-station).
* A server address has an upper part, the logical device address (0x01 management logical
  device, 0x7F / 0x3FFF all-station), and an optional lower part, the physical device address
  (0x7E / 0x3FFE "calling" address for events). One byte carries the upper part only (7 bits);
  two bytes carry 7 + 7 bits; four bytes carry 14 + 14 bits, each part as two 7-bit groups,
  most significant group first. Three-byte addresses do not exist.

Example: ``02 23`` is logical 0x02 >> 1 = 1, physical 0x23 >> 1 = 17; ``00 02 0C C5`` is
logical 1, physical (0x0C >> 1) << 7 | 0xC5 >> 1 = 866.

Theory of operation: :class:`HdlcAddress` is a frozen value with the wire length it was
received with (so frames re-encode byte for byte). Decoded addresses are cached by their wire
bytes, because a link sees the same two or three addresses over and over; the cache is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from metercom.errors import FrameError, LocalProtocolError

__all__ = [
    "ALL_STATION",
    "ALL_STATION_4_BYTE",
    "CALLING_PHYSICAL",
    "CALLING_PHYSICAL_4_BYTE",
    "MANAGEMENT_LOGICAL_DEVICE",
    "NO_STATION",
    "PUBLIC_CLIENT",
    "HdlcAddress",
    "decode_address",
]

_LAYER = "hdlc"

NO_STATION: Final = 0x00
#: Client SAP of the public client (no authentication).
PUBLIC_CLIENT: Final = 0x10
#: Logical device address of the management logical device, present in every server.
MANAGEMENT_LOGICAL_DEVICE: Final = 0x01
#: All-station (broadcast) address of a client, or of a server's upper part in 1 and 2 byte form.
ALL_STATION: Final = 0x7F
#: All-station upper address in 4-byte form.
ALL_STATION_4_BYTE: Final = 0x3FFF
#: Physical address a server uses as source of event reports, 2-byte and 4-byte forms.
CALLING_PHYSICAL: Final = 0x7E
CALLING_PHYSICAL_4_BYTE: Final = 0x3FFE


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """One HDLC address: ``logical`` (upper) and ``physical`` (lower, absent in 1-byte form).

    ``length`` is the encoded size, 1, 2 or 4; 0 (the default) chooses 1 without a physical
    address, 2 when both parts fit in 7 bits, else 4. A client address is ``HdlcAddress(16)``.
    """

    logical: int
    physical: int | None = None
    length: int = 0

    def __post_init__(self) -> None:
        length = self.length
        if self.physical is None:
            if length not in (0, 1):
                raise LocalProtocolError(f"a {length}-byte HDLC address needs a physical part", layer=_LAYER)
            length = 1
            limit_upper = limit_lower = 0x7F
        else:
            if length == 0:
                length = 2 if self.logical <= 0x7F and self.physical <= 0x7F else 4
            if length not in (2, 4):
                raise LocalProtocolError(
                    f"HDLC address length must be 1, 2 or 4 bytes, got {length}", layer=_LAYER
                )
            limit_upper = limit_lower = 0x7F if length == 2 else 0x3FFF
        physical = self.physical or 0
        if not (0 <= self.logical <= limit_upper and 0 <= physical <= limit_lower):
            raise LocalProtocolError(
                f"HDLC address {self.logical}/{self.physical} does not fit in {length} byte(s)", layer=_LAYER
            )
        object.__setattr__(self, "length", length)

    def matches(self, other: HdlcAddress) -> bool:
        """True when both name the same station (logical and physical), whatever their lengths."""
        return self.logical == other.logical and self.physical == other.physical

    @property
    def is_all_station(self) -> bool:
        """True for a broadcast address (0x7F in 1 and 2-byte form, upper 0x3FFF in 4-byte form)."""
        return self.logical == (ALL_STATION_4_BYTE if self.length == 4 else ALL_STATION)

    def to_bytes(self) -> bytes:
        """Encode with extension bits: 0 on every byte but the last."""
        if self.length == 1:
            return bytes(((self.logical << 1) | 1,))
        physical = self.physical or 0
        if self.length == 2:
            return bytes((self.logical << 1, (physical << 1) | 1))
        return bytes(
            (
                (self.logical >> 7) << 1,
                (self.logical & 0x7F) << 1,
                (physical >> 7) << 1,
                ((physical & 0x7F) << 1) | 1,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> HdlcAddress:
        """Decode exactly one address; raises :class:`FrameError` if ``data`` is not one address."""
        address, end = decode_address(data, 0)
        if end != len(data):
            raise FrameError(
                f"{len(data) - end} byte(s) after the HDLC address", layer=_LAYER, data=bytes(data)
            )
        return address

    def __str__(self) -> str:
        if self.physical is None:
            return f"0x{self.logical:02x}"
        return f"{self.logical}/{self.physical}"


_CACHE: dict[bytes, HdlcAddress] = {}
_CACHE_LIMIT: Final = 4096


def _build(raw: bytes) -> HdlcAddress:
    n = len(raw)
    if n == 1:
        return HdlcAddress(raw[0] >> 1)
    if n == 2:
        return HdlcAddress(raw[0] >> 1, raw[1] >> 1, 2)
    return HdlcAddress(((raw[0] >> 1) << 7) | (raw[1] >> 1), ((raw[2] >> 1) << 7) | (raw[3] >> 1), 4)


def decode_address(data: bytes, offset: int) -> tuple[HdlcAddress, int]:
    """Decode the address starting at ``offset``; return ``(address, offset after it)``.

    Raises :class:`FrameError` when the data ends inside the address, when the address would
    be 3 bytes long, or when no extension bit ends it within 4 bytes.
    """
    n = len(data)
    # Fast paths for the common 1 and 2-byte forms; everything else walks the extension bits.
    if offset < n and data[offset] & 1:
        end = offset + 1
    elif offset + 1 < n and data[offset + 1] & 1:
        end = offset + 2
    else:
        end = offset
        limit = min(n, offset + 4)
        while end < limit:
            if data[end] & 1:
                break
            end += 1
        else:
            if limit - offset < 4:
                raise FrameError("frame ends inside an HDLC address", layer=_LAYER, data=data[offset:limit])
            raise FrameError(
                "HDLC address longer than 4 bytes (no extension bit set)",
                layer=_LAYER,
                data=data[offset:limit],
            )
        end += 1
        if end - offset == 3:
            raise FrameError(
                "3-byte HDLC address (only 1, 2 or 4 exist)", layer=_LAYER, data=data[offset:end]
            )
    raw = data[offset:end]
    address = _CACHE.get(raw)
    if address is None:
        address = _build(raw)
        if len(_CACHE) < _CACHE_LIMIT:
            _CACHE[raw] = address
    return address, end

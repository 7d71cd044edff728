"""Frame check sequence of the DLMS HDLC frame: FCS-16 (CRC-16/X.25) at C speed.

Rule: the header check sequence (HCS) and the frame check sequence (FCS) of an HDLC frame
format type 3 (IEC 62056-46:2002+A1:2006, clause 6.4 "MAC sublayer"; DLMS UA 1000-2 "Green
Book" clause 8.4) are both the 16-bit FCS of ISO/IEC 13239 = RFC 1662 appendix C: the
reflected polynomial x^16 + x^12 + x^5 + 1 (0x8408), initial value 0xFFFF, result
complemented and sent least significant byte first. The catalogue name is CRC-16/X.25
(check value 0x906E over ``b"123456789"``).

Theory of operation. A byte-at-a-time table loop in Python costs about 100 ns per byte. The
standard library's :func:`binascii.crc_hqx` computes the same polynomial in C, but
non-reflected (MSB first, the XMODEM convention). A reflected CRC equals the bit-reversal of
the non-reflected CRC computed over bit-reversed input bytes. So:

1. reverse the bits of every byte with one :meth:`bytes.translate` (C speed),
2. run :func:`binascii.crc_hqx` with initial value 0xFFFF (its own bit-reversal),
3. reverse the 16-bit result and complement it.

Checking a received frame needs no step 3: running the CRC over the data *and* its
transmitted FCS leaves a constant register value (the "good FCS" residue, 0xF0B8 in the
reflected domain, 0x1D0F in the non-reflected one). :func:`fcs_residue` returns that
register, so ``fcs_residue(frame_without_flags) == GOOD_RESIDUE`` checks a frame in two C
calls. HCS and FCS checks chain: after a correct HCS the register holds the residue, which is
the starting value to continue the FCS over the information field.
"""

from __future__ import annotations

from binascii import crc_hqx
from typing import Final

__all__ = ["GOOD_RESIDUE", "REVERSE_BITS", "fcs16", "fcs16_bytes", "fcs_residue"]

#: ``REVERSE_BITS[b]`` is ``b`` with its 8 bits in the opposite order (a :meth:`bytes.translate` table).
REVERSE_BITS: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))

#: Register value left by :func:`fcs_residue` over data followed by its correct FCS.
GOOD_RESIDUE: Final = 0x1D0F

_INIT: Final = 0xFFFF


def _reverse16(value: int) -> int:
    return (REVERSE_BITS[value & 0xFF] << 8) | REVERSE_BITS[value >> 8]


def fcs16(data: bytes | bytearray | memoryview) -> int:
    """Return the FCS-16 (CRC-16/X.25) of ``data`` as an integer (sent low byte first)."""
    register = crc_hqx(bytes(data).translate(REVERSE_BITS), _INIT)
    return _reverse16(register) ^ 0xFFFF


def fcs16_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """Return the FCS-16 of ``data`` in wire order (least significant byte first)."""
    value = fcs16(data)
    return bytes((value & 0xFF, value >> 8))


def fcs_residue(reversed_data: bytes | bytearray | memoryview, register: int = _INIT) -> int:
    """Run the non-reflected CRC register over already bit-reversed bytes.

    ``reversed_data`` must have gone through ``.translate(REVERSE_BITS)``. Over data followed
    by its correct FCS the result is :data:`GOOD_RESIDUE`; pass a previous result as
    ``register`` to continue a computation.
    """
    return crc_hqx(reversed_data, register)

"""The xDLMS conformance block (IEC 62056-5-3 / Green Book ch. 9, "Conformance").

Rule: a :class:`Conformance` value *is* the 24-bit number read big-endian from the wire, so
``Conformance(0x007E1F)`` is exactly the ``00 7E 1F`` in ``5F 1F 04 00 00 7E 1F``. No bit
reversal happens anywhere.

Theory of operation. The conformance block is declared in ASN.1 as
``Conformance ::= [APPLICATION 31] IMPLICIT BIT STRING (SIZE(24))`` and is BER-encoded even
inside the otherwise A-XDR-encoded InitiateRequest / InitiateResponse: tag ``5F 1F``
([APPLICATION 31] needs the two-byte high-tag-number form), length ``04``, one "unused bits"
byte ``00`` and three content bytes. BER numbers the bits of a BIT STRING from the most
significant bit of the first content byte, so named bit *n* of the Green Book is the wire
value ``1 << (23 - n)``. The client proposes a set of services in the InitiateRequest
(proposed-conformance), the server answers with the negotiated set in the InitiateResponse
(negotiated-conformance).

Bit positions were checked against the Green Book numbering as implemented by the peers
(dlms-cosem numbers from the least significant bit, gurux-dlms reverses the bit order in
memory); both agree with the table below.
"""

from __future__ import annotations

import enum
from typing import Final, cast

from metercom.errors import LocalProtocolError, RemoteProtocolError, hexdump

__all__ = [
    "CONFORMANCE_TAG",
    "Conformance",
    "conformance_from_wire",
    "decode_conformance",
    "encode_conformance",
]

_LAYER = "xdlms"

#: BER tag of [APPLICATION 31] (high-tag-number form), length 4 and "0 unused bits".
CONFORMANCE_TAG = b"\x5f\x1f\x04\x00"


def _bit(n: int) -> int:
    """Wire value of Green Book conformance bit ``n`` (bit 0 is the most significant of 24)."""
    return 1 << (23 - n)


class Conformance(enum.IntFlag):
    """xDLMS conformance block (IEC 62056-5-3, Green Book ch. 9), one member per named bit.

    Values are wire values (see the module docstring); the comment gives the Green Book bit
    number. Unknown combinations are kept (``IntFlag`` keeps unnamed bits), so decoding never
    loses information.
    """

    RESERVED_ZERO = _bit(0)  # bit 0, reserved-zero
    GENERAL_PROTECTION = _bit(1)  # bit 1, general-protection
    GENERAL_BLOCK_TRANSFER = _bit(2)  # bit 2, general-block-transfer
    READ = _bit(3)  # bit 3, read (short name referencing)
    WRITE = _bit(4)  # bit 4, write (short name referencing)
    UNCONFIRMED_WRITE = _bit(5)  # bit 5, unconfirmed-write (short name referencing)
    DELTA_VALUE_ENCODING = _bit(6)  # bit 6, delta-value-encoding (reserved-six in older editions)
    RESERVED_SEVEN = _bit(7)  # bit 7, reserved-seven
    ATTRIBUTE0_SUPPORTED_WITH_SET = _bit(8)  # bit 8, attribute0-supported-with-set
    PRIORITY_MGMT_SUPPORTED = _bit(9)  # bit 9, priority-mgmt-supported
    ATTRIBUTE0_SUPPORTED_WITH_GET = _bit(10)  # bit 10, attribute0-supported-with-get
    BLOCK_TRANSFER_WITH_GET_OR_READ = _bit(11)  # bit 11, block-transfer-with-get-or-read
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = _bit(12)  # bit 12, block-transfer-with-set-or-write
    BLOCK_TRANSFER_WITH_ACTION = _bit(13)  # bit 13, block-transfer-with-action
    MULTIPLE_REFERENCES = _bit(14)  # bit 14, multiple-references
    INFORMATION_REPORT = _bit(15)  # bit 15, information-report (short name referencing)
    DATA_NOTIFICATION = _bit(16)  # bit 16, data-notification
    ACCESS = _bit(17)  # bit 17, access
    PARAMETERIZED_ACCESS = _bit(18)  # bit 18, parameterized-access (short name referencing)
    GET = _bit(19)  # bit 19, get
    SET = _bit(20)  # bit 20, set
    SELECTIVE_ACCESS = _bit(21)  # bit 21, selective-access
    EVENT_NOTIFICATION = _bit(22)  # bit 22, event-notification
    ACTION = _bit(23)  # bit 23, action

    @classmethod
    def ln_default(cls) -> Conformance:
        """Logical name (LN) referencing services we propose by default: ``0x007E1F``.

        get, set, action, selective-access, event-notification, the three block transfers,
        multiple-references, attribute0-supported-with-get and priority-mgmt-supported: the
        Green Book's LN example proposal. General-block-transfer and general-protection are
        left out until a session implements them.
        """
        return cls(0x007E1F)

    @classmethod
    def sn_default(cls) -> Conformance:
        """Short name (SN) referencing services we propose by default: ``0x1C0320``.

        read, write, unconfirmed-write, multiple-references, information-report and
        parameterized-access: the Green Book's SN example proposal.
        """
        return cls(0x1C0320)

    def bit_numbers(self) -> list[int]:
        """Green Book bit numbers set in this value, ascending (bit 0 first)."""
        value = int(self)
        return [n for n in range(24) if value & (1 << (23 - n))]

    def spec_names(self) -> list[str]:
        """Names of the bits set, as written in the Green Book (``"block-transfer-with-action"``)."""
        return [
            member.name.lower().replace("_", "-")
            for member in type(self)
            if member.name is not None and self & member
        ]


_MEMBERS: Final = Conformance._value2member_map_
#: How many distinct conformance values ``IntFlag`` may remember. ``Flag`` caches every
#: composite value it ever builds; unchecked, a peer cycling through all 2**24 values would
#: grow that cache by gigabytes.
_CACHE_LIMIT: Final = 1024


def conformance_from_wire(value: int) -> Conformance:
    """``Conformance(value)`` for a 24-bit wire value, with a bounded member cache."""
    value &= 0xFFFFFF
    member = _MEMBERS.get(value)
    if member is not None:
        return cast(Conformance, member)
    result = Conformance(value)
    if len(_MEMBERS) > _CACHE_LIMIT:
        _MEMBERS.pop(value, None)  # keep the value, forget the cached composite
    return result


def encode_conformance(conformance: Conformance | int) -> bytes:
    """Encode the conformance block as BER ``5F 1F 04 00 xx xx xx`` (7 bytes)."""
    value = int(conformance)
    if not 0 <= value <= 0xFFFFFF:
        raise LocalProtocolError(f"conformance 0x{value:x} does not fit 24 bits", layer=_LAYER)
    return CONFORMANCE_TAG + value.to_bytes(3, "big")


def decode_conformance(data: bytes, offset: int = 0) -> tuple[Conformance, int]:
    """Decode the 7-byte conformance block at ``offset``; return ``(value, offset after it)``.

    The tag must be ``5F 1F`` and the length ``04`` (the BIT STRING has a fixed size of 24
    bits). A non-zero "unused bits" byte is tolerated (the 24 bits are still all there) but
    those trailing unused bits are cleared, as BER requires them to be ignored.
    """
    end = offset + 7
    if end > len(data):
        raise RemoteProtocolError(
            f"conformance block needs 7 bytes, only {max(len(data) - offset, 0)} left",
            layer=_LAYER,
            data=bytes(data[offset:end]),
        )
    if data[offset] != 0x5F or data[offset + 1] != 0x1F or data[offset + 2] != 0x04:
        raise RemoteProtocolError(
            "conformance block must start 5f 1f 04 ([APPLICATION 31] BIT STRING of 24 bits), "
            f"got {hexdump(bytes(data[offset : offset + 3]))}",
            layer=_LAYER,
        )
    unused = data[offset + 3]
    if unused > 7:
        raise RemoteProtocolError(
            f"conformance block claims {unused} unused bits (0..7 allowed)", layer=_LAYER
        )
    value = int.from_bytes(data[offset + 4 : end], "big") & (0xFFFFFF << unused) & 0xFFFFFF
    return conformance_from_wire(value), end

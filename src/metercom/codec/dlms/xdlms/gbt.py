"""general-block-transfer (tag 0xE0), the service-independent block transfer of DLMS (Green Book
DLMS UA 1000-2 clause 9.5 ASN.1 and the GBT procedure of clause 9.4; IEC 62056-5-3).

Rule: the APDU codec only; which APDU the blocks carry and the window/streaming procedure are
the session's business.

Theory of operation (A-XDR)::

    General-Block-Transfer ::= SEQUENCE {
        block-control     Unsigned8,   -- bit 7 last-block, bit 6 streaming, bits 0-5 window
        block-number      Unsigned16,
        block-number-ack  Unsigned16,
        block-data        OCTET STRING }

    E0  block-control(1)  block-number(2)  block-number-ack(2)  length  block-data
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from metercom.errors import LocalProtocolError

from ._apdu import XdlmsApdu
from ._wire import LAYER, Reader, check_bytes, check_uint, octet_string

__all__ = ["GeneralBlockTransfer"]


@dataclass(frozen=True, slots=True)
class GeneralBlockTransfer(XdlmsApdu):
    """general-block-transfer (``E0``): one block of any APDU, with acknowledgement.

    ``window`` (0..63) is the number of blocks the sender can receive before acknowledging;
    ``streaming`` says more blocks follow without waiting for an acknowledgement.
    """

    last_block: bool
    streaming: bool
    window: int
    block_number: int
    block_number_ack: int
    block_data: bytes

    TAG: ClassVar[int] = 0xE0
    CHOICE: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        for name in ("last_block", "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise LocalProtocolError(f"{name} must be a bool", layer=LAYER)
        check_uint(self.window, 6, "window")
        check_uint(self.block_number, 16, "block-number")
        check_uint(self.block_number_ack, 16, "block-number-ack")
        check_bytes(self.block_data, "block-data")

    @property
    def block_control(self) -> int:
        """The block-control byte."""
        return (0x80 if self.last_block else 0) | (0x40 if self.streaming else 0) | self.window

    def to_bytes(self) -> bytes:
        return (
            bytes((self.TAG, self.block_control))
            + self.block_number.to_bytes(2, "big")
            + self.block_number_ack.to_bytes(2, "big")
            + octet_string(self.block_data)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        control = r.u8("block-control")
        number = r.u16("block-number")
        ack = r.u16("block-number-ack")
        data = r.octet_string("block-data")
        return cls(bool(control & 0x80), bool(control & 0x40), control & 0x3F, number, ack, data)

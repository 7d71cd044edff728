"""Modbus function codes and the length of an RTU frame as told by its first bytes.

Rule: an RTU frame has no length field and no delimiter other than 3.5 characters of
silence. Its length can nevertheless be worked out from the function code (and, for some
functions, a byte count) once the first few bytes are in, which lets a receiver finish a frame
the moment its last byte arrives instead of waiting for the silence, and keeps framing working
where the silence cannot be observed (USB adapters, ptys, RTU tunnelled over TCP).

:func:`rtu_frame_length` returns the total ADU length (unit + PDU + CRC) for a requests' or
a responses' prefix, :data:`NEED_MORE` when the byte count has not arrived yet, and
:data:`UNKNOWN` for function codes it does not know (the silence then ends the frame). The
table holds the public function codes of the Modbus Application Protocol v1.1b3 and the
PZEM-004T's two vendor codes 0x41 (calibration) and 0x42 (reset energy).
"""

from __future__ import annotations

import enum
from typing import Final

from metercom.codec.base import Role

__all__ = ["MAX_RTU_FRAME", "NEED_MORE", "UNKNOWN", "FunctionCode", "rtu_frame_length"]

#: Largest RTU ADU: unit (1) + PDU (at most 253) + CRC (2).
MAX_RTU_FRAME: Final = 256
#: :func:`rtu_frame_length`: a byte count has not arrived yet.
NEED_MORE: Final = 0
#: :func:`rtu_frame_length`: the function code is not in the table.
UNKNOWN: Final = -1


class FunctionCode(enum.IntEnum):
    """Function codes metercom knows by name."""

    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    READ_EXCEPTION_STATUS = 0x07
    DIAGNOSTICS = 0x08
    GET_COMM_EVENT_COUNTER = 0x0B
    GET_COMM_EVENT_LOG = 0x0C
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10
    REPORT_SERVER_ID = 0x11
    MASK_WRITE_REGISTER = 0x16
    READ_WRITE_MULTIPLE_REGISTERS = 0x17
    READ_FIFO_QUEUE = 0x18
    ENCAPSULATED_INTERFACE = 0x2B
    PZEM_CALIBRATE = 0x41
    PZEM_RESET_ENERGY = 0x42


# How the length of a frame follows from its first bytes:
#   int n            fixed total length n
#   (pos, base)      one byte count at index pos; total = base + count
#   (pos, base, 2)   two-byte (big-endian) byte count at index pos; total = base + count
_Rule = int | tuple[int, int] | tuple[int, int, int]

_REQUEST: Final[dict[int, _Rule]] = {
    0x01: 8,
    0x02: 8,
    0x03: 8,
    0x04: 8,
    0x05: 8,
    0x06: 8,
    0x07: 4,
    0x08: 8,
    0x0B: 4,
    0x0C: 4,
    0x0F: (6, 9),
    0x10: (6, 9),
    0x11: 4,
    0x16: 10,
    0x17: (10, 13),
    0x18: 6,
    0x2B: 7,
    0x41: 6,  # address, 0x41, password 0x3721, CRC
    0x42: 4,
}

_RESPONSE: Final[dict[int, _Rule]] = {
    0x01: (2, 5),
    0x02: (2, 5),
    0x03: (2, 5),
    0x04: (2, 5),
    0x05: 8,
    0x06: 8,
    0x07: 5,
    0x08: 8,
    0x0B: 8,
    0x0C: (2, 5),
    0x0F: 8,
    0x10: 8,
    0x11: (2, 5),
    0x16: 10,
    0x17: (2, 5),
    0x18: (2, 6, 2),
    0x41: 6,
    0x42: 4,
}


def rtu_frame_length(frame: bytes | bytearray, role: Role) -> int:
    """Total length of the RTU frame starting ``frame``, as the receiver in ``role`` expects it.

    A SERVER receives requests, a CLIENT receives responses (exception responses, function
    code with bit 7 set, are always 5 bytes). Returns :data:`NEED_MORE` or :data:`UNKNOWN`
    (both less than 1) when the length cannot be told (yet).
    """
    if len(frame) < 2:
        return NEED_MORE
    function = frame[1]
    if role is Role.CLIENT:
        if function & 0x80:
            return 5
        rule = _RESPONSE.get(function)
    else:
        rule = _REQUEST.get(function)
    if rule is None:
        return UNKNOWN
    if isinstance(rule, int):
        return rule
    pos, base = rule[0], rule[1]
    if len(rule) == 3:
        if len(frame) < pos + 2:
            return NEED_MORE
        return base + int.from_bytes(frame[pos : pos + 2], "big")
    if len(frame) <= pos:
        return NEED_MORE
    return base + frame[pos]

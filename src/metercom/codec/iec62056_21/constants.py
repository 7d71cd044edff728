"""Character tables, timing and size limits of IEC 62056-21 (direct local data exchange).

Rule: every number the IEC 62056-21 codec uses lives here, with its source, so the message
codec, the data-set parser and the connection state machine agree on one set of figures.
References are to the public digest ``shared/reference/protocols.md`` section 1 (the standard
itself is paywalled); confidence marks [C] confirmed, [I] consistent across implementations,
[U] unverified are copied from there.

Theory: the protocol mode is never sent explicitly. It is recognised from the baud rate
character Z of the identification message (digits: mode C, letters ``A``-``I``: mode B, any
other printable character: mode A) and from the enhanced identification ``\\W`` (``W=2``: mode
E, binary HDLC available). Mode D (unidirectional push, fixed 2400 Bd, Z=``3``) can only be
told from context: the identification arrived without a request (protocols.md 1.2, 1.4).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "ACK",
    "BAUD_RATES_MODE_B",
    "BAUD_RATES_MODE_C",
    "BITS_PER_CHARACTER",
    "CR",
    "CRLF",
    "DEFAULT_INITIAL_BAUD_RATE",
    "EOT",
    "ETX",
    "FAST_REACTION_TIME_S",
    "FRAME_FORMAT",
    "INTER_CHARACTER_TIMEOUT_S",
    "LF",
    "MAX_ADDRESS_LENGTH",
    "MAX_DEVICE_ADDRESS_LENGTH",
    "MAX_IDENT_LENGTH",
    "MAX_REACTION_TIME_S",
    "MAX_UNIT_LENGTH",
    "MAX_VALUE_LENGTH",
    "MAX_VALUE_LENGTH_PROGRAMMING",
    "MODE_D_BAUD_RATE",
    "NAK",
    "NUL",
    "PROGRAMMING_INACTIVITY_TIMEOUT_S",
    "REACTION_TIME_S",
    "SOH",
    "STX",
    "WAKE_UP_DURATION_S",
    "WAKE_UP_PAUSE_S",
    "CommandId",
    "ModeControl",
    "ProtocolControl",
    "ProtocolMode",
    "baud_rate_of",
    "wire_time_s",
]

# -- control characters (protocols.md 1.3) [C] ------------------------------------------------
NUL: Final = 0x00
SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ACK: Final = 0x06
LF: Final = 0x0A
CR: Final = 0x0D
NAK: Final = 0x15
CRLF: Final = b"\r\n"

# -- character format and speeds (protocols.md 1.1, 1.4) ------------------------------------
#: 7 data bits, even parity, 1 stop bit [C]; 10 bit times per character.
FRAME_FORMAT: Final = "7E1"
BITS_PER_CHARACTER: Final = 10
#: Modes A, B, C and E start at 300 Bd [C].
DEFAULT_INITIAL_BAUD_RATE: Final = 300
#: Mode D is fixed at 2400 Bd [C].
MODE_D_BAUD_RATE: Final = 2400

#: Baud rate identification Z for modes C, D and E (``7``-``9`` reserved) [C].
BAUD_RATES_MODE_C: Final[dict[str, int]] = {
    "0": 300,
    "1": 600,
    "2": 1200,
    "3": 2400,
    "4": 4800,
    "5": 9600,
    "6": 19200,
}
#: Baud rate identification Z for mode B (``G``-``I`` reserved) [C]. Note ``A`` is 600 Bd, not 300.
BAUD_RATES_MODE_B: Final[dict[str, int]] = {
    "A": 600,
    "B": 1200,
    "C": 2400,
    "D": 4800,
    "E": 9600,
    "F": 19200,
}

# -- timing (protocols.md 1.6) ---------------------------------------------------------------
#: Minimum reaction time t_r between the end of a received message and the answer [C].
REACTION_TIME_S: Final = 0.2
#: Minimum t_r when the third letter of the manufacturer FLAG ID is lower case (``ISk``) [C].
FAST_REACTION_TIME_S: Final = 0.02
#: Maximum reaction time t_r; used as the response time-out [C].
MAX_REACTION_TIME_S: Final = 1.5
#: Longest gap t_a between two characters of one message [I].
INTER_CHARACTER_TIMEOUT_S: Final = 1.5
#: Battery-meter wake-up: NUL characters for 2.1-2.3 s [C] ...
WAKE_UP_DURATION_S: Final = 2.2
#: ... then a pause of 1.5-1.7 s before the request [C].
WAKE_UP_PAUSE_S: Final = 1.5
#: A meter leaves programming mode after 60-120 s without a command [U].
PROGRAMMING_INACTIVITY_TIMEOUT_S: Final = 60.0

# -- size limits (protocols.md 1.3, 1.9) -----------------------------------------------------
#: Device address inside the request ``/?address!`` [I].
MAX_DEVICE_ADDRESS_LENGTH: Final = 32
#: Identification text after ``/XXXZ[\\W]``. The standard's figure is 16 [I] (vzlogger's buffer);
#: it is unverified, so the receiver accepts twice that, which still bounds the line to 41 bytes.
MAX_IDENT_LENGTH: Final = 32
#: Data set address (OBIS text or manufacturer code) [I].
MAX_ADDRESS_LENGTH: Final = 16
#: Value inside ``( )`` in a readout [I] ...
MAX_VALUE_LENGTH: Final = 32
#: ... and in programming mode of protocol mode C [I].
MAX_VALUE_LENGTH_PROGRAMMING: Final = 128
#: Unit after ``*`` [I].
MAX_UNIT_LENGTH: Final = 16


class ProtocolMode(enum.Enum):
    """Protocol modes A-E (protocols.md 1.2)."""

    A = "A"  # bidirectional, 300 Bd only, data follows the identification at once
    B = "B"  # bidirectional, both switch to Z (letters) right after the identification
    C = "C"  # bidirectional, option select ACK V Z Y, then both switch to Z (digits)
    D = "D"  # unidirectional push at 2400 Bd, no request
    E = "E"  # like C with enhanced identification \2: hand-over to HDLC (DLMS/COSEM)


class ProtocolControl:
    """Protocol control character V of the option select message ``ACK V Z Y`` [C]."""

    NORMAL: Final = "0"
    SECONDARY: Final = "1"
    HDLC: Final = "2"  # mode E; 3-9 reserved


class ModeControl:
    """Mode control character Y of the option select message ``ACK V Z Y`` [C]."""

    READOUT: Final = "0"
    PROGRAMMING: Final = "1"
    BINARY: Final = "2"  # HDLC, mode E; 3-5 reserved
    MANUFACTURER: Final = frozenset("6789")
    RESERVED: Final = frozenset("345")


class CommandId:
    """Command message identifier C and the meaning of each command type D [C].

    Types listed as reserved for national use (``R5``, ``R6``, ``W5``; EMH uses them for
    protected access) are legal on the wire; the meter decides whether it understands them.
    """

    PASSWORD: Final = "P"  # noqa: S105 - the command letter, not a secret
    WRITE: Final = "W"
    READ: Final = "R"
    EXECUTE: Final = "E"
    BREAK: Final = "B"

    TYPES: Final[dict[str, dict[str, str]]] = {
        "P": {
            "0": "operand for the secure algorithm (password request)",
            "1": "password compared with the one held in the meter",
            "2": "result of the secure algorithm",
        },
        "W": {
            "1": "write ASCII-coded data",
            "2": "write formatted communication coding",
            "3": "write ASCII-coded partial block",
            "4": "write formatted partial block",
            "5": "reserved for national use",
        },
        "R": {
            "1": "read ASCII-coded data",
            "2": "read formatted communication coding",
            "3": "read ASCII-coded partial block",
            "4": "read formatted partial block",
            "5": "reserved for national use",
            "6": "reserved for national use",
        },
        "E": {"2": "execute formatted communication coding"},
        "B": {"0": "complete sign-off", "1": "complete sign-off for battery meters (fast wake-up)"},
    }


def baud_rate_of(baud_char: str, mode: ProtocolMode) -> int | None:
    """The baud rate a Z character names in ``mode``; ``None`` for reserved characters.

    Mode A has no Z table (300 Bd only); mode D is fixed at 2400 Bd.
    """
    if mode is ProtocolMode.A:
        return DEFAULT_INITIAL_BAUD_RATE
    if mode is ProtocolMode.B:
        return BAUD_RATES_MODE_B.get(baud_char)
    if mode is ProtocolMode.D:
        return MODE_D_BAUD_RATE
    return BAUD_RATES_MODE_C.get(baud_char)


def wire_time_s(n_bytes: int, baud_rate: int) -> float:
    """Seconds ``n_bytes`` characters take on the line at ``baud_rate`` (10 bit times each)."""
    return n_bytes * BITS_PER_CHARACTER / baud_rate

"""IEC 62056-21 messages: bytes <-> frozen dataclasses, with the block check character (BCC).

Rule: ``Message.from_bytes(wire)`` accepts exactly one whole message and either returns an
object whose ``to_bytes()`` gives the same bytes back, or raises
:class:`~metercom.errors.RemoteProtocolError` (:class:`~metercom.errors.FrameError` when only
the BCC is wrong, so a receiver can answer NAK and get the block repeated). Constructing a
message with illegal fields raises :class:`~metercom.errors.LocalProtocolError`. Nothing is ever
half-decoded: a message object exists only if every byte of it was checked.

Messages (protocols.md 1.3), with their wire form; BCC marks the block-checked ones:

* :class:`RequestMessage`: ``/ ? [device address] ! CR LF`` (reader's sign-on).
* :class:`IdentificationMessage`: ``/ X X X Z [\\W] ident CR LF`` (meter).
* :class:`AckOptionSelect`: ``ACK V Z Y CR LF`` (acknowledgement/option select, modes C, E).
* :class:`DataMessage`: ``STX data-block ! CR LF ETX BCC`` (readout).
* :class:`CommandMessage`: ``SOH C D STX data ETX BCC`` or ``SOH C D ETX BCC`` (no data).
* :class:`AnswerMessage`: ``STX data ETX BCC``; a partial block ends with EOT instead of ETX;
  meter error messages are answers ``STX (text) ETX BCC``.
* :class:`Ack`, :class:`Nak`: the single characters ACK (0x06) and NAK (0x15).
* :class:`WakeUp`: a run of NUL characters (battery meters).

Block check character (BCC, protocols.md 1.5): the XOR of every byte after the first SOH or
STX up to and including the closing ETX or EOT (a later STX inside a command is included),
kept to 7 bits. The characters are 7-bit ASCII (7E1 on the wire); a byte with bit 7 set means
the link passes the parity bit through (a transparent 8N1 modem) and is rejected here with
that hint; :class:`~metercom.codec.iec62056_21.connection.Iec21Connection` can strip it.

Data blocks may contain any 7-bit character except SOH, STX, ETX and EOT (those would end or
restart the frame); the data-set syntax inside them is parsed by
:mod:`metercom.codec.iec62056_21.datasets`, never here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from metercom.codec.iec62056_21.constants import (
    ACK,
    BAUD_RATES_MODE_C,
    CRLF,
    EOT,
    ETX,
    FAST_REACTION_TIME_S,
    MAX_DEVICE_ADDRESS_LENGTH,
    MAX_IDENT_LENGTH,
    NAK,
    NUL,
    REACTION_TIME_S,
    SOH,
    STX,
    WAKE_UP_DURATION_S,
    CommandId,
    ModeControl,
    ProtocolControl,
    ProtocolMode,
    baud_rate_of,
)
from metercom.codec.iec62056_21.datasets import DataSet, parse_data_block
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "ERROR_TEXT_PATTERN",
    "LAYER",
    "Ack",
    "AckOptionSelect",
    "AnswerMessage",
    "CommandMessage",
    "DataMessage",
    "IdentificationMessage",
    "Message",
    "Nak",
    "RequestMessage",
    "WakeUp",
    "bcc",
    "error_text",
]

#: ``layer`` of every :class:`~metercom.errors.ProtocolError` this package raises.
LAYER: Final = "iec62056-21"

#: Text of a meter error message ``(text)``: manufacturer specific; ``ERROR``/``ERR...`` is the
#: common form and Elster LIS-200 sends ``#nnnn`` (protocols.md 1.3) [U beyond those two].
ERROR_TEXT_PATTERN: Final = re.compile(r"^(?:ERR|#\d)", re.IGNORECASE)

_T = TypeVar("_T")
_FRAME_CONTROLS: Final = frozenset("\x01\x02\x03\x04")
_DIGITS: Final = frozenset("0123456789")
# Characters of the request, identification and their fields: printable 7-bit ASCII.
_PRINTABLE: Final = frozenset(chr(c) for c in range(0x20, 0x7F))
_DATA_END_MARKS: Final = ("!\r\n", "!\r", "!\n", "!", "")
_MAX_WAKE_UP: Final = 1 << 16


def bcc(data: bytes | bytearray | memoryview) -> int:
    """The 7-bit block check character of ``data`` (the bytes after SOH/STX through ETX/EOT)."""
    value = 0
    for byte in data:
        value ^= byte
    return value & 0x7F


def error_text(data: str, *, pattern: re.Pattern[str] = ERROR_TEXT_PATTERN) -> str | None:
    """The error text if ``data`` is a meter error message ``(text)``, else ``None``.

    An error message is one bracketed text without an address whose text matches ``pattern``
    (default :data:`ERROR_TEXT_PATTERN`). Values answered without an address (``(12.5*kWh)``)
    do not match, so they stay values.
    """
    text = data.strip("\r\n \x00")
    if len(text) < 2 or text[0] != "(" or text[-1] != ")":
        return None
    inner = text[1:-1]
    if "(" in inner or ")" in inner:
        return None
    inner = inner.strip(" \x00")
    return inner if pattern.search(inner) else None


def _local(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, layer=LAYER)


def _remote(message: str, data: bytes | bytearray) -> RemoteProtocolError:
    return RemoteProtocolError(message, layer=LAYER, data=bytes(data))


def _decoded(factory: Callable[[], _T], data: bytes | bytearray) -> _T:
    """Build a message from decoded fields; an illegal field is the peer's fault here."""
    try:
        return factory()
    except LocalProtocolError as exc:
        raise _remote(str(exc).removeprefix(f"{LAYER}: "), data) from exc


def _check_seven_bit(data: bytes | bytearray) -> None:
    for index, byte in enumerate(data):
        if byte & 0x80:
            raise _remote(
                f"byte 0x{byte:02x} at offset {index} has bit 7 set; IEC 62056-21 characters are 7-bit "
                "(7E1). A transparent 8N1 link passes the parity bit: enable software_parity",
                data,
            )


def _check_text(value: str, what: str, allowed: frozenset[str], forbidden: str = "") -> None:
    for char in value:
        if char not in allowed or char in forbidden:
            raise _local(f"{what} must not contain {char!r} (in {value!r})")


def _check_block_text(value: str, what: str) -> None:
    for char in value:
        if ord(char) > 0x7F or char in _FRAME_CONTROLS:
            raise _local(f"{what} must be 7-bit text without SOH/STX/ETX/EOT, found {char!r}")


def _split_block(data: bytes | bytearray, leader: int, name: str) -> tuple[str, bool]:
    """Check a BCC-protected block; return (text between leader and ETX/EOT, ended by EOT)."""
    if len(data) < 3:
        raise _remote(f"{name} truncated: {len(data)} bytes, need at least 3", data)
    if data[0] != leader:
        raise _remote(f"{name} must start with 0x{leader:02x}, got 0x{data[0]:02x}", data)
    end = len(data) - 2
    for index in range(1, end):
        if data[index] in (ETX, EOT):
            raise _remote(f"{name}: ETX/EOT at offset {index} before the end of the frame", data)
    if data[end] not in (ETX, EOT):
        raise _remote(f"{name} truncated: no ETX/EOT before the BCC", data)
    _check_seven_bit(data)
    expected = bcc(data[1 : end + 1])
    if data[-1] != expected:
        raise FrameError(
            f"{name}: BCC mismatch, expected 0x{expected:02x}, received 0x{data[-1]:02x}",
            layer=LAYER,
            data=bytes(data),
        )
    return bytes(data[1:end]).decode("ascii"), data[end] == EOT


def _block(leader: int, body: bytes, partial: bool) -> bytes:
    frame = body + bytes((EOT if partial else ETX,))
    return bytes((leader,)) + frame + bytes((bcc(frame),))


# -- no-BCC messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestMessage:
    """Request (sign-on) message ``/?[device address]!CR LF`` sent by the reader (HHU).

    The device address (at most 32 characters) selects one meter on a bus or behind a TCP
    modem; it is usually empty on the optical port.
    """

    device_address: str = ""

    def __post_init__(self) -> None:
        if len(self.device_address) > MAX_DEVICE_ADDRESS_LENGTH:
            raise _local(
                f"device address has {len(self.device_address)} characters, "
                f"at most {MAX_DEVICE_ADDRESS_LENGTH} allowed"
            )
        _check_text(self.device_address, "device address", _PRINTABLE, "/!?")

    def to_bytes(self) -> bytes:
        return b"/?" + self.device_address.encode("ascii") + b"!\r\n"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> RequestMessage:
        _check_seven_bit(data)
        if not data.startswith(b"/?"):
            raise _remote("a request message starts with '/?'", data)
        if not data.endswith(b"!\r\n") or len(data) < 5:
            raise _remote("a request message ends with '!' CR LF", data)
        address = bytes(data[2:-3]).decode("ascii")
        return _decoded(lambda: cls(address), data)


@dataclass(frozen=True, slots=True)
class IdentificationMessage:
    """Identification message ``/XXXZ[\\W]ident CR LF`` sent by the meter.

    ``manufacturer`` is the three-character FLAG ID, ``baud_char`` the baud rate identification
    Z, ``enhanced`` the W of the optional enhanced identification ``\\W`` and ``ident`` the rest.
    Without ``\\W`` every character after Z belongs to the ident: ``/ISk5MT174-0001`` has ident
    ``MT174-0001`` (a known reader bug drops the ``M``; protocols.md 1.12).
    """

    manufacturer: str
    baud_char: str
    ident: str = ""
    enhanced: str | None = None

    def __post_init__(self) -> None:
        if len(self.manufacturer) != 3:
            raise _local(f"manufacturer FLAG ID has 3 characters, got {self.manufacturer!r}")
        for char in self.manufacturer:
            if not (char.isascii() and char.isalnum()):
                raise _local(f"manufacturer FLAG ID must be letters, got {self.manufacturer!r}")
        if len(self.baud_char) != 1:
            raise _local(f"baud rate character Z is one character, got {self.baud_char!r}")
        _check_text(self.baud_char, "baud rate character Z", _PRINTABLE, "/!\\")
        if self.enhanced is not None and (len(self.enhanced) != 1 or self.enhanced not in _DIGITS):
            raise _local(f"enhanced identification W is one digit, got {self.enhanced!r}")
        if len(self.ident) > MAX_IDENT_LENGTH:
            raise _local(f"ident has {len(self.ident)} characters, at most {MAX_IDENT_LENGTH} accepted")
        _check_text(self.ident, "ident", _PRINTABLE, "/!")

    @property
    def protocol_mode(self) -> ProtocolMode:
        """Mode A, B, C or E from Z and ``\\W``. Mode D is told by context (an unsolicited push)."""
        if self.baud_char in _DIGITS:
            return ProtocolMode.E if self.enhanced == "2" else ProtocolMode.C
        if "A" <= self.baud_char <= "I":
            return ProtocolMode.B
        return ProtocolMode.A

    @property
    def max_baud_rate(self) -> int | None:
        """Highest baud rate the meter offers; ``None`` for a reserved Z (``7``-``9``, ``G``-``I``)."""
        return baud_rate_of(self.baud_char, self.protocol_mode)

    @property
    def reaction_time_s(self) -> float:
        """Minimum reaction time t_r: 20 ms when the third FLAG letter is lower case, else 200 ms."""
        return FAST_REACTION_TIME_S if self.manufacturer[2].islower() else REACTION_TIME_S

    @property
    def binary_mode_available(self) -> bool:
        """True when ``\\2`` offers the hand-over to HDLC (mode E)."""
        return self.enhanced == "2"

    def to_bytes(self) -> bytes:
        enhanced = f"\\{self.enhanced}" if self.enhanced is not None else ""
        return f"/{self.manufacturer}{self.baud_char}{enhanced}{self.ident}".encode("ascii") + CRLF

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> IdentificationMessage:
        _check_seven_bit(data)
        if not data.startswith(b"/") or data.startswith(b"/?"):
            raise _remote("an identification message starts with '/' and a FLAG ID", data)
        if not data.endswith(CRLF):
            raise _remote("an identification message ends with CR LF", data)
        body = bytes(data[1:-2]).decode("ascii")
        if len(body) < 4:
            raise _remote("identification message truncated: need '/', 3-letter FLAG ID and Z", data)
        rest = body[4:]
        enhanced: str | None = None
        if len(rest) >= 2 and rest[0] == "\\" and rest[1] in _DIGITS:
            enhanced, rest = rest[1], rest[2:]
        return _decoded(lambda: cls(body[:3], body[3], rest, enhanced), data)


@dataclass(frozen=True, slots=True)
class AckOptionSelect:
    """Acknowledgement/option select message ``ACK V Z Y CR LF`` (reader, modes C and E).

    V = protocol control (:class:`ProtocolControl`), Z = baud rate character (digits of mode C),
    Y = mode control (:class:`ModeControl`): ``ACK 0 5 0`` reads out at 9600 Bd, ``ACK 0 5 1``
    enters programming mode, ``ACK 2 5 2`` hands over to HDLC (mode E). Every field is one
    digit; whether a value is reserved is judged by the connection, so reserved values can
    still be decoded and reported.
    """

    protocol_control: str
    baud_char: str
    mode_control: str

    def __post_init__(self) -> None:
        for name in ("protocol_control", "baud_char", "mode_control"):
            value = getattr(self, name)
            if len(value) != 1 or value not in _DIGITS:
                raise _local(f"option select field {name} is one digit, got {value!r}")

    @classmethod
    def readout(cls, baud_char: str = "0") -> AckOptionSelect:
        return cls(ProtocolControl.NORMAL, baud_char, ModeControl.READOUT)

    @classmethod
    def programming(cls, baud_char: str = "0") -> AckOptionSelect:
        return cls(ProtocolControl.NORMAL, baud_char, ModeControl.PROGRAMMING)

    @classmethod
    def binary(cls, baud_char: str) -> AckOptionSelect:
        """``ACK 2 Z 2``: the hand-over to HDLC of mode E (V must be 2; protocols.md 1.7)."""
        return cls(ProtocolControl.HDLC, baud_char, ModeControl.BINARY)

    @property
    def baud_rate(self) -> int | None:
        """Baud rate Z selects; ``None`` for the reserved digits ``7``-``9``."""
        return BAUD_RATES_MODE_C.get(self.baud_char)

    def to_bytes(self) -> bytes:
        return bytes((ACK,)) + f"{self.protocol_control}{self.baud_char}{self.mode_control}".encode() + CRLF

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> AckOptionSelect:
        _check_seven_bit(data)
        if len(data) != 6 or data[0] != ACK or not data.endswith(CRLF):
            raise _remote("an option select message is ACK V Z Y CR LF (6 bytes)", data)
        text = bytes(data[1:4]).decode("ascii")
        return _decoded(lambda: cls(text[0], text[1], text[2]), data)


@dataclass(frozen=True, slots=True)
class Ack:
    """Positive acknowledgement, the single character ACK (0x06)."""

    def to_bytes(self) -> bytes:
        return bytes((ACK,))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> Ack:
        if bytes(data) != bytes((ACK,)):
            raise _remote("an acknowledgement is the single byte ACK (0x06)", data)
        return cls()


@dataclass(frozen=True, slots=True)
class Nak:
    """Repeat request, the single character NAK (0x15): send the last message again."""

    def to_bytes(self) -> bytes:
        return bytes((NAK,))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> Nak:
        if bytes(data) != bytes((NAK,)):
            raise _remote("a repeat request is the single byte NAK (0x15)", data)
        return cls()


@dataclass(frozen=True, slots=True)
class WakeUp:
    """Wake-up preamble for battery meters: ``count`` NUL characters (protocols.md 1.6).

    Send NULs for 2.1-2.3 s, pause 1.5-1.7 s, then send the request; 65 NUL at 300 Bd last
    2.17 s. The connection's ``send_not_before`` holds the pause.
    """

    count: int = 65

    def __post_init__(self) -> None:
        if not 1 <= self.count <= _MAX_WAKE_UP:
            raise _local(f"wake-up preamble must be 1..{_MAX_WAKE_UP} NUL characters, got {self.count}")

    @classmethod
    def for_baud_rate(cls, baud_rate: int, duration_s: float = WAKE_UP_DURATION_S) -> WakeUp:
        """The preamble that lasts ``duration_s`` at ``baud_rate`` (10 bit times per character)."""
        return cls(max(1, math.ceil(duration_s * baud_rate / 10)))

    def to_bytes(self) -> bytes:
        return bytes(self.count)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> WakeUp:
        if not data or any(byte != NUL for byte in data):
            raise _remote("a wake-up preamble consists of NUL characters only", data)
        return _decoded(lambda: cls(len(data)), data[:16])


# -- BCC-protected messages --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataMessage:
    """Readout data message ``STX data-block ! CR LF ETX BCC`` sent by the meter.

    ``data`` is the data block (data-set lines, each normally ending in CR LF) without the end
    mark; ``terminator`` is the end mark as sent. It is ``"!\\r\\n"`` by the standard; meters
    that put ``!`` right after the last ``)`` give ``data`` without a final CR LF, ones that end
    with a bare ``!`` give ``terminator="!"``, and a block without ``!`` gives ``""``, so
    ``to_bytes()`` always reproduces the received bytes.
    """

    data: str
    terminator: str = "!\r\n"

    def __post_init__(self) -> None:
        _check_block_text(self.data, "data block")
        if "!" in self.data:
            raise _local("the data block must not contain '!', which marks its end")
        if self.terminator not in _DATA_END_MARKS:
            raise _local(f"end mark must be one of {_DATA_END_MARKS!r}, got {self.terminator!r}")

    @property
    def datasets(self) -> tuple[DataSet, ...]:
        """The data sets of the block (unparseable lines kept raw, see ``datasets`` module)."""
        return parse_data_block(self.data)

    def to_bytes(self) -> bytes:
        return _block(STX, (self.data + self.terminator).encode("ascii"), partial=False)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> DataMessage:
        text, partial = _split_block(data, STX, "data message")
        if partial:
            raise _remote("a readout data message ends with ETX, not EOT", data)
        mark = text.rfind("!")
        if mark < 0:
            return _decoded(lambda: cls(text, ""), data)
        if text[mark:] not in _DATA_END_MARKS:
            raise _remote(f"text after the end mark '!': {text[mark + 1 : mark + 17]!r}", data)
        return _decoded(lambda: cls(text[:mark], text[mark:]), data)


@dataclass(frozen=True, slots=True)
class AnswerMessage:
    """Answer ``STX data ETX BCC`` in programming mode; ``partial`` blocks end with EOT.

    Meter error messages have the same form with ``(error text)`` as data; see
    :attr:`error_text`. The reader acknowledges a partial block with ACK to get the next one
    or NAK to get the same one again; the last block ends with ETX (protocols.md 1.8).
    """

    data: str
    partial: bool = False

    def __post_init__(self) -> None:
        _check_block_text(self.data, "answer data")

    @property
    def error_text(self) -> str | None:
        """The text of a meter error message (``(ERROR)`` -> ``"ERROR"``), else ``None``."""
        return error_text(self.data)

    @property
    def datasets(self) -> tuple[DataSet, ...]:
        return parse_data_block(self.data, programming=True)

    def to_bytes(self) -> bytes:
        return _block(STX, self.data.encode("ascii"), self.partial)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> AnswerMessage:
        text, partial = _split_block(data, STX, "answer message")
        return _decoded(lambda: cls(text, partial), data)


@dataclass(frozen=True, slots=True, repr=False)
class CommandMessage:
    """Command message ``SOH C D STX data ETX BCC`` (or ``SOH C D ETX BCC`` without data).

    ``command`` is the identifier C (P password, W write, R read, E execute, B break) and
    ``command_type`` the digit D; :attr:`CommandId.TYPES` names them. A ``partial`` block (W3,
    W4) ends with EOT. ``repr()`` hides the data of password commands (P1, P2).
    """

    command: str
    command_type: str
    data: str | None = None
    partial: bool = False

    def __post_init__(self) -> None:
        if len(self.command) != 1 or self.command not in CommandId.TYPES:
            raise _local(f"command identifier C must be one of P, W, R, E, B, got {self.command!r}")
        if len(self.command_type) != 1 or self.command_type not in _DIGITS:
            raise _local(f"command type D is one digit, got {self.command_type!r}")
        if self.data is not None:
            _check_block_text(self.data, "command data")
        elif self.partial:
            raise _local("a partial command block (EOT) must carry data")

    # -- constructors for the common commands (protocols.md 1.4, 1.7)
    @classmethod
    def password_request(cls, operand: str = "") -> CommandMessage:
        """``P0 (operand)``: the meter's password request, operand for a secure algorithm."""
        return cls(CommandId.PASSWORD, "0", f"({operand})")

    @classmethod
    def password(cls, password: str, *, secure_result: bool = False) -> CommandMessage:
        """``P1 (password)`` (plain) or ``P2 (result)`` (response to the P0 operand)."""
        return cls(CommandId.PASSWORD, "2" if secure_result else "1", f"({password})")

    @classmethod
    def read(cls, address: str, argument: str = "", *, command_type: str = "1") -> CommandMessage:
        """``R1 address(argument)``; ``command_type="3"`` asks for partial blocks."""
        return cls(CommandId.READ, command_type, f"{address}({argument})")

    @classmethod
    def write(
        cls, address: str, value: str, *, command_type: str = "1", partial: bool = False
    ) -> CommandMessage:
        """``W1 address(value)``."""
        return cls(CommandId.WRITE, command_type, f"{address}({value})", partial)

    @classmethod
    def execute(cls, data: str) -> CommandMessage:
        """``E2 data`` (formatted communication coding)."""
        return cls(CommandId.EXECUTE, "2", data)

    @classmethod
    def sign_off(cls, *, fast_wake_up: bool = False) -> CommandMessage:
        """Break ``SOH B0 ETX q`` (``B1`` for battery meters using fast wake-up)."""
        return cls(CommandId.BREAK, "1" if fast_wake_up else "0")

    @property
    def is_break(self) -> bool:
        return self.command == CommandId.BREAK

    @property
    def is_password_request(self) -> bool:
        return self.command == CommandId.PASSWORD and self.command_type == "0"

    @property
    def operand(self) -> str | None:
        """Text inside the parentheses of the data (``(1234567)`` -> ``"1234567"``)."""
        if self.data is None:
            return None
        text = self.data.strip("\r\n")
        if text.startswith("(") and text.endswith(")"):
            return text[1:-1]
        return text

    def to_bytes(self) -> bytes:
        body = f"{self.command}{self.command_type}".encode("ascii")
        if self.data is not None:
            body += bytes((STX,)) + self.data.encode("ascii")
        return _block(SOH, body, self.partial)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> CommandMessage:
        text, partial = _split_block(data, SOH, "command message")
        if len(text) < 2:
            raise _remote("command message truncated: need C and D before ETX", data)
        body: str | None = None
        if len(text) > 2:
            if text[2] != "\x02":
                raise _remote("command message: STX expected after C D", data)
            body = text[3:]
        return _decoded(lambda: cls(text[0], text[1], body, partial), data)

    def __repr__(self) -> str:
        shown = self.data
        if self.command == CommandId.PASSWORD and self.command_type in ("1", "2") and shown is not None:
            shown = "<hidden>"
        return (
            f"CommandMessage(command={self.command!r}, command_type={self.command_type!r}, "
            f"data={shown!r}, partial={self.partial!r})"
        )


#: Every message type; the connection's ``send()`` takes one of these.
Message = (
    RequestMessage
    | IdentificationMessage
    | AckOptionSelect
    | DataMessage
    | CommandMessage
    | AnswerMessage
    | Ack
    | Nak
    | WakeUp
)

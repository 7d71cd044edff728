"""Events and instructions that :class:`~metercom.codec.iec62056_21.connection.Iec21Connection`
returns from ``next_event()``.

Rule: an event is either something the peer did (a message arrived, complete and checked) or
an instruction for the shell (change the line, hand over to HDLC, answer NAK). The shell acts on
instructions with its own clock; the codec never touches the line.

Which role sees which event:

=============================  ======  ======  ==================================================
event                          client  server  what the shell does
=============================  ======  ======  ==================================================
:class:`ChangeBaudRate`        yes     yes     drain, wait until ``not_before``, set the line
:class:`HdlcHandover`          yes     yes     same, at 8N1, then run HDLC/DLMS on the link
:class:`IdentificationReceived` yes    -       (modes C/E) send :class:`AckOptionSelect`
:class:`ReadoutReceived`       yes     -       store the readings
:class:`PasswordRequested`     yes     -       send P1/P2 (or a command, or sign off)
:class:`Acknowledged`          yes     yes     client: command accepted; server: send next block
:class:`AnswerReceived`        yes     -       use the data
:class:`PartialAnswerReceived` yes     -       send :class:`Ack` for the next block
:class:`DeviceError`           yes     -       raise ``event.to_exception()`` (DeviceRejectedError)
:class:`RepeatRequested`       yes     yes     send the same message again
:class:`FrameCorrupted`        yes     yes     send :class:`Nak` (the peer will repeat)
:class:`BreakReceived`         yes     yes     the peer signed off; session over
:class:`Timeout`               yes     yes     client: raise ``TransportTimeout`` or retry
:class:`RequestReceived`       -       yes     send an :class:`IdentificationMessage`
:class:`OptionSelected`        -       yes     send the readout or the P0 password request
:class:`CommandReceived`       -       yes     answer: Ack, Nak, AnswerMessage, error, break
=============================  ======  ======  ==================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from metercom.codec.iec62056_21.constants import FRAME_FORMAT, ProtocolMode
from metercom.codec.iec62056_21.datasets import DataSet
from metercom.codec.iec62056_21.messages import (
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    DataMessage,
    IdentificationMessage,
    RequestMessage,
)
from metercom.errors import DeviceRejectedError

__all__ = [
    "Acknowledged",
    "AnswerReceived",
    "BreakReceived",
    "ChangeBaudRate",
    "CommandReceived",
    "DeviceError",
    "Event",
    "FrameCorrupted",
    "HdlcHandover",
    "IdentificationReceived",
    "OptionSelected",
    "PartialAnswerReceived",
    "PasswordRequested",
    "ReadoutReceived",
    "RepeatRequested",
    "RequestReceived",
    "Timeout",
    "TimeoutKind",
]


# -- instructions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeBaudRate:
    """Set the line to ``baud_rate`` (``frame_format``, 7E1) once ``not_before`` has passed.

    The reader gets it after sending the option select: ``not_before`` is when the ACK has
    left the wire at the old speed (plus the connection's ``baud_change_delay_s`` for adapters
    whose drain returns early); drain, wait, then switch. The meter gets it on receiving the
    ACK (``not_before`` = that moment). Both get one when a session ends and the line falls
    back to the initial speed.
    """

    baud_rate: int
    not_before: float
    frame_format: str = FRAME_FORMAT


@dataclass(frozen=True, slots=True)
class HdlcHandover:
    """Mode E: from ``not_before`` the link carries HDLC frames at ``baud_rate``, 8N1.

    The IEC 62056-21 connection is finished (state ``BINARY``); bytes it had already received
    after the option select are in ``Iec21Connection.take_trailing_data()``.
    """

    baud_rate: int
    not_before: float
    frame_format: str = "8N1"


# -- client (reader) events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentificationReceived:
    """The meter identified itself; ``mode`` is D when it arrived without a request (push)."""

    message: IdentificationMessage
    mode: ProtocolMode


@dataclass(frozen=True, slots=True)
class ReadoutReceived:
    """A complete, BCC-checked readout data message and its parsed data sets."""

    message: DataMessage
    datasets: tuple[DataSet, ...]


@dataclass(frozen=True, slots=True)
class PasswordRequested:
    """The meter entered programming mode and sent ``P0 (operand)``."""

    message: CommandMessage

    @property
    def operand(self) -> str:
        return self.message.operand or ""


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """The answer to a read (or execute) command; ``data`` joins every partial block."""

    message: AnswerMessage
    data: str
    datasets: tuple[DataSet, ...]
    blocks: int = 1


@dataclass(frozen=True, slots=True)
class PartialAnswerReceived:
    """Block ``index`` (from 0) of a multi-block answer ended with EOT: send ACK for the next."""

    message: AnswerMessage
    index: int


@dataclass(frozen=True, slots=True)
class DeviceError:
    """The meter answered with an error message ``(text)``; map to ``DeviceRejectedError``."""

    text: str
    message: AnswerMessage

    def to_exception(self) -> DeviceRejectedError:
        """The exception a session raises for it; ``code`` is the meter's error text."""
        return DeviceRejectedError(f"the meter answered with the error message ({self.text})", code=self.text)


# -- server (meter) events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request addressed to this meter arrived: send the identification."""

    message: RequestMessage


@dataclass(frozen=True, slots=True)
class OptionSelected:
    """The reader's option select arrived; a :class:`ChangeBaudRate` follows when Z changes."""

    message: AckOptionSelect


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A programming-mode command arrived (BCC checked); the application answers it."""

    message: CommandMessage


# -- both roles --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The peer sent ACK: our command was accepted (client) or our partial block (server)."""


@dataclass(frozen=True, slots=True)
class RepeatRequested:
    """The peer sent NAK for our last message; send it again. ``attempt`` counts from 1."""

    attempt: int


@dataclass(frozen=True, slots=True)
class FrameCorrupted:
    """A block failed its BCC and was dropped; send NAK to have it repeated (bounded)."""

    reason: str
    data: bytes
    attempt: int


@dataclass(frozen=True, slots=True)
class BreakReceived:
    """The peer sent the break command (B0/B1): the session is over, the line back at its start speed."""

    message: CommandMessage


class TimeoutKind(enum.Enum):
    RESPONSE = "response"  # no answer within the response time-out
    INTER_CHARACTER = "inter_character"  # a message stopped mid-way for longer than t_a
    INACTIVITY = "inactivity"  # meter: no command in programming mode


@dataclass(frozen=True, slots=True)
class Timeout:
    """A timer expired at ``deadline``; the connection is back in IDLE (any partial message dropped)."""

    kind: TimeoutKind
    deadline: float


Event = (
    ChangeBaudRate
    | HdlcHandover
    | IdentificationReceived
    | ReadoutReceived
    | PasswordRequested
    | AnswerReceived
    | PartialAnswerReceived
    | DeviceError
    | RequestReceived
    | OptionSelected
    | CommandReceived
    | Acknowledged
    | RepeatRequested
    | FrameCorrupted
    | BreakReceived
    | Timeout
)

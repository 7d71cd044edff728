"""Sans-I/O IEC 62056-21 connection for both roles: the reader (HHU) and the meter.

Rule (DESIGN.md section 2): the connection never touches a port or a clock. The shell feeds it
bytes with ``receive_data(data, now=...)``, takes checked events from ``next_event()`` until
:data:`~metercom.codec.base.NEED_DATA`, writes what ``send(message, now=...)`` returns, and
honours the instructions among the events (:class:`ChangeBaudRate`, :class:`HdlcHandover`,
:class:`FrameCorrupted` -> send NAK). Time enters only as ``now`` arguments; ``next_deadline()``
and ``handle_timeout(now)`` run the timers. ``next_event()`` raises only
:class:`~metercom.errors.RemoteProtocolError` (the connection is then in state ``ERROR`` until
``reset()``); ``send()`` of a message the state does not allow raises
:class:`~metercom.errors.LocalProtocolError` and changes nothing.

Theory of operation (protocols.md 1.2-1.8). States, ``*`` marking "our turn to send":

Reader (``Role.CLIENT``)::

    IDLE* --Request--> AWAIT_IDENTIFICATION --ident--> IDENTIFIED* (mode C/E)
                                                  \\--> AWAIT_READOUT (mode A; mode B + ChangeBaudRate)
    IDLE* <--push ident-- (mode D: an identification without request) --> AWAIT_READOUT
    IDENTIFIED* --ACK 0 Z 0--> AWAIT_READOUT --data--> IDLE (+ChangeBaudRate back to the start speed)
    IDENTIFIED* --ACK 0 Z 1--> AWAIT_OPERAND --P0--> PROGRAMMING*
    IDENTIFIED* --ACK 2 Z 2--> BINARY (HdlcHandover; terminal)
    PROGRAMMING* --P1/P2/R/W/E--> AWAIT_REPLY --ACK | answer | (error) | NAK--> PROGRAMMING*
                        AWAIT_REPLY --answer ended by EOT--> SEND_BLOCK_ACK* --ACK/NAK--> AWAIT_REPLY
    PROGRAMMING*/SEND_BLOCK_ACK* --B0--> IDLE
    any AWAIT_* --bad BCC--> SEND_NAK* --NAK--> the same AWAIT_* (at most ``max_repeats`` times)

Meter (``Role.SERVER``)::

    IDLE --request for us--> REQUESTED* --ident--> AWAIT_OPTION (C/E) | SEND_READOUT* (A; B + ChangeBaudRate)
    IDLE* --ident (push, mode D)--> PUSH_READOUT* --data--> IDLE
    AWAIT_OPTION --ACK V Z Y--> SEND_READOUT* (Y=0, 6-9, and Y=2 with V!=2) | SEND_OPERAND* (Y=1)
                                | BINARY (V=2 Y=2 when \\2 was offered)
    SEND_READOUT* --data--> AFTER_READOUT --NAK--> SEND_READOUT*;  anything else or time-out --> IDLE
    SEND_OPERAND* --P0--> AWAIT_COMMAND --command--> REPLY* --ACK/NAK/answer/P0--> AWAIT_COMMAND
                                         REPLY* --answer ended by EOT--> AWAIT_BLOCK_ACK --ACK/NAK--> REPLY*
    AWAIT_COMMAND --B0 | inactivity time-out--> IDLE;  REPLY* --B0--> IDLE

Every (state, input) pair is defined: an input either moves the machine (possibly to itself)
or raises RemoteProtocolError. Self-moves that absorb line noise are: NUL characters in every
receiving state (wake-up preambles, idle lines); up to 4 printable/CR/LF bytes before a
message (Elster AS1440 sends ``?`` before STX); an exact request ``/?...!`` while the reader
waits for the identification (a half-duplex head echoing our own request; vzlogger fixture);
and, in IDLE, everything that is not a complete identification (reader: push meters, mode D)
or request for us (meter: other meters' traffic on a bus). With ``echo_cancel`` every byte we
sent is dropped when it comes back.

Timing (protocols.md 1.6): ``send_not_before`` is the earliest time to send the answer
(reaction time t_r after the last received message: 20 ms when the meter's third FLAG letter is
lower case, else 200 ms; the wake-up pause of 1.5 s after a NUL preamble). Waits for an answer
time out ``response_timeout_s`` after our message has left the wire; a message that stops for
more than ``inter_character_timeout_s`` (t_a, 1.5 s) is dropped; a meter leaves programming
mode after ``inactivity_timeout_s``. On any time-out the connection returns to IDLE (queuing a
:class:`Timeout` event, and a :class:`ChangeBaudRate` back to the initial speed if needed).

Link quirks (protocols.md 1.12): ``software_parity=True`` serves transparent 8N1 modems that
carry the 7E1 parity bit: bit 7 is stripped on receive and even parity added on send
(``/?!\\r\\n`` goes out as ``AF 3F 21 8D 0A``). ``baud_change_delay_s`` postpones the reader's
switch for USB adapters whose drain returns before the last bit left (250-400 ms seen).
"""

from __future__ import annotations

import enum
import re
from collections import deque
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.iec62056_21.constants import (
    ACK,
    BAUD_RATES_MODE_C,
    CR,
    CRLF,
    DEFAULT_INITIAL_BAUD_RATE,
    EOT,
    ETX,
    INTER_CHARACTER_TIMEOUT_S,
    LF,
    MAX_DEVICE_ADDRESS_LENGTH,
    MAX_IDENT_LENGTH,
    MAX_REACTION_TIME_S,
    NAK,
    NUL,
    PROGRAMMING_INACTIVITY_TIMEOUT_S,
    REACTION_TIME_S,
    SOH,
    STX,
    WAKE_UP_PAUSE_S,
    CommandId,
    ModeControl,
    ProtocolControl,
    ProtocolMode,
    wire_time_s,
)
from metercom.codec.iec62056_21.datasets import parse_data_block
from metercom.codec.iec62056_21.events import (
    Acknowledged,
    AnswerReceived,
    BreakReceived,
    ChangeBaudRate,
    CommandReceived,
    DeviceError,
    Event,
    FrameCorrupted,
    HdlcHandover,
    IdentificationReceived,
    OptionSelected,
    PartialAnswerReceived,
    PasswordRequested,
    ReadoutReceived,
    RepeatRequested,
    RequestReceived,
    Timeout,
    TimeoutKind,
)
from metercom.codec.iec62056_21.messages import (
    ERROR_TEXT_PATTERN,
    LAYER,
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    DataMessage,
    IdentificationMessage,
    Message,
    Nak,
    RequestMessage,
    WakeUp,
    error_text,
)
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

__all__ = ["CLIENT_STATES", "SERVER_STATES", "Iec21Connection", "State"]


class State(enum.Enum):
    """Connection states; see the module docstring for the diagrams."""

    IDLE = "IDLE"
    # reader
    AWAIT_IDENTIFICATION = "AWAIT_IDENTIFICATION"
    IDENTIFIED = "IDENTIFIED"
    AWAIT_READOUT = "AWAIT_READOUT"
    AWAIT_OPERAND = "AWAIT_OPERAND"
    PROGRAMMING = "PROGRAMMING"
    AWAIT_REPLY = "AWAIT_REPLY"
    SEND_BLOCK_ACK = "SEND_BLOCK_ACK"
    # both
    SEND_NAK = "SEND_NAK"
    # meter
    REQUESTED = "REQUESTED"
    AWAIT_OPTION = "AWAIT_OPTION"
    SEND_READOUT = "SEND_READOUT"
    AFTER_READOUT = "AFTER_READOUT"
    PUSH_READOUT = "PUSH_READOUT"
    SEND_OPERAND = "SEND_OPERAND"
    AWAIT_COMMAND = "AWAIT_COMMAND"
    AWAIT_BLOCK_ACK = "AWAIT_BLOCK_ACK"
    REPLY = "REPLY"
    # terminal until reset()
    BINARY = "BINARY"
    ERROR = "ERROR"


#: States a reader connection can be in.
CLIENT_STATES: Final = frozenset(
    {
        State.IDLE,
        State.AWAIT_IDENTIFICATION,
        State.IDENTIFIED,
        State.AWAIT_READOUT,
        State.AWAIT_OPERAND,
        State.PROGRAMMING,
        State.AWAIT_REPLY,
        State.SEND_BLOCK_ACK,
        State.SEND_NAK,
        State.BINARY,
        State.ERROR,
    }
)
#: States a meter connection can be in.
SERVER_STATES: Final = frozenset(
    {
        State.IDLE,
        State.REQUESTED,
        State.AWAIT_OPTION,
        State.SEND_READOUT,
        State.AFTER_READOUT,
        State.PUSH_READOUT,
        State.SEND_OPERAND,
        State.AWAIT_COMMAND,
        State.AWAIT_BLOCK_ACK,
        State.REPLY,
        State.SEND_NAK,
        State.BINARY,
        State.ERROR,
    }
)

_SLASH: Final = ord("/")
_DIGIT_BYTES: Final = frozenset(b"0123456789")
# Bytes that may be skipped as noise before a message (bounded by _MAX_NOISE).
_JUNK: Final = frozenset(range(0x20, 0x7F)) | {CR, LF}
_MAX_NOISE: Final = 4
# Longest line that can be a request (2 + 32 + 3) or an identification (1 + 3 + 1 + 2 + 32 + 2).
_LINE_LIMIT: Final = max(1 + 3 + 1 + 2 + MAX_IDENT_LENGTH + 2, 2 + MAX_DEVICE_ADDRESS_LENGTH + 3)
_MAX_ECHO: Final = 4096
_DUMP: Final = re.compile(r" \[[0-9a-f .+()bytes]*\]$")  # the hex dump ProtocolError appends
_STRIP_PARITY: Final = bytes(i & 0x7F for i in range(256))
_ADD_PARITY: Final = bytes((i & 0x7F) | (0x80 if (i & 0x7F).bit_count() % 2 else 0) for i in range(256))
_MESSAGE_TYPES: Final = (
    RequestMessage,
    IdentificationMessage,
    AckOptionSelect,
    DataMessage,
    CommandMessage,
    AnswerMessage,
    Ack,
    Nak,
    WakeUp,
)

# Frame-start bytes each receiving state accepts; states not listed are "our turn".
_EXPECTED: Final[dict[State, frozenset[int]]] = {
    State.AWAIT_IDENTIFICATION: frozenset({_SLASH}),
    State.AWAIT_READOUT: frozenset({STX}),
    State.AWAIT_OPERAND: frozenset({SOH}),
    State.AWAIT_REPLY: frozenset({ACK, NAK, STX, SOH}),
    State.AWAIT_OPTION: frozenset({ACK, _SLASH}),
    State.AFTER_READOUT: frozenset({NAK}),
    State.AWAIT_COMMAND: frozenset({SOH, NAK}),
    State.AWAIT_BLOCK_ACK: frozenset({ACK, NAK, SOH}),
}
_NO_BYTES: Final[frozenset[int]] = frozenset()


def _remote(message: str, data: bytes | bytearray | None = None) -> RemoteProtocolError:
    return RemoteProtocolError(message, layer=LAYER, data=None if data is None else bytes(data))


def _local(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, layer=LAYER)


def _message_text(data: str) -> str:
    text = data.strip("\r\n \x00")
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        return text[1:-1].strip(" \x00")
    return text


class Iec21Connection:
    """One IEC 62056-21 conversation endpoint; see the module docstring.

    ``role``: :attr:`Role.CLIENT` for the reader (HHU, head-end), :attr:`Role.SERVER` for the
    meter (the simulator). Keyword options:

    * ``initial_baud_rate``: speed of sign-on and of the idle line (300; 2400 for mode D).
    * ``device_address`` (meter): answer requests with this address (leading zeros of numeric
      addresses ignored) or with none; ``None`` answers every request.
    * ``require_address`` (meter): ignore requests without an address, as meters that are read
      only with their owner number do (EMH ITZ, protocols.md 1.12).
    * ``reaction_time_s``: minimum pause before answering; default from the identification
      (20 ms or 200 ms).
    * ``response_timeout_s``: wait for an answer after our message left the wire (1.5 s = t_r max).
    * ``inter_character_timeout_s``: longest gap inside one message (t_a, 1.5 s).
    * ``inactivity_timeout_s`` (meter): leave programming mode after this long without a command.
    * ``baud_change_delay_s`` (reader): extra wait before switching speed after the ACK.
    * ``max_repeats``: NAKs answered/sent for one message before giving up (RemoteProtocolError).
    * ``max_block_size``: longest single block; ``max_answer_size``: all partial blocks together.
    * ``software_parity``: the link is 8N1 but carries the 7E1 parity bit (transparent modems).
    * ``echo_cancel``: drop our own bytes when a half-duplex head echoes them.
    * ``error_text_pattern``: which ``(text)`` answers to read commands are meter error messages.
    """

    def __init__(
        self,
        role: Role,
        *,
        initial_baud_rate: int = DEFAULT_INITIAL_BAUD_RATE,
        device_address: str | None = None,
        require_address: bool = False,
        reaction_time_s: float | None = None,
        response_timeout_s: float = MAX_REACTION_TIME_S,
        inter_character_timeout_s: float = INTER_CHARACTER_TIMEOUT_S,
        inactivity_timeout_s: float = PROGRAMMING_INACTIVITY_TIMEOUT_S,
        baud_change_delay_s: float = 0.0,
        max_repeats: int = 3,
        max_block_size: int = 65536,
        max_answer_size: int = 1 << 20,
        software_parity: bool = False,
        echo_cancel: bool = False,
        error_text_pattern: re.Pattern[str] = ERROR_TEXT_PATTERN,
    ) -> None:
        if initial_baud_rate <= 0:
            raise _local(f"initial baud rate must be positive, got {initial_baud_rate}")
        if max_repeats < 0 or max_block_size < 3 or max_answer_size < max_block_size:
            raise _local("max_repeats >= 0, max_block_size >= 3 and max_answer_size >= max_block_size needed")
        for name, value in (
            ("response_timeout_s", response_timeout_s),
            ("inter_character_timeout_s", inter_character_timeout_s),
            ("inactivity_timeout_s", inactivity_timeout_s),
            ("baud_change_delay_s", baud_change_delay_s),
            ("reaction_time_s", reaction_time_s or 0.0),
        ):
            if value < 0:
                raise _local(f"{name} must not be negative, got {value}")
        if device_address is not None:
            RequestMessage(device_address)  # validates the address
        self.role: Final = role
        self.initial_baud_rate: Final = initial_baud_rate
        self.device_address: Final = device_address
        self.require_address: Final = require_address
        self.reaction_time_s: Final = reaction_time_s
        self.response_timeout_s: Final = response_timeout_s
        self.inter_character_timeout_s: Final = inter_character_timeout_s
        self.inactivity_timeout_s: Final = inactivity_timeout_s
        self.baud_change_delay_s: Final = baud_change_delay_s
        self.max_repeats: Final = max_repeats
        self.max_block_size: Final = max_block_size
        self.max_answer_size: Final = max_answer_size
        self.software_parity: Final = software_parity
        self.echo_cancel: Final = echo_cancel
        self.error_text_pattern: Final = error_text_pattern

        self._state = State.IDLE
        self._baud_rate = initial_baud_rate
        self._buffer = bytearray()
        self._scan = 0  # where the search for ETX/EOT of the block at the buffer start resumes
        self._events: deque[Event] = deque()
        self._trailing = bytearray()
        self._echo = bytearray()
        self._echo_held = bytearray()
        #: How many received bytes were our own echo and dropped (for link statistics).
        self.echo_bytes_dropped = 0
        self._rx_time = 0.0
        self._deadline: float | None = None
        self._deadline_kind = TimeoutKind.RESPONSE
        self._send_not_before: float | None = None
        self._error: RemoteProtocolError | None = None
        self._noise = 0
        # Per-session bookkeeping, reset by _reset_session() on every sign-on.
        self._ident: IdentificationMessage | None = None
        self._mode: ProtocolMode | None = None
        self._nak_return = State.IDLE  # where SEND_NAK goes back to
        self._resend_state = State.PROGRAMMING  # where a received NAK sends the reader
        self._corrupt_count = 0  # corrupt blocks in a row (NAKs we sent)
        self._repeat_count = 0  # NAKs in a row the peer sent us
        self._last_sent = b""
        self._accepts_ack = False  # reader: which replies the last command allows
        self._accepts_data = False
        self._blocks: list[AnswerMessage] = []
        self._blocks_size = 0
        self._fresh_block = False  # reader: the last partial block is new (a NAK asks for it again)

    # -- public state --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def baud_rate(self) -> int:
        """The speed the line should have now, as far as this connection knows."""
        return self._baud_rate

    @property
    def identification(self) -> IdentificationMessage | None:
        """The identification of the current session (received or sent)."""
        return self._ident

    @property
    def protocol_mode(self) -> ProtocolMode | None:
        return self._mode

    @property
    def send_not_before(self) -> float | None:
        """Earliest time the next message may start (reaction time, wake-up pause); ``None``: any time."""
        return self._send_not_before

    def take_trailing_data(self) -> bytes:
        """After :class:`HdlcHandover`: the bytes received beyond the IEC 62056-21 part, once."""
        data = bytes(self._trailing)
        self._trailing.clear()
        return data

    def reset(self, *, now: float) -> None:
        """Back to IDLE at the initial speed, dropping everything (after an error or a hand-over)."""
        self._events.clear()
        self._buffer.clear()
        self._trailing.clear()
        self._echo.clear()
        self._echo_held.clear()
        self._scan = 0
        self._error = None
        self._reset_session()
        self._to_idle(now)

    # -- the sans-I/O verbs --------------------------------------------------------------------

    def receive_data(self, data: bytes, *, now: float) -> None:
        """Feed bytes from the line (any chunking); ``now`` is when they arrived."""
        if not data:
            return
        if self._state is State.BINARY:
            self._trailing += data
            return
        if self._state is State.ERROR:
            return
        if self.software_parity:
            data = data.translate(_STRIP_PARITY)
        if self._echo or self._echo_held:
            data = self._cancel_echo(data)
        self._rx_time = now
        self._buffer += data

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises only :class:`RemoteProtocolError`."""
        if self._events:
            return self._events.popleft()
        if self._state is State.ERROR:
            raise _remote(f"connection failed earlier ({self._error}); reset() it")
        try:
            while not self._events and self._step():
                pass
        except RemoteProtocolError as exc:
            self._state = State.ERROR
            self._error = exc
            self._deadline = None
            raise
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def send(self, event: Message, *, now: float) -> bytes:
        """Encode ``event`` for the line and advance the state; ``now`` is when it is written.

        Raises :class:`LocalProtocolError` (changing nothing) when the state does not allow it.
        Afterwards drain ``next_event()``: sending may queue :class:`ChangeBaudRate` or
        :class:`HdlcHandover`.
        """
        if not isinstance(event, _MESSAGE_TYPES):
            raise _local(f"send() takes an IEC 62056-21 message, got {type(event).__name__}")
        if self._state is State.ERROR:
            raise _local(f"connection failed earlier ({self._error}); reset() it")
        if self._state is State.BINARY:
            raise _local("the link was handed over to HDLC (mode E); nothing more to send here")
        wire = event.to_bytes()
        end = now + wire_time_s(len(wire), self._baud_rate)
        if self.role is Role.CLIENT:
            not_before = self._client_send(event, end)
        else:
            not_before = self._server_send(event, end)
        self._send_not_before = not_before
        if wire != self._last_sent:
            self._repeat_count = 0
        self._last_sent = wire
        if self.echo_cancel:
            self._echo += wire
            if len(self._echo) > _MAX_ECHO:
                del self._echo[: len(self._echo) - _MAX_ECHO]
        return wire.translate(_ADD_PARITY) if self.software_parity else wire

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must be called if nothing arrives; call after NEED_DATA."""
        if self._state in (State.BINARY, State.ERROR):
            return None
        if self._buffer:
            return self._rx_time + self.inter_character_timeout_s
        return self._deadline

    def handle_timeout(self, now: float) -> None:
        """Run the timers: past the deadline, drop any partial message and return to IDLE."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        partial = bool(self._buffer)
        self._buffer.clear()
        self._scan = 0
        self._noise = 0
        if self._state is State.IDLE:
            return
        if not (self._state is State.AFTER_READOUT and not partial):  # that one is the normal end
            kind = TimeoutKind.INTER_CHARACTER if partial else self._deadline_kind
            self._events.append(Timeout(kind, deadline))
        self._to_idle(now)

    # -- internals: session bookkeeping --------------------------------------------------------

    def _reset_session(self) -> None:
        self._ident = None
        self._mode = None
        self._nak_return = State.IDLE
        self._resend_state = State.PROGRAMMING
        self._corrupt_count = 0
        self._repeat_count = 0
        self._last_sent = b""
        self._accepts_ack = False
        self._accepts_data = False
        self._blocks = []
        self._blocks_size = 0
        self._fresh_block = False

    def _session_identification(self) -> IdentificationMessage:
        # IDENTIFIED and AWAIT_OPTION are only entered with an identification at hand.
        if self._ident is None:  # pragma: no cover - guarded by the state machine
            raise _local("internal error: no identification in this session")
        return self._ident

    @property
    def _reaction(self) -> float:
        if self.reaction_time_s is not None:
            return self.reaction_time_s
        return self._ident.reaction_time_s if self._ident is not None else REACTION_TIME_S

    def _arm(self, when: float, kind: TimeoutKind = TimeoutKind.RESPONSE) -> None:
        self._deadline = when
        self._deadline_kind = kind

    def _to_idle(self, not_before: float) -> None:
        if self._baud_rate != self.initial_baud_rate:
            self._events.append(ChangeBaudRate(self.initial_baud_rate, not_before))
            self._baud_rate = self.initial_baud_rate
        self._state = State.IDLE
        self._deadline = None
        self._noise = 0
        self._blocks = []
        self._blocks_size = 0
        self._corrupt_count = 0
        self._repeat_count = 0

    def _switch(self, baud_rate: int, not_before: float) -> None:
        if baud_rate != self._baud_rate:
            self._events.append(ChangeBaudRate(baud_rate, not_before))
            self._baud_rate = baud_rate

    def _handover(self, baud_rate: int, not_before: float) -> None:
        self._events.append(HdlcHandover(baud_rate, not_before))
        self._baud_rate = baud_rate
        self._state = State.BINARY
        self._deadline = None
        self._trailing += self._buffer
        self._buffer.clear()
        self._scan = 0

    def _good_frame(self) -> None:
        self._corrupt_count = 0
        self._repeat_count = 0
        self._noise = 0

    def _corrupt(self, exc: FrameError, frame: bytes) -> None:
        if self.role is Role.CLIENT and self._mode is ProtocolMode.D:
            raise exc  # a push meter cannot be asked to repeat
        self._corrupt_count += 1
        if self._corrupt_count > self.max_repeats:
            reason = _DUMP.sub("", str(exc).removeprefix(f"{LAYER}: "))
            raise FrameError(
                f"{reason}; still corrupt after {self.max_repeats} repeat requests",
                layer=LAYER,
                data=frame,
            ) from exc
        self._events.append(FrameCorrupted(str(exc), frame, self._corrupt_count))
        self._nak_return = self._state
        self._state = State.SEND_NAK
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _repeat_requested(self, resend_state: State) -> None:
        self._repeat_count += 1
        if self._repeat_count > self.max_repeats:
            raise _remote(
                f"the peer asked {self._repeat_count} times in a row for a repeat (NAK); "
                f"giving up after {self.max_repeats}",
                self._last_sent[:32],
            )
        self._events.append(RepeatRequested(self._repeat_count))
        self._state = resend_state
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _cancel_echo(self, data: bytes) -> bytes:
        """Drop our own bytes coming back; an echo counts only once it has come back whole.

        Bytes matching the start of the expected echo are held back until the whole echo has
        arrived (then dropped) or a byte differs (then handed on with what was held), so a meter
        answer that happens to start like our message (the ``/`` of the identification after
        our ``/?!``) is never eaten.
        """
        expected, held = self._echo, self._echo_held
        for index, byte in enumerate(data):
            if expected and byte == expected[0]:
                held.append(byte)
                del expected[:1]
                if not expected:
                    self.echo_bytes_dropped += len(held)
                    held.clear()
                continue
            out = bytes(held) + data[index:]
            held.clear()
            expected.clear()
            return out
        return b""

    # -- internals: framing --------------------------------------------------------------------

    def _step(self) -> bool:
        """Consume at most one message (or one noise byte); False when more bytes are needed."""
        buf = self._buffer
        if not buf:
            return False
        state = self._state
        if state is State.IDLE:
            return self._hunt()
        first = buf[0]
        if state is State.AFTER_READOUT and first not in (NUL, NAK):
            self._to_idle(self._rx_time)  # the reader moved on; look at these bytes in IDLE
            return True
        if first == NUL:  # a whole run at once
            del buf[: len(buf) - len(buf.lstrip(b"\x00"))]
            return True
        expected = _EXPECTED.get(state, _NO_BYTES)
        if first not in expected:
            if first in _JUNK and self._noise < _MAX_NOISE:
                self._noise += 1
                del buf[:1]
                return True
            wanted = " ".join(f"{b:02x}" for b in sorted(expected)) or "nothing (our turn to send)"
            hint = (
                "; bit 7 is set: a transparent 8N1 link passes the parity bit, enable software_parity"
                if first & 0x80
                else ""
            )
            raise _remote(
                f"unexpected byte 0x{first:02x} in state {state.value}; expected {wanted}{hint}", buf[:32]
            )
        frame = self._take_frame(first)
        if frame is None:
            return False
        if self.role is Role.CLIENT:
            self._client_frame(first, frame)
        else:
            self._server_frame(first, frame)
        return True

    def _take_frame(self, first: int) -> bytes | None:
        buf = self._buffer
        if first == _SLASH:
            end = buf.find(CRLF, 0, _LINE_LIMIT)
            if end < 0:
                if len(buf) >= _LINE_LIMIT:
                    raise _remote(f"no CR LF within {_LINE_LIMIT} bytes of '/'", buf[:_LINE_LIMIT])
                return None
            size = end + 2
        elif first in (SOH, STX):
            found = self._block_size()
            if found is None:
                return None
            size = found
        elif first == ACK and self._state is State.AWAIT_OPTION:
            for index in range(1, min(len(buf), 6)):
                byte = buf[index]
                ok = byte in _DIGIT_BYTES if index <= 3 else byte == (CR if index == 4 else LF)
                if not ok:
                    raise _remote("an option select message is ACK V Z Y CR LF", buf[: index + 1])
            if len(buf) < 6:
                return None
            size = 6
        else:
            size = 1
        frame = bytes(buf[:size])
        del buf[:size]
        self._scan = 0
        return frame

    def _block_size(self) -> int | None:
        """Length of the SOH/STX block at the buffer start (through its BCC), None if incomplete."""
        buf = self._buffer
        start = max(self._scan, 1)
        etx = buf.find(ETX, start)
        eot = buf.find(EOT, start, etx if etx >= 0 else len(buf))
        end = eot if eot >= 0 else etx
        if end < 0:
            self._scan = len(buf)
            if len(buf) > self.max_block_size:
                raise _remote(f"block longer than {self.max_block_size} bytes without ETX/EOT", buf[:32])
            return None
        if end + 2 > self.max_block_size:
            raise _remote(f"block of {end + 2} bytes exceeds the limit of {self.max_block_size}", buf[:32])
        if end + 1 >= len(buf):
            self._scan = end
            return None
        return end + 2

    def _hunt(self) -> bool:
        """IDLE: look for an identification (reader, mode D push) or a request for us (meter).

        A valid line holds exactly one ``/``, at its start, and ends with CR LF within
        ``_LINE_LIMIT`` bytes; so only the last ``/`` before the first CR LF can start one, and
        bytes that can no longer become part of a line are dropped in one go.
        """
        buf = self._buffer
        crlf = buf.find(CRLF)
        if crlf < 0:
            keep_from = buf.find(_SLASH, max(0, len(buf) - _LINE_LIMIT + 1))
            if keep_from < 0:
                buf.clear()
            else:
                del buf[:keep_from]
            return False
        start = buf.rfind(_SLASH, max(0, crlf + 2 - _LINE_LIMIT), crlf)
        line = bytes(buf[start : crlf + 2]) if start >= 0 else b""
        del buf[: crlf + 2]
        if not line:
            return True
        try:
            message: IdentificationMessage | RequestMessage = (
                IdentificationMessage.from_bytes(line)
                if self.role is Role.CLIENT
                else RequestMessage.from_bytes(line)
            )
        except RemoteProtocolError:
            return True
        if isinstance(message, IdentificationMessage):
            self._reset_session()
            self._on_identification(message, pushed=True)
        elif self._addressed_to_us(message.device_address):
            self._on_request(message)
        return True

    # -- internals: the reader -----------------------------------------------------------------

    def _on_identification(self, ident: IdentificationMessage, *, pushed: bool) -> None:
        mode = ProtocolMode.D if pushed else ident.protocol_mode
        rate = ident.max_baud_rate
        if mode is ProtocolMode.B and rate is None:
            raise _remote(f"identification offers the reserved mode B baud character {ident.baud_char!r}")
        self._good_frame()
        self._ident = ident
        self._mode = mode
        self._events.append(IdentificationReceived(ident, mode))
        self._send_not_before = self._rx_time + self._reaction
        if mode in (ProtocolMode.C, ProtocolMode.E):
            self._state = State.IDENTIFIED
            self._deadline = None
            return
        if mode is ProtocolMode.B and rate is not None:
            self._switch(rate, self._rx_time)
        self._state = State.AWAIT_READOUT
        self._arm(self._rx_time + self.response_timeout_s)

    def _client_frame(self, first: int, frame: bytes) -> None:
        state = self._state
        if state is State.AWAIT_IDENTIFICATION:
            if frame.startswith(b"/?"):
                RequestMessage.from_bytes(frame)  # our own request echoed by a half-duplex head
                return
            self._on_identification(IdentificationMessage.from_bytes(frame), pushed=False)
        elif state is State.AWAIT_READOUT:
            try:
                data = DataMessage.from_bytes(frame)
            except FrameError as exc:
                self._corrupt(exc, frame)
                return
            self._good_frame()
            self._events.append(ReadoutReceived(data, parse_data_block(data.data)))
            self._to_idle(self._rx_time)
        elif state is State.AWAIT_OPERAND:
            try:
                command = CommandMessage.from_bytes(frame)
            except FrameError as exc:
                self._corrupt(exc, frame)
                return
            if command.is_break:
                self._break_received(command)
                return
            if not command.is_password_request:
                raise _remote(
                    f"expected the password request P0 after the programming option select, "
                    f"got {command.command}{command.command_type}",
                    frame,
                )
            self._good_frame()
            self._events.append(PasswordRequested(command))
            self._state = State.PROGRAMMING
            self._deadline = None
            self._send_not_before = self._rx_time + self._reaction
        else:  # AWAIT_REPLY
            self._client_reply(first, frame)

    def _client_reply(self, first: int, frame: bytes) -> None:
        if first == NAK:
            self._repeat_requested(self._resend_state)
            return
        if first == ACK:
            if not self._accepts_ack:
                raise _remote("ACK is no answer to a read command or to a block acknowledgement", frame)
            self._good_frame()
            self._events.append(Acknowledged())
            self._to_programming()
            return
        if first == SOH:
            try:
                command = CommandMessage.from_bytes(frame)
            except FrameError as exc:
                self._corrupt(exc, frame)
                return
            if not command.is_break:
                raise _remote(
                    f"the meter sent command {command.command}{command.command_type} instead of an answer",
                    frame,
                )
            self._break_received(command)
            return
        try:
            answer = AnswerMessage.from_bytes(frame)
        except FrameError as exc:
            self._corrupt(exc, frame)
            return
        self._good_frame()
        if not self._accepts_data:  # P, W: any data answer is an error message
            self._events.append(DeviceError(_message_text(answer.data), answer))
            self._to_programming()
            return
        if not self._blocks and not answer.partial:
            text = error_text(answer.data, pattern=self.error_text_pattern)
            if text is not None:
                self._events.append(DeviceError(text, answer))
                self._to_programming()
                return
        self._blocks_size += len(answer.data)
        if self._blocks_size > self.max_answer_size:
            raise _remote(f"answer of more than {self.max_answer_size} bytes in partial blocks")
        self._blocks.append(answer)
        if answer.partial:
            self._fresh_block = True
            self._events.append(PartialAnswerReceived(answer, len(self._blocks) - 1))
            self._state = State.SEND_BLOCK_ACK
            self._deadline = None
            self._send_not_before = self._rx_time + self._reaction
            return
        data = "".join(block.data for block in self._blocks)
        count = len(self._blocks)
        self._events.append(AnswerReceived(answer, data, parse_data_block(data, programming=True), count))
        self._to_programming()

    def _to_programming(self) -> None:
        self._blocks = []
        self._blocks_size = 0
        self._state = State.PROGRAMMING
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _break_received(self, command: CommandMessage) -> None:
        self._events.append(BreakReceived(command))
        self._to_idle(self._rx_time)

    def _client_send(self, event: Message, end: float) -> float | None:
        state = self._state
        if isinstance(event, WakeUp) and state is State.IDLE:
            return end + WAKE_UP_PAUSE_S
        if isinstance(event, RequestMessage) and state is State.IDLE:
            self._buffer.clear()  # stale bytes belong to no one now
            self._scan = 0
            self._reset_session()
            self._state = State.AWAIT_IDENTIFICATION
            self._arm(end + self.response_timeout_s)
            return None
        if isinstance(event, AckOptionSelect) and state is State.IDENTIFIED:
            return self._client_option_select(event, end)
        if isinstance(event, Nak) and state is State.SEND_NAK:
            self._state = self._nak_return
            self._arm(end + self.response_timeout_s)
            return None
        if isinstance(event, (Ack, Nak)) and state is State.SEND_BLOCK_ACK:
            if isinstance(event, Nak) and self._fresh_block:  # the same block comes again; forget our copy
                dropped = self._blocks.pop()
                self._blocks_size -= len(dropped.data)
            self._fresh_block = False
            self._accepts_ack, self._accepts_data = False, True
            self._resend_state = State.SEND_BLOCK_ACK
            self._state = State.AWAIT_REPLY
            self._arm(end + self.response_timeout_s)
            return None
        if isinstance(event, CommandMessage):
            programming_nak = state is State.SEND_NAK and self._nak_return in (
                State.AWAIT_OPERAND,
                State.AWAIT_REPLY,
            )
            if event.is_break and (state in (State.PROGRAMMING, State.SEND_BLOCK_ACK) or programming_nak):
                self._to_idle(end)
                return None
            if state is State.PROGRAMMING:
                if event.is_password_request:
                    raise _local("P0 (password request) is sent by the meter, not the reader")
                command = event.command
                self._accepts_ack = command != CommandId.READ
                self._accepts_data = command in (CommandId.READ, CommandId.EXECUTE)
                self._resend_state = State.PROGRAMMING
                self._state = State.AWAIT_REPLY
                self._arm(end + self.response_timeout_s)
                return None
        raise _local(f"the reader cannot send {type(event).__name__} in state {state.value}")

    def _client_option_select(self, event: AckOptionSelect, end: float) -> float | None:
        ident = self._session_identification()
        rate = event.baud_rate
        if rate is None:
            raise _local(f"baud rate character {event.baud_char!r} is reserved; use 0-6")
        offered = BAUD_RATES_MODE_C.get(ident.baud_char, max(BAUD_RATES_MODE_C.values()))
        if rate > offered:
            raise _local(
                f"Z={event.baud_char} asks for {rate} Bd, but the meter offered at most {offered} Bd "
                f"(Z={ident.baud_char})"
            )
        control, mode = event.protocol_control, event.mode_control
        if control not in (ProtocolControl.NORMAL, ProtocolControl.SECONDARY, ProtocolControl.HDLC):
            raise _local(f"protocol control character V={control} is reserved")
        if mode in ModeControl.RESERVED:
            raise _local(f"mode control character Y={mode} is reserved")
        switch_at = end + self.baud_change_delay_s
        if ProtocolControl.HDLC in (control, mode) or mode == ModeControl.BINARY:
            if control != ProtocolControl.HDLC or mode != ModeControl.BINARY:
                raise _local(
                    "the hand-over to HDLC (mode E) needs V=2 and Y=2 (ACK 2 Z 2); with V=0 meters such as "
                    "the Apator Norax answer with a plain readout instead"
                )
            if not ident.binary_mode_available:
                raise _local("the meter did not offer binary mode (no \\2 in its identification)")
            self._handover(rate, switch_at)
            return None
        self._switch(rate, switch_at)
        self._state = State.AWAIT_OPERAND if mode == ModeControl.PROGRAMMING else State.AWAIT_READOUT
        self._arm(switch_at + self.response_timeout_s)
        return None

    # -- internals: the meter ------------------------------------------------------------------

    def _addressed_to_us(self, address: str) -> bool:
        if address == "":
            return not self.require_address
        if self.device_address is None:
            return True
        return address == self.device_address or (
            address.lstrip("0") == self.device_address.lstrip("0") and address.isdigit()
        )

    def _on_request(self, request: RequestMessage) -> None:
        self._reset_session()
        self._events.append(RequestReceived(request))
        self._state = State.REQUESTED
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _server_frame(self, first: int, frame: bytes) -> None:
        state = self._state
        if state is State.AWAIT_OPTION:
            if first == _SLASH:
                request = RequestMessage.from_bytes(frame)
                if self._addressed_to_us(request.device_address):
                    self._on_request(request)  # the reader started over
                else:
                    self._to_idle(self._rx_time)
                return
            self._on_option_select(AckOptionSelect.from_bytes(frame))
            return
        if state is State.AFTER_READOUT:  # NAK: send the readout again
            self._repeat_requested(State.SEND_READOUT)
            return
        # AWAIT_COMMAND, AWAIT_BLOCK_ACK
        if first == NAK:
            self._repeat_requested(State.REPLY)
            return
        if first == ACK:  # only in AWAIT_BLOCK_ACK: send the next block
            self._good_frame()
            self._events.append(Acknowledged())
            self._state = State.REPLY
            self._deadline = None
            self._send_not_before = self._rx_time + self._reaction
            return
        try:
            command = CommandMessage.from_bytes(frame)
        except FrameError as exc:
            self._corrupt(exc, frame)
            return
        self._good_frame()
        if command.is_break:
            self._break_received(command)
            return
        self._events.append(CommandReceived(command))
        self._state = State.REPLY
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _on_option_select(self, option: AckOptionSelect) -> None:
        ident = self._session_identification()
        rate = option.baud_rate
        if rate is None:
            raise _remote(f"option select names the reserved baud rate character {option.baud_char!r}")
        offered = ident.max_baud_rate or max(BAUD_RATES_MODE_C.values())
        if rate > offered:
            raise _remote(
                f"option select asks for {rate} Bd; the identification offered at most {offered} Bd"
            )
        control, mode = option.protocol_control, option.mode_control
        if control not in (ProtocolControl.NORMAL, ProtocolControl.SECONDARY, ProtocolControl.HDLC):
            raise _remote(f"option select uses the reserved protocol control character V={control}")
        if mode in ModeControl.RESERVED:
            raise _remote(f"option select uses the reserved mode control character Y={mode}")
        if control == ProtocolControl.HDLC:
            if mode != ModeControl.BINARY:
                raise _remote(f"protocol control V=2 (HDLC) needs mode control Y=2, got Y={mode}")
            if not ident.binary_mode_available:
                raise _remote("binary mode (ACK 2 Z 2) requested but the identification did not offer \\2")
            self._good_frame()
            self._events.append(OptionSelected(option))
            self._handover(rate, self._rx_time)
            return
        self._good_frame()
        self._events.append(OptionSelected(option))
        self._switch(rate, self._rx_time)
        # Y=2 with V!=2 gets the plain readout, as the Apator Norax does (protocols.md 1.7).
        self._state = State.SEND_OPERAND if mode == ModeControl.PROGRAMMING else State.SEND_READOUT
        self._deadline = None
        self._send_not_before = self._rx_time + self._reaction

    def _server_send(self, event: Message, end: float) -> float | None:
        state = self._state
        if isinstance(event, IdentificationMessage) and state in (State.IDLE, State.REQUESTED):
            return self._server_identification(event, end)
        if isinstance(event, DataMessage) and state is State.SEND_READOUT:
            self._state = State.AFTER_READOUT
            self._arm(end + self.response_timeout_s)
            return None
        if isinstance(event, DataMessage) and state is State.PUSH_READOUT:
            self._to_idle(end)
            return None
        if isinstance(event, CommandMessage) and state in (State.SEND_OPERAND, State.REPLY):
            if event.is_break:
                self._to_idle(end)
                return None
            if event.is_password_request:
                self._state = State.AWAIT_COMMAND
                self._arm(end + self.inactivity_timeout_s, TimeoutKind.INACTIVITY)
                return None
        if isinstance(event, (Ack, Nak)) and state is State.REPLY:
            self._state = State.AWAIT_COMMAND
            self._arm(end + self.inactivity_timeout_s, TimeoutKind.INACTIVITY)
            return None
        if isinstance(event, AnswerMessage) and state is State.REPLY:
            self._state = State.AWAIT_BLOCK_ACK if event.partial else State.AWAIT_COMMAND
            self._arm(end + self.inactivity_timeout_s, TimeoutKind.INACTIVITY)
            return None
        if isinstance(event, Nak) and state is State.SEND_NAK:  # back to AWAIT_COMMAND/AWAIT_BLOCK_ACK
            self._state = self._nak_return
            self._arm(end + self.inactivity_timeout_s, TimeoutKind.INACTIVITY)
            return None
        raise _local(f"the meter cannot send {type(event).__name__} in state {state.value}")

    def _server_identification(self, ident: IdentificationMessage, end: float) -> float | None:
        mode = ident.protocol_mode
        rate = ident.max_baud_rate
        if rate is None:
            raise _local(f"baud rate character Z={ident.baud_char!r} is reserved")
        if self._state is State.IDLE:  # mode D push: the data message follows at once
            self._reset_session()
            self._ident, self._mode = ident, ProtocolMode.D
            self._state = State.PUSH_READOUT
            return None
        self._ident, self._mode = ident, mode
        if mode in (ProtocolMode.C, ProtocolMode.E):
            self._state = State.AWAIT_OPTION
            self._arm(end + self.response_timeout_s)
            return None
        self._switch(rate, end)  # mode B switches right after the identification; A stays
        self._state = State.SEND_READOUT
        self._deadline = None
        return end + self._reaction

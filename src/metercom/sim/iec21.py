"""Simulated IEC 62056-21 meter: the same codec in the SERVER role, over any Transport.

Rule (DESIGN.md section 1, "symmetry"): the simulator contains no protocol code of its own.
:class:`~metercom.codec.iec62056_21.Iec21Connection` in ``Role.SERVER`` decides what is legal and
when; this module is the meter *application* (identification, readout, registers, password) and
the async shell that moves bytes and carries out the codec's instructions with the event loop's
clock, exactly like :class:`~metercom.session.iec21.Iec21Session` on the other side. So one
meter runs unchanged on a :class:`~metercom.transport.SimulatedLine` (virtual time, real 300 Bd
pacing), a TCP connection or a pty.

Theory of operation: one loop per link. It drains ``next_event()`` and acts on each event
(``ChangeBaudRate``: drain, wait, set the line; ``CommandReceived``: compute the answer), then,
if the connection's state says it is the meter's turn, waits for ``send_not_before`` (the
reaction time t_r, 200 ms for ``LTT``) and sends the identification, readout, P0, NAK or the
answer; otherwise it reads with the time-out ``next_deadline()`` gives. Illegal input (for
example a reader talking at the wrong speed) resets the conversation to idle at the start
speed, as a real meter does; the link is served until it closes.

The meter (:class:`Iec21MeterConfig`):

* identification ``/XXXZ[\\2]ident``: ``manufacturer`` (FLAG ID), ``baud_max`` (gives Z: a digit
  in modes C and E, a letter in mode B, a space in mode A), ``ident``. The defaults give the
  worked example ``/LTT597705377`` (protocols.md 1.11): ``LTT`` + Z ``5`` (9600 Bd) +
  ``97705377``.
* ``mode``: C (default), A (readout at once at 300 Bd), B (both switch right after the
  identification), E (offers ``\\2``; after ``ACK 2 Z 2`` it switches to 8N1 and reports the
  hand-over). DLMS/HDLC serving is a later issue: without a ``binary_handler`` the meter ignores
  whatever arrives until the line has been quiet for ``binary_idle_s``, then returns to 300 Bd
  7E1 and idle, so the conversation ends cleanly.
* registers: the readout data sets by address (default: the 5-line sample of protocols.md 1.11,
  ``full_readout=True`` the 19-line one), readable with R1/R2 (R3/R4 in partial blocks of
  ``block_size`` characters) and writable with W1/W2 once the password was given (P1);
  ``0.9.1`` (time ``hhmmss``) and ``0.9.2`` (date ``YYMMDD``) are checked. Reads need no
  password; writes and E2 do when a ``password`` is set. Writes show in the next readout.
* ``readout_provider``: the hook for a load model. A callable returning the current data sets;
  when set, readouts (and reads of addresses it provides) come from it.

Faults (:class:`Iec21Faults`, counters shared by every link of one meter):

* ``corrupt_bcc``: the first N BCC-protected messages the meter sends (readouts, answers) go out
  with a wrong BCC (the reader NAKs; the repeat is good once N are used up). :data:`ALWAYS`.
* ``no_answer``: ignore the first N requests (a sleeping meter, a misaligned head).
* ``garbage``: answer the first N requests with noise instead of the identification.
* ``refuse_baud_above``: offer the configured Z but do not switch above this rate: the meter
  acknowledges nothing and keeps talking at its start speed (a meter offering a speed it will not
  use, field notes; pwitab #33). Readers that step down on retries succeed.
* ``lockout_after``: after N wrong passwords in a row every password, even the right one, is
  refused for ``lockout_s`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Final

from metercom.codec.base import NeedData, Role
from metercom.codec.iec62056_21 import (
    SAMPLE_READOUT,
    SAMPLE_READOUT_FULL,
    Ack,
    Acknowledged,
    AnswerMessage,
    BreakReceived,
    ChangeBaudRate,
    CommandMessage,
    CommandReceived,
    DataMessage,
    DataSet,
    Event,
    HdlcHandover,
    IdentificationMessage,
    Iec21Connection,
    Message,
    Nak,
    ProtocolMode,
    RepeatRequested,
    RequestReceived,
    State,
    Timeout,
    parse_data_line,
    parse_date,
    parse_time,
)
from metercom.codec.iec62056_21.constants import (
    BAUD_RATES_MODE_B,
    BAUD_RATES_MODE_C,
    DEFAULT_INITIAL_BAUD_RATE,
    FRAME_FORMAT,
    PROGRAMMING_INACTIVITY_TIMEOUT_S,
)
from metercom.errors import (
    ConnectionLost,
    InputError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.obis import Obis
from metercom.transport import TransportServer, open_pty, serve
from metercom.transport.base import LineSettings, Transport
from metercom.transport.pty import PtyTransport

__all__ = [
    "ALWAYS",
    "BinaryHandler",
    "Iec21Faults",
    "Iec21Meter",
    "Iec21MeterConfig",
    "Iec21MeterServer",
    "MeterStats",
    "ReadoutProvider",
    "parse_mode",
    "serve_iec21",
]

log = logging.getLogger(__name__)

#: A fault count meaning "every time".
ALWAYS: Final = sys.maxsize

#: The load-model hook: returns the data sets of the next readout.
ReadoutProvider = Callable[[], Iterable[DataSet]]
#: Serves the link after a mode E hand-over: ``(transport, baud_rate, bytes_already_received)``.
BinaryHandler = Callable[[Transport, int, bytes], Awaitable[None]]

_Z_MODE_C: Final = {rate: char for char, rate in BAUD_RATES_MODE_C.items()}
_Z_MODE_B: Final = {rate: char for char, rate in BAUD_RATES_MODE_B.items()}
_ERROR: Final = "(ERROR)"
_LOCKED: Final = "(ERROR LOCKED)"


def parse_mode(text: str) -> ProtocolMode:
    """The protocol mode a simulated meter can serve, from its letter: ``A``, ``B``, ``C`` or ``E``."""
    try:
        mode = ProtocolMode(text.strip().upper())
    except ValueError:
        mode = ProtocolMode.D  # reported below
    if mode is ProtocolMode.D:
        raise InputError(f"protocol mode must be A, B, C or E for a simulated meter, got {text!r}")
    return mode


@dataclass(frozen=True, slots=True)
class Iec21Faults:
    """Faults to inject; see the module docstring. Counts are "the first N" (:data:`ALWAYS`: all)."""

    corrupt_bcc: int = 0
    no_answer: int = 0
    garbage: int = 0
    refuse_baud_above: int | None = None
    lockout_after: int | None = None

    #: Names accepted by :meth:`parse` (``--fault NAME[=N]``).
    NAMES: ClassVar[tuple[str, ...]] = ("corrupt-bcc", "no-answer", "garbage", "refuse-baud-above", "lockout")

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Iec21Faults:
        """From ``NAME[=N]`` texts: ``corrupt-bcc``, ``corrupt-bcc=always``, ``no-answer=2``,
        ``garbage``, ``refuse-baud-above=4800``, ``lockout=3``. A bare count-fault means N=1."""
        values: dict[str, int | None] = {}
        for spec in specs:
            name, has_value, text = spec.strip().partition("=")
            name = name.strip().lower().replace("_", "-")
            if name not in cls.NAMES:
                raise InputError(f"unknown fault {name!r}; known: {', '.join(cls.NAMES)} (NAME[=N])")
            number: int
            if not has_value:
                if name in ("refuse-baud-above", "lockout"):
                    example = "4800" if "baud" in name else "3"
                    raise InputError(f"fault {name} needs a value, e.g. {name}={example}")
                number = 1
            elif text.strip().lower() == "always":
                number = ALWAYS
            elif text.strip().isdigit():
                number = int(text)
            else:
                raise InputError(f"fault {name}: expected a count or 'always', got {text!r}")
            values[name] = number
        return cls(
            corrupt_bcc=values.get("corrupt-bcc") or 0,
            no_answer=values.get("no-answer") or 0,
            garbage=values.get("garbage") or 0,
            refuse_baud_above=values.get("refuse-baud-above"),
            lockout_after=values.get("lockout"),
        )


@dataclass(frozen=True)
class Iec21MeterConfig:
    """What the simulated meter is; see the module docstring."""

    manufacturer: str = "LTT"
    ident: str = "97705377"
    baud_max: int = 9600
    mode: ProtocolMode = ProtocolMode.C
    #: Pause before answering; ``None``: 200 ms, or 20 ms for a lower-case third FLAG letter.
    reaction_time_s: float | None = None
    #: Answer only requests with this address (or none, unless ``require_address``); ``None``: all.
    device_address: str | None = None
    require_address: bool = False
    #: Programming-mode password (P1); ``None``: none needed.
    password: str | None = "00000000"  # noqa: S105 - the factory default seen in the field
    #: Operand sent with the password request P0.
    password_operand: str = "12345678"  # noqa: S105 - a challenge, not a secret
    full_readout: bool = False
    #: Registers by address as bracketed values, ``{"1.8.0": "(343642.9*kWh)"}``; ``None``: the sample.
    registers: dict[str, str] | None = None
    readout_provider: ReadoutProvider | None = None
    faults: Iec21Faults = field(default_factory=Iec21Faults)
    lockout_s: float = 3600.0
    #: Mode E without a binary handler: quiet time after which the meter returns to idle.
    binary_idle_s: float = 2.0
    #: Characters per partial block for R3/R4 reads.
    block_size: int = 16
    inactivity_timeout_s: float = PROGRAMMING_INACTIVITY_TIMEOUT_S
    initial_baud_rate: int = DEFAULT_INITIAL_BAUD_RATE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode is ProtocolMode.D:
            raise InputError("the simulator serves modes A, B, C and E; mode D (push) is not simulated")
        if self.mode in (ProtocolMode.C, ProtocolMode.E) and self.baud_max not in _Z_MODE_C:
            raise InputError(f"baud_max must be one of {sorted(_Z_MODE_C)} in mode {self.mode.value}")
        if self.mode is ProtocolMode.B and self.baud_max not in _Z_MODE_B:
            raise InputError(f"baud_max must be one of {sorted(_Z_MODE_B)} in mode B")
        if self.block_size < 1:
            raise InputError(f"block_size must be positive, got {self.block_size}")
        try:
            self.identification  # noqa: B018 - validates manufacturer and ident
            Iec21Connection(Role.SERVER, device_address=self.device_address)
            CommandMessage.password_request(self.password_operand)
        except LocalProtocolError as exc:
            raise InputError(f"invalid simulated meter: {exc}") from exc

    @property
    def baud_char(self) -> str:
        """The Z character the identification carries."""
        if self.mode is ProtocolMode.A:
            return " "  # any printable non-digit, non-letter A-I: Kamstrup sends a space
        if self.mode is ProtocolMode.B:
            return _Z_MODE_B[self.baud_max]
        return _Z_MODE_C[self.baud_max]

    @property
    def identification(self) -> IdentificationMessage:
        enhanced = "2" if self.mode is ProtocolMode.E else None
        return IdentificationMessage(self.manufacturer, self.baud_char, self.ident, enhanced)


@dataclass
class MeterStats:
    """What the meter saw and did (all links)."""

    requests: int = 0
    identifications_sent: int = 0
    readouts_sent: int = 0
    answers_sent: int = 0
    corrupted_sent: int = 0
    ignored_requests: int = 0
    garbage_sent: int = 0
    refused_switches: int = 0
    naks_sent: int = 0
    wrong_passwords: int = 0
    locked_refusals: int = 0
    writes: int = 0
    executes: int = 0
    sign_offs: int = 0
    handovers: int = 0
    protocol_errors: int = 0
    #: Baud rates the meter switched its line to, in order.
    baud_rates: list[int] = field(default_factory=list)


def _key(address: str) -> str:
    """Lookup key of an address: the canonical OBIS form where it is one (``1.8.0`` = ``1-0:1.8.0``)."""
    try:
        return str(Obis.parse(address))
    except ValueError:
        return address


class Iec21Meter:
    """One simulated meter; :meth:`serve` runs it on a link (any number of links, one at a time each)."""

    def __init__(
        self, config: Iec21MeterConfig | None = None, *, binary_handler: BinaryHandler | None = None
    ) -> None:
        self.config = config or Iec21MeterConfig()
        self.binary_handler = binary_handler
        self.stats = MeterStats()
        self.registers: dict[str, str] = dict(self.config.registers or self._sample_registers())
        #: Commands executed with E2, in order.
        self.executed: list[str] = []
        faults = self.config.faults
        # Fault counts still to use, shared by every link.
        self._faults_left = {
            "corrupt_bcc": faults.corrupt_bcc,
            "no_answer": faults.no_answer,
            "garbage": faults.garbage,
        }
        self._wrong_in_a_row = 0
        self._locked_until = -float("inf")
        self._rng = random.Random(self.config.seed)

    def __repr__(self) -> str:
        return f"<Iec21Meter {self.identification_text} mode {self.config.mode.value}>"

    def _sample_registers(self) -> dict[str, str]:
        sample = SAMPLE_READOUT_FULL if self.config.full_readout else SAMPLE_READOUT
        return {ds.address: ds.raw[len(ds.address) :] for ds in sample.datasets}

    @property
    def identification(self) -> IdentificationMessage:
        return self.config.identification

    @property
    def identification_text(self) -> str:
        return self.identification.to_bytes().decode("ascii").rstrip("\r\n")

    def datasets(self) -> tuple[DataSet, ...]:
        """The data sets of the next readout (the provider's, else the registers)."""
        if self.config.readout_provider is not None:
            return tuple(self.config.readout_provider())
        found: list[DataSet] = []
        for address, values in self.registers.items():
            found.extend(parse_data_line(f"{address}{values}"))
        return tuple(found)

    def readout_message(self) -> DataMessage:
        """The readout data message built from :meth:`datasets`."""
        return DataMessage("".join(f"{dataset.to_text()}\r\n" for dataset in self.datasets()))

    def register(self, address: str) -> str | None:
        """The bracketed value(s) of ``address`` (provider first), or ``None`` if unknown."""
        key = _key(address)
        if self.config.readout_provider is not None:
            for dataset in self.config.readout_provider():
                if dataset.address and _key(dataset.address) == key:
                    return dataset.raw[len(dataset.address) :].strip()
        for known, values in self.registers.items():
            if _key(known) == key:
                return values
        return None

    async def serve(self, transport: Transport) -> None:
        """Serve ``transport`` until it closes (or the task is cancelled)."""
        link = _Link(self, transport)
        try:
            await link.run()
        except ConnectionLost as exc:
            log.debug("%s: link closed: %s", transport.url, exc)

    # -- the meter application -------------------------------------------------------------------

    def take_fault(self, name: str) -> bool:
        """Use one count of fault ``name`` (``corrupt_bcc``, ``no_answer``, ``garbage``) if any is left."""
        left = self._faults_left[name]
        if left <= 0:
            return False
        if left != ALWAYS:
            self._faults_left[name] = left - 1
        return True

    def garbage(self, size: int = 24) -> bytes:
        """Noise for the garbage fault: 7-bit bytes that can never start a message line."""
        alphabet = bytes(b for b in range(0x80) if b not in b"/\r\n")
        return bytes(self._rng.choice(alphabet) for _ in range(size))

    def answer(self, command: CommandMessage, *, authenticated: bool, now: float) -> tuple[Message, bool]:
        """The reply to a programming-mode command and whether the link is authenticated after it.

        R3/R4 answers are the first block; :meth:`blocks` gives all of them.
        """
        letter, kind = command.command, command.command_type
        data = (command.data or "").rstrip("\r\n")
        address, _, rest = data.partition("(")
        address = address.strip()
        if letter == "P":
            reply, accepted = self._password(command, now=now)
            return reply, authenticated or accepted
        if letter == "R":
            values = self.register(address)
            if values is None or kind not in "1234":
                return AnswerMessage(_ERROR), authenticated
            self.stats.answers_sent += 1
            return AnswerMessage(f"{address}{values}"), authenticated
        needs_password = self.config.password is not None and not authenticated
        if letter == "W":
            value = rest.removesuffix(")")
            if needs_password or kind not in "12" or command.partial or not self._write(address, value):
                return AnswerMessage(_ERROR), authenticated
            return Ack(), authenticated
        if letter == "E":
            if needs_password:
                return AnswerMessage(_ERROR), authenticated
            self.executed.append(data)
            self.stats.executes += 1
            return Ack(), authenticated
        return AnswerMessage(_ERROR), authenticated

    def blocks(self, text: str) -> list[AnswerMessage]:
        """``text`` as partial blocks of ``block_size`` characters (the last one ends with ETX)."""
        size = self.config.block_size
        chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        return [AnswerMessage(chunk, partial=i < len(chunks) - 1) for i, chunk in enumerate(chunks)]

    def _password(self, command: CommandMessage, *, now: float) -> tuple[Message, bool]:
        if command.command_type != "1":  # P2 (secure algorithm) is vendor specific
            return AnswerMessage(_ERROR), False
        if now < self._locked_until:
            self.stats.locked_refusals += 1
            return AnswerMessage(_LOCKED), False
        if self.config.password is None or command.operand == self.config.password:
            self._wrong_in_a_row = 0
            return Ack(), True
        self._wrong_in_a_row += 1
        self.stats.wrong_passwords += 1
        limit = self.config.faults.lockout_after
        if limit is not None and self._wrong_in_a_row >= limit:
            self._locked_until = now + self.config.lockout_s
            self._wrong_in_a_row = 0
        return AnswerMessage(_ERROR), False

    def _write(self, address: str, value: str) -> bool:
        key = _key(address)
        if key == _key("0.9.1") and parse_time(value) is None:
            return False
        if key == _key("0.9.2") and parse_date(value) is None:
            return False
        for known in self.registers:
            if _key(known) == key:
                address = known
                break
        else:
            return False
        if parse_data_line(f"{address}({value})") == () or "(" in value or ")" in value:
            return False
        self.registers[address] = f"({value})"
        self.stats.writes += 1
        return True


class _Link:
    """One link's conversation: the codec connection and the async shell around it."""

    def __init__(self, meter: Iec21Meter, transport: Transport) -> None:
        config = meter.config
        self.meter = meter
        self.transport = transport
        self.conn = Iec21Connection(
            Role.SERVER,
            initial_baud_rate=config.initial_baud_rate,
            device_address=config.device_address,
            require_address=config.require_address,
            reaction_time_s=config.reaction_time_s,
            inactivity_timeout_s=config.inactivity_timeout_s,
        )
        self.authenticated = False
        self.pending: Message | None = None
        self.last_reply: Message | None = None
        self.blocks: deque[AnswerMessage] = deque()
        self.line: LineSettings | None = None

    async def run(self) -> None:
        await self.set_line(self.meter.config.initial_baud_rate, FRAME_FORMAT)
        while True:
            try:
                await self.turn()
            except RemoteProtocolError as exc:
                # A reader at the wrong speed, line noise: back to idle at the start speed.
                log.debug("%s: %s; back to idle", self.transport.url, exc)
                self.meter.stats.protocol_errors += 1
                await self.reset()

    async def reset(self) -> None:
        self.conn.reset(now=asyncio.get_running_loop().time())
        self.authenticated = False
        self.pending = None
        self.blocks.clear()
        await self.set_line(self.meter.config.initial_baud_rate, FRAME_FORMAT)

    async def set_line(self, baud_rate: int, frame_format: str) -> None:
        settings = LineSettings.parse(frame_format, baud_rate)
        if settings != self.line:
            await self.transport.set_line(settings)
            self.line = settings
            if not self.meter.stats.baud_rates or self.meter.stats.baud_rates[-1] != baud_rate:
                self.meter.stats.baud_rates.append(baud_rate)

    async def turn(self) -> None:
        event = self.conn.next_event()
        if not isinstance(event, NeedData):
            await self.handle(event)
            return
        if self.conn.state is State.REQUESTED and await self.request_fault():
            await self.reset()  # the reader hears no identification; this conversation is over
            return
        message = self.message_for_state()
        if message is not None:
            await self.send(message)
        else:
            await self.receive()

    async def request_fault(self) -> bool:
        """Apply the no-answer and garbage faults to a request; True when one was applied."""
        meter, stats = self.meter, self.meter.stats
        if meter.take_fault("no_answer"):
            stats.ignored_requests += 1
            return True
        if meter.take_fault("garbage"):
            stats.garbage_sent += 1
            await _wait_until(self.conn.send_not_before or 0.0)
            await self.transport.write(meter.garbage())
            return True
        return False

    async def receive(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = self.conn.next_deadline()
        timeout_s = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await self.transport.read(timeout_s=timeout_s)
        except TransportTimeout:
            if deadline is not None:
                self.conn.handle_timeout(max(loop.time(), deadline))
            return
        self.conn.receive_data(data, now=loop.time())

    async def handle(self, event: Event) -> None:
        meter, stats = self.meter, self.meter.stats
        if isinstance(event, RequestReceived):
            stats.requests += 1
            self.authenticated = False
            self.blocks.clear()
        elif isinstance(event, ChangeBaudRate):
            limit = meter.config.faults.refuse_baud_above
            if (
                limit is not None
                and event.baud_rate > limit
                and event.baud_rate != self.conn.initial_baud_rate
            ):
                stats.refused_switches += 1
                log.debug("%s: refusing the switch to %d Bd (fault)", self.transport.url, event.baud_rate)
                return
            await self.transport.drain()
            await _wait_until(event.not_before)
            await self.set_line(event.baud_rate, event.frame_format)
        elif isinstance(event, HdlcHandover):
            await self.handover(event)
        elif isinstance(event, CommandReceived):
            self.pending = self.reply(event.message)
        elif isinstance(event, Acknowledged):
            self.pending = self.blocks.popleft() if self.blocks else None
        elif isinstance(event, RepeatRequested):
            if self.conn.state is State.REPLY:
                self.pending = self.last_reply
        elif isinstance(event, BreakReceived):
            stats.sign_offs += 1
            self.authenticated = False
        elif isinstance(event, Timeout):
            self.authenticated = False
        # OptionSelected and FrameCorrupted need nothing: the state says what to send next.

    def reply(self, command: CommandMessage) -> Message:
        now = asyncio.get_running_loop().time()
        message, self.authenticated = self.meter.answer(command, authenticated=self.authenticated, now=now)
        partial = command.command == "R" and command.command_type in "34"
        if partial and isinstance(message, AnswerMessage) and message.data != _ERROR:
            self.blocks = deque(self.meter.blocks(message.data))
            return self.blocks.popleft()
        return message

    def message_for_state(self) -> Message | None:
        meter, stats, state = self.meter, self.meter.stats, self.conn.state
        if state is State.REQUESTED:
            stats.identifications_sent += 1
            return meter.identification
        if state in (State.SEND_READOUT, State.PUSH_READOUT):
            stats.readouts_sent += 1
            return meter.readout_message()
        if state is State.SEND_OPERAND:
            return CommandMessage.password_request(meter.config.password_operand)
        if state is State.SEND_NAK:
            stats.naks_sent += 1
            return Nak()
        if state is State.REPLY and self.pending is not None:
            message, self.pending = self.pending, None
            self.last_reply = message
            return message
        return None

    async def send(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        not_before = self.conn.send_not_before
        if not_before is not None:
            await _wait_until(not_before)
        now = loop.time() if not_before is None else max(loop.time(), not_before)
        wire = self.conn.send(message, now=now)
        if isinstance(message, (DataMessage, AnswerMessage)) and self.meter.take_fault("corrupt_bcc"):
            wire = wire[:-1] + bytes((wire[-1] ^ 0x01,))  # still 7-bit, never the right BCC
            self.meter.stats.corrupted_sent += 1
        await self.transport.write(wire)

    async def handover(self, event: HdlcHandover) -> None:
        """Mode E: 8N1 at the new speed; serve HDLC (a later issue) or wait for quiet, then idle."""
        self.meter.stats.handovers += 1
        await self.transport.drain()
        await _wait_until(event.not_before)
        await self.set_line(event.baud_rate, event.frame_format)
        trailing = self.conn.take_trailing_data()
        if self.meter.binary_handler is not None:
            await self.meter.binary_handler(self.transport, event.baud_rate, trailing)
            await self.transport.drain()  # its last answer must leave before the speed changes
        else:
            while True:
                try:
                    await self.transport.read(timeout_s=self.meter.config.binary_idle_s)
                except TransportTimeout:
                    break
        await self.reset()


async def _wait_until(when: float) -> None:
    delay_s = when - asyncio.get_running_loop().time()
    if delay_s > 0:
        await asyncio.sleep(delay_s)


# -- serving -----------------------------------------------------------------------------------------


class Iec21MeterServer:
    """A simulated meter reachable at :attr:`url` (``tcp://127.0.0.1:PORT`` or a pty path).

    Every TCP connection talks to the same :attr:`meter` (as through a TCP modem in front of
    one meter), one conversation per connection. Close with :meth:`close` and
    :meth:`wait_closed`, or use ``async with``.
    """

    def __init__(
        self,
        url: str,
        meter: Iec21Meter,
        *,
        tcp: TransportServer | None = None,
        pty: PtyTransport | None = None,
        task: asyncio.Task[None] | None = None,
    ) -> None:
        self.url = url
        self.meter = meter
        self._tcp = tcp
        self._pty = pty
        self._task = task

    def __repr__(self) -> str:
        return f"<Iec21MeterServer {self.url} {self.meter!r}>"

    def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._tcp is not None:
            await self._tcp.wait_closed()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pty is not None:
            await self._pty.close()

    async def serve_forever(self) -> None:
        """Wait until the server is closed (or the calling task is cancelled)."""
        try:
            if self._task is not None:
                await asyncio.shield(self._task)
            else:
                await asyncio.Event().wait()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Iec21MeterServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


async def serve_iec21(
    target: str = "tcp://127.0.0.1:0",
    config: Iec21MeterConfig | None = None,
    *,
    meter: Iec21Meter | None = None,
    announce: Callable[[str], None] | None = None,
) -> Iec21MeterServer:
    """Serve a simulated meter on ``tcp://host:port`` (port 0: any) or ``pty`` (a new pty pair).

    Returns once it listens; :attr:`Iec21MeterServer.url` is the URL or the pty's slave path a
    reader opens, and ``announce`` (e.g. ``print``) is called with it.
    """
    meter = meter or Iec21Meter(config)
    if target.strip().lower() in ("pty", "pty:"):
        master, slave_path = await open_pty()
        task = asyncio.get_running_loop().create_task(meter.serve(master), name=f"iec21 meter {slave_path}")
        server = Iec21MeterServer(slave_path, meter, pty=master, task=task)
    else:
        tcp = await serve(target, meter.serve)
        server = Iec21MeterServer(tcp.url, meter, tcp=tcp)
    if announce is not None:
        announce(server.url)
    return server

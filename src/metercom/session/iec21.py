"""IEC 62056-21 reader session: a thin async shell over the sans-I/O :class:`Iec21Connection`.

Rule (DESIGN.md sections 1, 2 and 4): this module is the only loop that awaits for an
IEC 62056-21 conversation. The codec decides every byte and every state change; the session
moves bytes between the codec and a :class:`~metercom.transport.base.Transport`, carries out the
codec's instructions with the event loop's clock (virtual in tests, so a 70 s readout at 300 Bd
takes no real time), and translates outcomes into the error tree. It never reads
``time.time()`` and never sleeps except through asyncio.

Theory of operation (protocols.md 1.6, 1.7):

* Sending: wait until ``conn.send_not_before`` (the reaction time t_r after the last message
  received, or the wake-up pause), ``send()`` at the loop time, write, then drain
  ``next_event()`` at once: sending may queue a :class:`ChangeBaudRate` or :class:`HdlcHandover`.
* Receiving: on ``NEED_DATA`` read with the time-out ``conn.next_deadline()`` gives; when the
  read times out call ``handle_timeout``; the codec then queues a :class:`Timeout`, which becomes
  :class:`~metercom.errors.TransportTimeout` naming the phase, what was expected and the baud
  rate.
* Baud switches (:class:`ChangeBaudRate`): ``drain()`` the transport, wait until ``not_before``,
  then ``set_line()``. ``not_before`` is when the option select (ACK) has left the wire at the
  old speed, computed from its length, plus ``settle_s``.
* Corrupt blocks (:class:`FrameCorrupted`): answer NAK; the codec bounds the repeats
  (``max_repeats``) and raises :class:`~metercom.errors.FrameError` past them. Nothing half
  parsed is ever returned: a readout exists only once its BCC checked.
* After a readout at a higher speed the meter listens for a NAK at that speed for up to 1.5 s
  before it falls back to 300 Bd; the next sign-on of the same session waits that out
  (:data:`READOUT_IDLE_S`). Keep one session per line: a new session knows nothing of it.
* Retries (``retries``): like esphome-iec62056, a failed session (time-out or corrupt/illegal
  data) is run again from the sign-on, one baud-rate step lower each time (9600 -> 4800 ->
  2400 ...), after the line has been quiet for ``retry_delay_s``. Rejections by the meter
  (:class:`~metercom.errors.DeviceRejectedError`), wrong passwords
  (:class:`~metercom.errors.AuthenticationError`) and a lost link are never retried.

Physical caveats carried by the options:

* ``settle_s``: USB-serial adapters buffer output beyond what ``drain()`` sees, so switching
  the UART right after the ACK may cut its last bits. Field reports need 250-400 ms (esphome
  waits 250 ms, openHAB up to 250 ms, a vzlogger user 400 ms at 9600 Bd), but those are counted
  from the write. This session already waits until the ACK's computed end on the wire (200 ms
  at 300 Bd), so 0-100 ms extra is usually enough. Keep ``settle_s`` below the meter's reaction
  time (200 ms, 20 ms for a lower-case third FLAG letter): the meter starts answering at the new
  speed t_r after our ACK, and bytes that arrive before we switch are lost.
* ``wake_up``: battery meters need NUL characters for 2.1-2.3 s and a 1.5 s pause before the
  request (each wake-up costs the meter battery).
* ``software_parity``: the link is a transparent 8N1 modem or bridge carrying the 7E1 parity bit;
  the line is set to 8N1 and the codec adds/strips the parity bit itself.
* ``echo_cancel``: a half-duplex optical head that sees its own light; our own bytes are
  dropped when they come back (the codec drops an echo only once it has come back whole), so
  turning it on for a line that does not echo is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Final, NoReturn, TypeVar

from metercom.codec.base import NeedData, Role
from metercom.codec.iec62056_21 import (
    Ack,
    Acknowledged,
    AckOptionSelect,
    AnswerReceived,
    BreakReceived,
    ChangeBaudRate,
    CommandMessage,
    DataSet,
    DeviceError,
    Event,
    FrameCorrupted,
    HdlcHandover,
    IdentificationMessage,
    IdentificationReceived,
    Iec21Connection,
    Message,
    Nak,
    PartialAnswerReceived,
    PasswordRequested,
    ProtocolMode,
    ReadoutReceived,
    RepeatRequested,
    RequestMessage,
    State,
    Timeout,
    TimeoutKind,
    Value,
    WakeUp,
    parse_timestamp,
)
from metercom.codec.iec62056_21.constants import (
    BAUD_RATES_MODE_C,
    DEFAULT_INITIAL_BAUD_RATE,
    FRAME_FORMAT,
    MAX_REACTION_TIME_S,
    REACTION_TIME_S,
)
from metercom.errors import (
    AuthenticationError,
    DeviceRejectedError,
    InputError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
    TransportTimeout,
    hexdump,
)
from metercom.model.reading import Reading, ReadingValue
from metercom.transport.base import LineSettings, Transport

__all__ = [
    "BAUD_STEPS",
    "READOUT_IDLE_S",
    "Iec21Answer",
    "Iec21Programming",
    "Iec21Readout",
    "Iec21Session",
    "ProgressCallback",
    "readings_from_datasets",
    "step_down",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: ``on_progress(phase, bytes_received, baud_rate)``: called on every phase change and chunk.
ProgressCallback = Callable[[str, int, int], None]

#: Mode C baud rates, lowest first; retries step down this ladder.
BAUD_STEPS: Final = tuple(sorted(BAUD_RATES_MODE_C.values()))
_Z_OF: Final = {rate: char for char, rate in BAUD_RATES_MODE_C.items()}

#: Seconds of silence the line must show before a retry, by default (longer than t_r max and t_a).
DEFAULT_RETRY_DELAY_S: Final = 2.0
#: Longest wait for a babbling line to go quiet before a retry.
MAX_QUIET_WAIT_S: Final = 300.0
#: After a readout at a higher speed the meter listens for a NAK at that speed for up to t_r max
#: (1.5 s) before it falls back to 300 Bd; a new request must wait that out (plus one t_r).
READOUT_IDLE_S: Final = MAX_REACTION_TIME_S + REACTION_TIME_S

# OBIS value group C of abstract, identification, time and error codes: their values keep the
# meter's text (leading zeros of meter numbers, hhmmss times), never a Decimal.
_TEXT_GROUPS_C: Final = frozenset({0, 96, 97, 98, 99})

_EXPECTED: Final = {
    State.AWAIT_IDENTIFICATION: "identification message (/XXXZ...)",
    State.AWAIT_READOUT: "readout data message (STX ... ETX BCC)",
    State.AWAIT_OPERAND: "password request (SOH P0 ...)",
    State.AWAIT_REPLY: "answer (ACK, data or error message)",
}


def step_down(baud_rate: int) -> int:
    """The next lower mode C baud rate (300 stays 300)."""
    lower = [rate for rate in BAUD_STEPS if rate < baud_rate]
    return lower[-1] if lower else BAUD_STEPS[0]


# -- results ---------------------------------------------------------------------------------------


def _value_of(dataset: DataSet, value: Value) -> ReadingValue:
    if value.number is not None and (
        value.unit is not None or (dataset.obis is not None and dataset.obis.c not in _TEXT_GROUPS_C)
    ):
        return value.number
    return value.text


def readings_from_datasets(datasets: Iterable[DataSet], *, tz: tzinfo = UTC) -> list[Reading]:
    """Protocol-neutral readings from IEC 62056-21 data sets; nothing is dropped.

    * The first value is the reading: a ``Decimal`` when it is a number with a unit or the
      address is an OBIS quantity; text for identification, time and error codes (OBIS group C
      0, 96-99: ``0.0.0``, ``0.9.1``, ``C.1.0``, ``F.F``) and manufacturer codes without a unit,
      so leading zeros and ``hhmmss`` survive.
    * A further value that is a time stamp (``1.6.0(18014*kW)(10-02-01 00:15)``) becomes
      ``captured_at`` in ``tz`` (the meter's zone is not in the data); other further values go
      to ``extra``.
    * A line that does not fit the data-set syntax becomes ``Reading(obis=None, value=raw text)``.
    """
    readings: list[Reading] = []
    for dataset in datasets:
        if not dataset.parsed:
            readings.append(Reading(obis=None, value=dataset.raw, raw=dataset.raw))
            continue
        first, *more = dataset.values
        captured_at: datetime | None = None
        extra: list[ReadingValue] = []
        for value in more:
            stamp = parse_timestamp(value.text, tz) if captured_at is None else None
            if stamp is not None:
                captured_at = stamp
            else:
                extra.append(_value_of(dataset, value))
        readings.append(
            Reading(
                obis=dataset.obis,
                value=_value_of(dataset, first),
                unit=first.unit,
                captured_at=captured_at,
                address=dataset.address,
                extra=tuple(extra),
                raw=dataset.raw,
            )
        )
    return readings


@dataclass(frozen=True, slots=True)
class Iec21Readout:
    """One complete, BCC-checked readout and how it was obtained.

    ``raw`` is the data message as received (STX through BCC). ``baud_rate`` is the speed the
    data message came at; ``baud_rates`` every speed the line was set to, in order.
    ``wire_time_s`` adds up the bytes sent and received at their speeds (echoes excluded: they
    overlap our own transmission), so ``elapsed_s - wire_time_s`` is what reaction times, settle
    time and retries cost. Counters and ``elapsed_s`` cover every attempt of the operation.
    """

    identification: IdentificationMessage
    mode: ProtocolMode
    baud_rate: int
    datasets: tuple[DataSet, ...]
    readings: list[Reading]
    raw: bytes
    bytes_sent: int = 0
    bytes_received: int = 0
    elapsed_s: float = 0.0
    wire_time_s: float = 0.0
    baud_rates: tuple[int, ...] = ()
    attempts: int = 1

    @property
    def identification_text(self) -> str:
        """The identification line without CR LF: ``/LTT597705377``."""
        return self.identification.to_bytes().decode("ascii").rstrip("\r\n")

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (Decimals as strings)."""
        return {
            "identification": self.identification_text,
            "manufacturer": self.identification.manufacturer,
            "mode": self.mode.value,
            "baud_rate": self.baud_rate,
            "baud_rates": list(self.baud_rates),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "elapsed_s": round(self.elapsed_s, 6),
            "wire_time_s": round(self.wire_time_s, 6),
            "attempts": self.attempts,
            "readings": [reading.to_json() for reading in self.readings],
        }


@dataclass(frozen=True, slots=True)
class Iec21Answer:
    """The answer to a programming-mode read or execute command (all partial blocks joined)."""

    data: str
    datasets: tuple[DataSet, ...]
    readings: list[Reading] = field(default_factory=list)
    blocks: int = 1

    @property
    def reading(self) -> Reading:
        """The first reading; ``DeviceRejectedError`` when the meter answered without any data."""
        if not self.readings:
            raise DeviceRejectedError(f"the meter's answer carries no value: {self.data!r}", code="empty")
        return self.readings[0]

    @property
    def value(self) -> ReadingValue:
        """The first reading's value (``Decimal`` for quantities, text for codes and times)."""
        return self.reading.value


# -- the session ----------------------------------------------------------------------------------


class Iec21Session:
    """Reads one meter over one transport (optical head, serial port, TCP modem, simulated line).

    Options (see the module docstring for the physics):

    * ``address``: device address sent in the request ``/?address!`` (empty on most optical ports).
    * ``baud_max``: highest speed to ask for in mode C/E; ``None`` takes what the meter offers.
      Mode B meters switch on their own and mode A stays at 300 Bd, whatever this says.
    * ``password``: default for :meth:`programming` (P1, plain password); never logged.
    * ``settle_s``: extra wait after the ACK before switching speed (USB adapters).
    * ``retries``: whole-session retries, one baud step lower each; ``retry_delay_s`` of silence
      on the line is awaited before each.
    * ``wake_up``: send the battery-meter NUL preamble before the request.
    * ``software_parity``, ``echo_cancel``: link quirks (module docstring).
    * ``tz``: zone of the meter's own time stamps (``captured_at``).
    * ``on_progress(phase, bytes_received, baud_rate)``: progress reports, e.g. for a CLI line.
    * ``response_timeout_s``: wait for an answer to start (t_r max, 1.5 s; more for GSM modems).
    * ``max_repeats``: NAKs per message before a corrupt block becomes ``FrameError``.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        address: str = "",
        baud_max: int | None = 9600,
        password: str | None = None,
        settle_s: float = 0.0,
        retries: int = 2,
        retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
        wake_up: bool = False,
        software_parity: bool = False,
        echo_cancel: bool = False,
        tz: tzinfo = UTC,
        on_progress: ProgressCallback | None = None,
        response_timeout_s: float = MAX_REACTION_TIME_S,
        initial_baud_rate: int = DEFAULT_INITIAL_BAUD_RATE,
        max_repeats: int = 3,
    ) -> None:
        try:
            RequestMessage(address)
        except LocalProtocolError as exc:
            raise InputError(f"device address {address!r} cannot be sent: {exc}") from exc
        if baud_max is not None and baud_max < BAUD_STEPS[0]:
            raise InputError(f"baud_max must be at least {BAUD_STEPS[0]} Bd (or None), got {baud_max}")
        for name, number in (
            ("settle_s", settle_s),
            ("retries", retries),
            ("retry_delay_s", retry_delay_s),
            ("max_repeats", max_repeats),
        ):
            if number < 0:
                raise InputError(f"{name} must not be negative, got {number}")
        if response_timeout_s <= 0:
            raise InputError(f"response_timeout_s must be positive, got {response_timeout_s}")
        self.transport: Final = transport
        self.address: Final = address
        self.baud_max: Final = baud_max
        self.password = password
        self.settle_s: Final = settle_s
        self.retries: Final = retries
        self.retry_delay_s: Final = retry_delay_s
        self.wake_up: Final = wake_up
        self.software_parity: Final = software_parity
        self.echo_cancel: Final = echo_cancel
        self.tz: Final = tz
        self.on_progress = on_progress
        self.response_timeout_s: Final = response_timeout_s
        self.initial_baud_rate: Final = initial_baud_rate
        self._conn = Iec21Connection(
            Role.CLIENT,
            initial_baud_rate=initial_baud_rate,
            response_timeout_s=response_timeout_s,
            baud_change_delay_s=settle_s,
            max_repeats=max_repeats,
            software_parity=software_parity,
            echo_cancel=echo_cancel,
        )
        self._lock = asyncio.Lock()
        self._pending: deque[Event] = deque()
        self._line: LineSettings | None = None
        self._baud_rates: list[int] = []
        self._operation = _Operation(0.0)
        self._attempt_label = ""
        self._phase = "idle"
        self._last_sent: Message | None = None
        self._last_wire = b""
        self._timeout_state = State.IDLE
        self._timeout_baud = initial_baud_rate
        self._trailing = b""
        self._idle_at = -float("inf")  # when the meter is back at the start speed
        self._owner: asyncio.Task[object] | None = None  # the task inside programming mode

    def __repr__(self) -> str:
        return f"<Iec21Session {self.transport.url} address={self.address!r} baud_max={self.baud_max}>"

    # -- public API ------------------------------------------------------------------------------

    @property
    def identification(self) -> IdentificationMessage | None:
        """The identification of the last sign-on."""
        return self._conn.identification

    @property
    def trailing_data(self) -> bytes:
        """After :meth:`handover_to_hdlc`: bytes the meter sent beyond the IEC 62056-21 part."""
        return self._trailing

    async def readout(self) -> Iec21Readout:
        """Sign on, select the data readout and return the checked readout (protocols.md 1.7).

        Raises ``TransportTimeout`` (no or incomplete answer), ``FrameError`` (BCC still wrong
        after the NAK repeats), ``RemoteProtocolError`` (illegal data), ``ConnectionLost``; the
        first two after ``retries`` further attempts at lower speeds.
        """
        async with self._conversation():
            return await self._with_retries(self._readout_once)

    def programming(self, *, password: str | None = None) -> Iec21Programming:
        """Programming mode as an async context manager: sign-on, ``ACK 0 Z 1``, P0, P1, ..., B0.

        ``password`` (else the session's) is sent as P1 when the meter asks with P0; with no
        password none is sent and the meter decides what it allows. A refused password raises
        :class:`~metercom.errors.AuthenticationError` (after signing off). Leaving the block
        signs off with B0. Sign-on and password are retried like a readout; commands are not
        (a write must not happen twice).
        """
        return Iec21Programming(self, self.password if password is None else password)

    async def handover_to_hdlc(self) -> int:
        """Mode E: sign on, send ``ACK 2 Z 2`` and leave the line at 8N1 for HDLC; returns the baud rate.

        The meter must offer binary mode (``\\2`` in its identification), else
        :class:`~metercom.errors.DeviceRejectedError`. After the hand-over the transport belongs
        to the DLMS stack; bytes the meter sent early are in :attr:`trailing_data`. A later
        :meth:`readout` starts a new sign-on at the initial speed, which the meter hears only once
        it has left binary mode (after the DLMS release or its own inactivity time-out).
        """
        async with self._conversation():
            return await self._with_retries(self._handover_once)

    @contextlib.asynccontextmanager
    async def _conversation(self) -> AsyncIterator[None]:
        """One conversation at a time on the line; other tasks wait their turn."""
        if self._owner is not None and self._owner is asyncio.current_task():
            raise LocalProtocolError(
                "this task is inside 'async with session.programming()': leave it before a readout "
                "or hand-over (the meter is in programming mode)",
                layer="iec62056-21",
            )
        async with self._lock:
            yield

    # -- one attempt of each operation ---------------------------------------------------------

    async def _readout_once(self, cap: int | None) -> Iec21Readout:
        signed_on = await self._sign_on()
        ident = signed_on.message
        if signed_on.mode in (ProtocolMode.C, ProtocolMode.E):
            z_char, baud_rate = self._choose_baud(ident, cap)
            self._set_phase(f"option select {baud_rate} Bd")
            await self._send(AckOptionSelect.readout(z_char))
        self._set_phase("readout")
        while True:
            event = await self._next_event()
            if isinstance(event, ReadoutReceived):
                break
            if isinstance(event, FrameCorrupted):
                await self._send(Nak())
                continue
            self._unexpected(event)
        baud_rate = self._baud_now
        if baud_rate != self.initial_baud_rate:
            self._idle_at = asyncio.get_running_loop().time() + READOUT_IDLE_S
        await self._settle_instructions()  # the line goes back to the start speed
        operation = self._operation
        self._set_phase("done")
        return Iec21Readout(
            identification=ident,
            mode=signed_on.mode,
            baud_rate=baud_rate,
            datasets=event.datasets,
            readings=readings_from_datasets(event.datasets, tz=self.tz),
            raw=event.message.to_bytes(),
            bytes_sent=operation.bytes_sent,
            bytes_received=operation.bytes_received,
            elapsed_s=asyncio.get_running_loop().time() - operation.started_s,
            wire_time_s=operation.wire_time_s,
            baud_rates=tuple(self._baud_rates),
            attempts=operation.attempts,
        )

    async def _handover_once(self, cap: int | None) -> int:
        signed_on = await self._sign_on()
        ident = signed_on.message
        if not ident.binary_mode_available:
            raise DeviceRejectedError(
                f"the meter {_ident_text(ident)} does not offer binary mode (no \\2 in its identification), "
                "so it cannot hand over to HDLC (mode E); read it with readout() or programming()",
                code="no-binary-mode",
            )
        z_char, baud_rate = self._choose_baud(ident, cap)
        self._set_phase(f"hand-over to HDLC at {baud_rate} Bd")
        await self._send(AckOptionSelect.binary(z_char))
        handovers = [event for event in self._pending if isinstance(event, HdlcHandover)]
        self._pending.clear()
        if not handovers:  # pragma: no cover - the codec always answers ACK 2 Z 2 with HdlcHandover
            raise LocalProtocolError("the codec did not hand over after ACK 2 Z 2", layer="iec62056-21")
        self._trailing = self._conn.take_trailing_data()
        self._set_phase("handed over")
        return handovers[0].baud_rate

    async def _sign_on(self) -> IdentificationReceived:
        loop = asyncio.get_running_loop()
        if self._conn.state is not State.IDLE:
            self._conn.reset(now=loop.time())
        self._pending.clear()
        self._operation.chosen_baud = None
        self._baud_rates = []
        self._trailing = b""
        await self._set_line(self.initial_baud_rate, FRAME_FORMAT, force=True)
        await _wait_until(self._idle_at)  # a meter still at the last readout's speed would not hear us
        self.transport.discard_input()  # stale echoes and noise belong to no one now
        if self.wake_up:
            self._set_phase("wake-up")
            await self._send(WakeUp.for_baud_rate(self.initial_baud_rate))
        self._set_phase("sign-on")
        await self._send(RequestMessage(self.address))
        while True:
            event = await self._next_event()
            if isinstance(event, IdentificationReceived):
                self._set_phase(f"identified {_ident_text(event.message)}")
                return event
            self._unexpected(event)

    def _choose_baud(self, ident: IdentificationMessage, cap: int | None) -> tuple[str, int]:
        """Z and speed for the option select: the fastest mode C rate <= offer and cap."""
        offered = ident.max_baud_rate or BAUD_STEPS[0]  # a reserved Z: stay safe at 300 Bd
        limit = offered if cap is None else min(offered, cap)
        baud_rate = max((rate for rate in BAUD_STEPS if rate <= limit), default=BAUD_STEPS[0])
        self._operation.chosen_baud = baud_rate
        return _Z_OF[baud_rate], baud_rate

    # -- retries -------------------------------------------------------------------------------

    async def _with_retries(self, once: Callable[[int | None], Awaitable[_T]]) -> _T:
        loop = asyncio.get_running_loop()
        self._operation = _Operation(loop.time())
        cap = self.baud_max
        attempts = self.retries + 1
        for attempt in range(attempts):
            self._operation.attempts = attempt + 1
            self._attempt_label = f" (attempt {attempt + 1} of {attempts})" if attempts > 1 else ""
            try:
                return await once(cap)
            except (TransportTimeout, RemoteProtocolError) as exc:
                await self._recover()
                if attempt + 1 == attempts:
                    raise
                failed = self._operation.chosen_baud or cap
                cap = None if failed is None else step_down(failed)
                log.info("%s: %s; retrying at most at %s Bd", self.transport.url, exc, cap or "the offered")
                await self._wait_quiet()
            except BaseException:
                # Not retried (rejected, wrong password, link lost, cancelled): forget the
                # conversation without awaiting; the next sign-on resets the line.
                self._conn.reset(now=loop.time())
                self._pending.clear()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _recover(self) -> None:
        self._conn.reset(now=asyncio.get_running_loop().time())
        self._pending.clear()
        await self._set_line(self.initial_baud_rate, FRAME_FORMAT)

    async def _wait_quiet(self) -> None:
        """Before a retry: wait until nothing has arrived for ``retry_delay_s`` (bounded)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + MAX_QUIET_WAIT_S
        self._set_phase("waiting for a quiet line")
        while True:
            try:
                await self.transport.read(timeout_s=self.retry_delay_s)
            except TransportTimeout:
                return
            if loop.time() > give_up_at:
                raise TransportError(
                    f"{self.transport.url}: the line did not go quiet within {MAX_QUIET_WAIT_S:g} s "
                    "before a retry; something else is talking on it"
                )

    # -- driving the codec -----------------------------------------------------------------------

    def _poll(self) -> Event | None:
        try:
            event = self._conn.next_event()
        except RemoteProtocolError as exc:
            raise self._protocol_error(exc) from exc
        return None if isinstance(event, NeedData) else event

    async def _next_event(self) -> Event:
        """The next event that needs a decision; instructions are carried out on the way."""
        while True:
            if self._pending:
                return self._pending.popleft()
            event = self._poll()
            if event is None:
                await self._receive()
            elif isinstance(event, ChangeBaudRate):
                await self._change_line(event.baud_rate, event.frame_format, event.not_before)
            elif isinstance(event, Timeout):
                raise self._timeout_error(event)
            else:
                return event

    async def _settle_instructions(self) -> None:
        """Carry out instructions already queued (no waiting for data)."""
        while (event := self._poll()) is not None:
            if isinstance(event, ChangeBaudRate):
                await self._change_line(event.baud_rate, event.frame_format, event.not_before)
            elif isinstance(event, HdlcHandover):
                await self._change_line(event.baud_rate, event.frame_format, event.not_before)
                self._pending.append(event)
            else:
                self._pending.append(event)

    async def _receive(self) -> None:
        conn = self._conn
        loop = asyncio.get_running_loop()
        deadline = conn.next_deadline()
        if deadline is None:  # pragma: no cover - every waiting state has a deadline
            raise LocalProtocolError(
                f"{self._phase}: waiting in state {conn.state.value} without a deadline", layer="iec62056-21"
            )
        state = conn.state
        try:
            data = await self.transport.read(timeout_s=max(0.0, deadline - loop.time()))
        except TransportTimeout:
            self._timeout_state = state
            self._timeout_baud = self._baud_now
            # asyncio fires timers up to its clock resolution early; the read did wait for this deadline.
            conn.handle_timeout(max(loop.time(), deadline))
            return
        echoed = conn.echo_bytes_dropped
        conn.receive_data(data, now=loop.time())
        own = len(data) - (conn.echo_bytes_dropped - echoed)  # echoes share our own wire time
        self._operation.bytes_received += own
        if self._line is not None:
            self._operation.wire_time_s += self._line.wire_time_s(own)
        self._report()

    async def _send(self, message: Message) -> None:
        """Wait for the reaction time, send, and carry out the instructions the send queued."""
        loop = asyncio.get_running_loop()
        not_before = self._conn.send_not_before
        if not_before is not None:
            await _wait_until(not_before)
        now = loop.time() if not_before is None else max(loop.time(), not_before)
        wire = self._conn.send(message, now=now)
        await self.transport.write(wire)
        self._last_sent = message
        self._last_wire = wire
        self._operation.bytes_sent += len(wire)
        if self._line is not None:
            self._operation.wire_time_s += self._line.wire_time_s(len(wire))
        await self._settle_instructions()

    async def _change_line(self, baud_rate: int, frame_format: str, not_before: float) -> None:
        """Drain, wait until ``not_before``, then set the line (ChangeBaudRate, HdlcHandover)."""
        await self.transport.drain()
        await _wait_until(not_before)
        await self._set_line(baud_rate, frame_format)

    async def _set_line(self, baud_rate: int, frame_format: str, *, force: bool = False) -> None:
        if self.software_parity and frame_format == FRAME_FORMAT:
            frame_format = "8N1"  # the modem's UART is 8N1; the codec carries the parity bit
        settings = LineSettings.parse(frame_format, baud_rate)
        if force or settings != self._line:
            await self.transport.set_line(settings)
            self._line = settings
        if not self._baud_rates or self._baud_rates[-1] != baud_rate:
            self._baud_rates.append(baud_rate)
        self._report()

    # -- progress and errors ---------------------------------------------------------------------

    @property
    def _baud_now(self) -> int:
        return self._line.baud_rate if self._line is not None else self.initial_baud_rate

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._phase, self._operation.bytes_received, self._baud_now)

    def _timeout_error(self, event: Timeout) -> TransportTimeout:
        state, baud_rate = self._timeout_state, self._timeout_baud
        expected = _EXPECTED.get(state, "answer")
        if event.kind is TimeoutKind.INTER_CHARACTER:
            what = f"the {expected} stopped mid-way (no byte for {self._conn.inter_character_timeout_s:g} s)"
            hint = "; a weak optical link, or a meter that pauses inside a message"
        else:
            what = f"no {expected} within {self.response_timeout_s:g} s"
            hint = ""
            if state is State.AWAIT_IDENTIFICATION:
                hint = (
                    "; check that the head sits on the meter's optical port and the port is right; "
                    "some meters answer only to their device address or after a wake-up preamble"
                )
            elif baud_rate > self.initial_baud_rate:
                hint = (
                    f"; the meter may not have switched to {baud_rate} Bd: try a lower maximum baud "
                    "rate, or a settle time for USB adapters"
                )
        return TransportTimeout(
            f"{self._phase}: {what} at {baud_rate} Bd on {self.transport.url}{self._attempt_label}{hint}"
        )

    def _protocol_error(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        message = str(exc)
        if exc.layer:
            message = message.removeprefix(f"{exc.layer}: ")
        if exc.data is not None:
            message = message.removesuffix(f" [{hexdump(exc.data)}]")
        hint = ""
        echo = self._last_wire
        if exc.data and len(echo) >= 2 and exc.data[: len(echo)] == echo[: len(exc.data)]:
            hint = "; these are our own bytes coming back: the head echoes, turn on echo cancellation"
        return type(exc)(
            f"{self._phase} at {self._baud_now} Bd: {message}{hint}{self._attempt_label}",
            layer=exc.layer,
            data=exc.data,
        )

    def _device_error(self, event: DeviceError) -> DeviceRejectedError:
        return DeviceRejectedError(
            f"{self._phase}: the meter answered with the error message ({event.text})", code=event.text
        )

    def _unexpected(self, event: Event) -> NoReturn:
        if isinstance(event, DeviceError):
            raise self._device_error(event)
        if isinstance(event, BreakReceived):
            raise DeviceRejectedError(f"{self._phase}: the meter signed off (B0)", code="B0")
        raise RemoteProtocolError(
            f"{self._phase}: unexpected {type(event).__name__} from the meter", layer="iec62056-21"
        )


class _Operation:
    """Counters of one public operation (all its attempts)."""

    def __init__(self, started_s: float) -> None:
        self.started_s = started_s
        self.attempts = 1
        self.bytes_sent = 0
        self.bytes_received = 0
        self.wire_time_s = 0.0
        self.chosen_baud: int | None = None


async def _wait_until(when: float) -> None:
    delay_s = when - asyncio.get_running_loop().time()
    if delay_s > 0:
        await asyncio.sleep(delay_s)


def _ident_text(ident: IdentificationMessage) -> str:
    return ident.to_bytes().decode("ascii").rstrip("\r\n")


# -- programming mode -------------------------------------------------------------------------------


class Iec21Programming:
    """Programming mode of one session; made by :meth:`Iec21Session.programming`.

    ``async with session.programming(password="00000000") as prog:`` signs on with ``ACK 0 Z 1``,
    answers the meter's P0 with P1 and on exit signs off with B0. Inside: :meth:`read`,
    :meth:`write`, :meth:`execute`. The meter's P0 operand is in :attr:`operand` (for P2
    schemes, which are vendor specific and not built in).
    """

    def __init__(self, session: Iec21Session, password: str | None) -> None:
        self._session = session
        self._password = password
        self._active = False
        self.identification: IdentificationMessage | None = None
        self.baud_rate = 0
        self.operand = ""

    def __repr__(self) -> str:
        return f"<Iec21Programming {self._session.transport.url} active={self._active}>"

    @property
    def active(self) -> bool:
        return self._active

    async def __aenter__(self) -> Iec21Programming:
        session = self._session
        if session._owner is not None and session._owner is asyncio.current_task():
            raise LocalProtocolError("programming mode is already active in this task", layer="iec62056-21")
        await session._lock.acquire()
        try:
            await session._with_retries(self._enter_once)
        except BaseException:
            session._lock.release()
            raise
        self._active = True
        session._owner = asyncio.current_task()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session = self._session
        try:
            if self._active and not isinstance(exc, asyncio.CancelledError):
                try:
                    await self.sign_off()
                except (TransportError, RemoteProtocolError) as sign_off_error:
                    if exc is None:
                        raise
                    log.debug("%s: sign-off after an error failed: %s", session.transport.url, sign_off_error)
        finally:
            self._active = False
            if session._conn.state is not State.IDLE:
                session._conn.reset(now=asyncio.get_running_loop().time())
            session._pending.clear()
            session._owner = None
            session._lock.release()

    async def _enter_once(self, cap: int | None) -> None:
        session = self._session
        signed_on = await session._sign_on()
        ident = signed_on.message
        if signed_on.mode not in (ProtocolMode.C, ProtocolMode.E):
            raise DeviceRejectedError(
                f"the meter {_ident_text(ident)} works in protocol mode {signed_on.mode.value}; "
                "programming mode needs the option select of mode C or E",
                code=f"mode {signed_on.mode.value}",
            )
        z_char, baud_rate = session._choose_baud(ident, cap)
        session._set_phase(f"option select {baud_rate} Bd (programming)")
        await session._send(AckOptionSelect.programming(z_char))
        session._set_phase("programming: password request")
        while True:
            event = await session._next_event()
            if isinstance(event, PasswordRequested):
                self.operand = event.operand
                break
            if isinstance(event, FrameCorrupted):
                await session._send(Nak())
                continue
            session._unexpected(event)
        self.identification = ident
        self.baud_rate = baud_rate
        if self._password is None:
            return
        session._set_phase("programming: password")
        self._active = True  # so that sign_off() works if the password is refused
        try:
            await self._exchange(CommandMessage.password(self._password))
        except DeviceRejectedError as exc:
            refusal = "signed off" if exc.code == "B0" else f"answered ({exc.code})"
            try:
                await self.sign_off()
            except (TransportError, RemoteProtocolError) as sign_off_error:
                log.debug(
                    "%s: sign-off after a refused password failed: %s", session.transport.url, sign_off_error
                )
            raise AuthenticationError(
                f"the meter {_ident_text(ident)} refused the password: it {refusal}. Check the password "
                "(sent plain with P1) and whether the meter locked programming mode after wrong attempts"
            ) from exc
        finally:
            self._active = False

    def _check_active(self) -> None:
        if not self._active:
            raise LocalProtocolError(
                "programming mode is not active: use 'async with session.programming(...) as prog'",
                layer="iec62056-21",
            )

    async def _exchange(self, command: CommandMessage) -> Iec21Answer | None:
        """Send a command; return the answer (read, execute) or ``None`` for an ACK."""
        session = self._session
        await session._send(command)
        while True:
            event = await session._next_event()
            if isinstance(event, Acknowledged):
                return None
            if isinstance(event, AnswerReceived):
                readings = readings_from_datasets(event.datasets, tz=session.tz)
                return Iec21Answer(event.data, event.datasets, readings, event.blocks)
            if isinstance(event, PartialAnswerReceived):
                await session._send(Ack())
            elif isinstance(event, RepeatRequested) and session._last_sent is not None:
                await session._send(session._last_sent)
            elif isinstance(event, FrameCorrupted):
                await session._send(Nak())
            elif isinstance(event, BreakReceived):
                raise DeviceRejectedError(
                    f"{session._phase}: the meter ended programming mode (B0)", code="B0"
                )
            else:
                session._unexpected(event)

    async def read(self, address: str, argument: str = "", *, command_type: str = "1") -> Iec21Answer:
        """``R1 address(argument)``: the meter's answer (``command_type="3"``: partial blocks).

        Raises :class:`~metercom.errors.DeviceRejectedError` when the meter answers with an
        error message (unknown address, no access).
        """
        self._check_active()
        command = _command(lambda: CommandMessage.read(address, argument, command_type=command_type))
        self._session._set_phase(f"read {address}")
        answer = await self._exchange(command)
        if answer is None:  # pragma: no cover - the codec rejects an ACK to a read
            raise RemoteProtocolError(f"read {address}: acknowledged without data", layer="iec62056-21")
        return answer

    async def write(self, address: str, value: str, *, command_type: str = "1") -> None:
        """``W1 address(value)``; returns once the meter acknowledged (else DeviceRejectedError)."""
        self._check_active()
        command = _command(lambda: CommandMessage.write(address, value, command_type=command_type))
        self._session._set_phase(f"write {address}")
        await self._exchange(command)

    async def execute(self, data: str) -> Iec21Answer | None:
        """``E2 data``: ``None`` when the meter acknowledged, else its answer."""
        self._check_active()
        command = _command(lambda: CommandMessage.execute(data))
        self._session._set_phase("execute")
        return await self._exchange(command)

    async def sign_off(self) -> None:
        """Send B0 and return the line to the start speed (idempotent; done on exit)."""
        session = self._session
        if not self._active:
            return
        self._active = False
        if session._conn.state in (State.PROGRAMMING, State.SEND_BLOCK_ACK):
            session._set_phase("sign-off")
            await session._send(CommandMessage.sign_off())
            await session.transport.drain()


def _command(build: Callable[[], CommandMessage]) -> CommandMessage:
    try:
        return build()
    except LocalProtocolError as exc:
        raise InputError(f"cannot send this command: {exc}") from exc

"""Shared helpers of the IEC 62056-21 codec tests (imported as ``iec21_kit``; see conftest.py).

* :class:`Line` joins a reader and a meter connection in memory on one virtual clock.
* :class:`Meter` is a small scripted meter application (a tiny simulator).
* :func:`connection_in` drives a fresh connection into any state by a realistic sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    Ack,
    Acknowledged,
    AnswerMessage,
    ChangeBaudRate,
    CommandMessage,
    CommandReceived,
    DataMessage,
    Event,
    HdlcHandover,
    IdentificationMessage,
    Iec21Connection,
    Message,
    Nak,
    RepeatRequested,
    State,
)
from metercom.codec.iec62056_21.constants import wire_time_s
from metercom.codec.iec62056_21.messages import AckOptionSelect, RequestMessage
from metercom.errors import RemoteProtocolError


def drain(conn: Iec21Connection) -> list[Event]:
    """Every event the connection has now (raises what next_event raises)."""
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
    return events


@dataclass
class Meter:
    """A scripted meter application on top of a server connection (a tiny simulator)."""

    ident: IdentificationMessage = SAMPLE_IDENTIFICATION
    readout: DataMessage = SAMPLE_READOUT
    password: str = "00000000"
    registers: dict[str, str] = field(default_factory=lambda: {"1.8.0": "343642.9*kWh", "0.9.1": "172751"})
    # address -> the data of each block, for R3 (partial block) reads
    archives: dict[str, list[str]] = field(default_factory=dict)
    written_blocks: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    pending: Message | None = None
    last_reply: Message | None = None
    queue: list[AnswerMessage] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, CommandReceived):
            self.pending = self.answer(event.message)
        elif isinstance(event, Acknowledged):
            self.pending = self.queue.pop(0)
        elif isinstance(event, RepeatRequested):
            self.pending = self.last_reply

    def answer(self, command: CommandMessage) -> Message:
        data = command.data or ""
        address, _, rest = data.partition("(")
        argument = rest.removesuffix(")")
        if command.command == "P":
            return Ack() if command.operand == self.password else AnswerMessage("(ERROR)")
        if command.command == "R" and command.command_type in ("3", "4") and address in self.archives:
            blocks = self.archives[address]
            self.queue = [AnswerMessage(b, partial=i < len(blocks) - 1) for i, b in enumerate(blocks)]
            return self.queue.pop(0)
        if command.command == "R" and address in self.registers:
            return AnswerMessage(f"{address}({self.registers[address]})")
        if command.command == "W" and command.partial:
            self.written_blocks.append(data)
            return Ack()
        if command.command == "W" and command.command_type in ("1", "3"):
            if command.command_type == "3":
                self.written_blocks.append(data)
            self.registers[address] = argument
            return Ack()
        if command.command == "E":
            return Ack()
        return AnswerMessage("(ERROR)")

    def next_message(self, conn: Iec21Connection) -> Message | None:
        """What the meter sends now, decided by the connection state."""
        state = conn.state
        message: Message | None = None
        if state is State.REQUESTED:
            message = self.ident
        elif state in (State.SEND_READOUT, State.PUSH_READOUT):
            message = self.readout
        elif state is State.SEND_OPERAND:
            message = CommandMessage.password_request("1234567")
        elif state is State.SEND_NAK:
            message = Nak()
        elif state is State.REPLY and self.pending is not None:
            message, self.pending = self.pending, None
            self.last_reply = message
        return message


Mangler = Callable[[bytes], bytes]


@dataclass
class Line:
    """Joins a reader and a meter connection in memory, on one virtual clock.

    Each transmission is delivered ``wire_time`` after it was sent, in chunks made by
    ``chunker``; ``to_client``/``to_server`` hold manglers applied to the next transmissions
    (one per transmission, for corruption tests). Every delivery checks that both ends had the
    line at the same speed, so baud-rate instructions are verified on the way.
    """

    client: Iec21Connection
    server: Iec21Connection
    meter: Meter = field(default_factory=Meter)
    now: float = 0.0
    chunker: Callable[[bytes], Iterable[bytes]] = lambda data: (data,)
    to_client: list[Mangler] = field(default_factory=list)
    to_server: list[Mangler] = field(default_factory=list)
    client_events: list[Event] = field(default_factory=list)
    client_baud: int = 0
    server_baud: int = 0
    sent_by_client: list[bytes] = field(default_factory=list)
    sent_by_server: list[bytes] = field(default_factory=list)
    check_baud: bool = True

    def __post_init__(self) -> None:
        self.client_baud = self.client.baud_rate
        self.server_baud = self.server.baud_rate

    def _deliver(self, receiver: Iec21Connection, data: bytes, baud: int, at: float) -> None:
        receiver_baud = self.client_baud if receiver is self.client else self.server_baud
        if self.check_baud:
            assert receiver_baud == baud, f"sent at {baud} Bd, received at {receiver_baud} Bd"
        for chunk in self.chunker(data):
            if chunk:
                receiver.receive_data(chunk, now=at)

    def client_send(self, message: Message) -> bytes:
        if (not_before := self.client.send_not_before) is not None:
            self.now = max(self.now, not_before)
        baud = self.client_baud
        wire = self.client.send(message, now=self.now)
        self.sent_by_client.append(wire)
        self.now += wire_time_s(len(wire), baud)
        if self.to_server:
            wire = self.to_server.pop(0)(wire)
        self._deliver(self.server, wire, baud, self.now)
        return wire

    def server_send(self, message: Message) -> bytes:
        if (not_before := self.server.send_not_before) is not None:
            self.now = max(self.now, not_before)
        baud = self.server_baud
        wire = self.server.send(message, now=self.now)
        self.sent_by_server.append(wire)
        self.now += wire_time_s(len(wire), baud)
        if self.to_client:
            wire = self.to_client.pop(0)(wire)
        self._deliver(self.client, wire, baud, self.now)
        return wire

    def _apply(self, event: Event, server: bool) -> None:
        if isinstance(event, ChangeBaudRate | HdlcHandover):
            if server:
                self.server_baud = event.baud_rate
            else:
                self.client_baud = event.baud_rate

    def run(self, rounds: int = 200) -> list[Event]:
        """Let the meter act until both sides wait; return the reader's new events."""
        new: list[Event] = []
        for _ in range(rounds):
            progressed = False
            for event in drain(self.server):
                progressed = True
                self._apply(event, server=True)
                self.meter.on_event(event)
            if self.server.state is not State.BINARY and (message := self.meter.next_message(self.server)):
                self.server_send(message)
                progressed = True
            for event in drain(self.client):
                progressed = True
                self._apply(event, server=False)
                new.append(event)
            if not progressed:
                break
        self.client_events.extend(new)
        return new

    def expire(self, conn: Iec21Connection) -> list[Event]:
        """Jump to ``conn``'s deadline, run its timers; return (and apply) its events."""
        deadline = conn.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        conn.handle_timeout(self.now)
        events = drain(conn)
        for event in events:
            self._apply(event, server=conn is self.server)
        return events

    def exchange(self, message: Message) -> list[Event]:
        """Reader sends ``message`` (after draining its own instructions), then run()."""
        for event in drain(self.client):
            self._apply(event, server=False)
        self.client_send(message)
        own = drain(self.client)  # instructions caused by the send itself
        for event in own:
            self._apply(event, server=False)
        return own + self.run()


def flip(index: int) -> Mangler:
    """Flip the low bit of byte ``index`` (negative counts from the end)."""

    def mangle(data: bytes) -> bytes:
        buf = bytearray(data)
        buf[index] ^= 0x01
        return bytes(buf)

    return mangle


# -- recipes: connections in each state ----------------------------------------------------------

IDENT_E = IdentificationMessage("APA", "5", "NORAX30", "2")  # Apator Norax, offers \2 (mode E)


def _client_in(state: State) -> Iec21Connection:
    conn = Iec21Connection(Role.CLIENT)
    if state is State.IDLE:
        return conn
    now = 0.0
    conn.send(RequestMessage(), now=now)
    if state is State.AWAIT_IDENTIFICATION:
        return conn
    if state is State.ERROR:
        conn.receive_data(b"\xff", now=0.1)
        with pytest.raises(RemoteProtocolError):
            drain(conn)
        return conn
    conn.receive_data(IDENT_E.to_bytes(), now=0.5)
    drain(conn)
    if state is State.IDENTIFIED:
        return conn
    if state is State.BINARY:
        conn.send(AckOptionSelect.binary("5"), now=1.0)
        drain(conn)
        return conn
    if state in (State.AWAIT_READOUT, State.SEND_NAK):
        conn.send(AckOptionSelect.readout("5"), now=1.0)
        drain(conn)
        if state is State.SEND_NAK:
            bad = bytearray(SAMPLE_READOUT.to_bytes())
            bad[5] ^= 1
            conn.receive_data(bytes(bad), now=1.5)
            drain(conn)
        return conn
    conn.send(AckOptionSelect.programming("5"), now=1.0)
    drain(conn)
    if state is State.AWAIT_OPERAND:
        return conn
    conn.receive_data(CommandMessage.password_request("1234567").to_bytes(), now=1.5)
    drain(conn)
    if state is State.PROGRAMMING:
        return conn
    conn.send(CommandMessage.read("1.8.0", command_type="3"), now=2.0)
    if state is State.AWAIT_REPLY:
        return conn
    conn.receive_data(AnswerMessage("1.8.0(1)", partial=True).to_bytes(), now=2.5)
    drain(conn)
    assert state is State.SEND_BLOCK_ACK
    return conn


def _server_in(state: State) -> Iec21Connection:
    conn = Iec21Connection(Role.SERVER)
    if state is State.IDLE:
        return conn
    if state is State.PUSH_READOUT:
        conn.send(IdentificationMessage("EHZ", "3", "361"), now=0.0)
        return conn
    conn.receive_data(RequestMessage().to_bytes(), now=0.0)
    drain(conn)
    if state is State.REQUESTED:
        return conn
    conn.send(IDENT_E, now=0.5)
    if state is State.AWAIT_OPTION:
        return conn
    if state is State.ERROR:
        conn.receive_data(b"\xff", now=1.0)
        with pytest.raises(RemoteProtocolError):
            drain(conn)
        return conn
    if state is State.BINARY:
        conn.receive_data(AckOptionSelect.binary("5").to_bytes(), now=1.0)
        drain(conn)
        return conn
    if state in (State.SEND_READOUT, State.AFTER_READOUT):
        conn.receive_data(AckOptionSelect.readout("5").to_bytes(), now=1.0)
        drain(conn)
        if state is State.AFTER_READOUT:
            conn.send(SAMPLE_READOUT, now=1.5)
        return conn
    conn.receive_data(AckOptionSelect.programming("5").to_bytes(), now=1.0)
    drain(conn)
    if state is State.SEND_OPERAND:
        return conn
    conn.send(CommandMessage.password_request("1234567"), now=1.5)
    if state is State.AWAIT_COMMAND:
        return conn
    if state is State.SEND_NAK:
        bad = bytearray(CommandMessage.read("1.8.0").to_bytes())
        bad[4] ^= 1
        conn.receive_data(bytes(bad), now=2.0)
        drain(conn)
        return conn
    conn.receive_data(CommandMessage.read("1.8.0", command_type="3").to_bytes(), now=2.0)
    drain(conn)
    if state is State.REPLY:
        return conn
    conn.send(AnswerMessage("1.8.0(1)", partial=True), now=2.5)
    assert state is State.AWAIT_BLOCK_ACK
    return conn


def connection_in(role: Role, state: State) -> Iec21Connection:
    """A fresh connection of ``role`` driven into ``state`` by a realistic sequence."""
    conn = _client_in(state) if role is Role.CLIENT else _server_in(state)
    assert conn.state is state, f"recipe for {role.value} {state.value} ended in {conn.state.value}"
    return conn

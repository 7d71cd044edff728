"""Chunking invariance (DESIGN.md section 2): whole, byte by byte or split anywhere, a received
stream gives identical events and states. Transcripts replay one side of real conversations."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from iec21_kit import IDENT_E

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    SAMPLE_READOUT_FULL_BYTES,
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    Event,
    Iec21Connection,
    Message,
    Nak,
    RequestMessage,
    State,
)
from metercom.errors import RemoteProtocolError


@dataclass(frozen=True)
class Send:
    message: Message


@dataclass(frozen=True)
class Receive:
    data: bytes


Step = Send | Receive


def _corrupt(wire: bytes) -> bytes:
    return wire[:-1] + bytes(((wire[-1] ^ 0x01),))


CLIENT_READOUT: list[Step] = [
    Send(RequestMessage()),
    Receive(b"\x00\x00/?!\r\n" + SAMPLE_IDENTIFICATION.to_bytes()),  # NULs and our echoed request
    Send(AckOptionSelect.readout("5")),
    Receive(b"?" + SAMPLE_READOUT_FULL_BYTES),  # Elster AS1440: '?' before STX
]

CLIENT_PROGRAMMING: list[Step] = [
    Send(RequestMessage("12345678")),
    Receive(b"/ISk5MT174-0001\r\n"),
    Send(AckOptionSelect.programming("5")),
    Receive(CommandMessage.password_request("1234567").to_bytes()),
    Send(CommandMessage.password("00000000")),
    Receive(b"\x06"),
    Send(CommandMessage.read("P.01", "1", command_type="3")),
    Receive(AnswerMessage("P.01(1)(2)\r\n", partial=True).to_bytes()),
    Send(Ack()),
    Receive(_corrupt(AnswerMessage("P.01(3)(4)\r\n", partial=True).to_bytes())),
    Send(Nak()),
    Receive(AnswerMessage("P.01(3)(4)\r\n", partial=True).to_bytes()),
    Send(Ack()),
    Receive(AnswerMessage("P.01(5)\r\n").to_bytes()),
    Send(CommandMessage.read("9.9.9")),
    Receive(AnswerMessage("(ERROR)").to_bytes()),
    Send(CommandMessage.write("0.9.1", "120000")),
    Receive(b"\x15"),
    Send(CommandMessage.write("0.9.1", "120000")),
    Receive(b"\x06"),
    Send(CommandMessage.sign_off()),
]

CLIENT_PUSH: list[Step] = [
    Receive(
        b"kWh)\r\n!\r\n\x03x\x00"
        b"/EHZ3361\r\n" + SAMPLE_READOUT.to_bytes() + b"/EHZ3361\r\n" + SAMPLE_READOUT.to_bytes()
    ),
]

SERVER_SESSIONS: list[Step] = [
    Receive(bytes(30) + b"/?!\r\n"),
    Send(IDENT_E),
    Receive(AckOptionSelect.readout("5").to_bytes()),
    Send(SAMPLE_READOUT),
    Receive(b"\x15"),
    Send(SAMPLE_READOUT),
    Receive(b"\x00/?!\r\n"),  # the next reader: ends the readout session, a new request
    Send(IDENT_E),
    Receive(AckOptionSelect.programming("5").to_bytes()),
    Send(CommandMessage.password_request("1")),
    Receive(CommandMessage.password("00000000").to_bytes() + b"\x00"),
    Send(Ack()),
    Receive(_corrupt(CommandMessage.read("1.8.0").to_bytes())),
    Send(Nak()),
    Receive(CommandMessage.read("1.8.0", command_type="3").to_bytes()),
    Send(AnswerMessage("1.8.0(1)", partial=True)),
    Receive(b"\x06"),
    Send(AnswerMessage("1.8.0(2)")),
    Receive(CommandMessage.sign_off().to_bytes()),
]

SERVER_HANDOVER: list[Step] = [
    Receive(b"/?!\r\n"),
    Send(IDENT_E),
    Receive(AckOptionSelect.binary("5").to_bytes() + b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"),
]

TRANSCRIPTS = {
    "client_readout": (Role.CLIENT, CLIENT_READOUT),
    "client_programming": (Role.CLIENT, CLIENT_PROGRAMMING),
    "client_push": (Role.CLIENT, CLIENT_PUSH),
    "server_sessions": (Role.SERVER, SERVER_SESSIONS),
    "server_handover": (Role.SERVER, SERVER_HANDOVER),
}


def replay(role: Role, steps: list[Step], cuts: list[list[int]] | None) -> tuple[list[Event], State, bytes]:
    """Replay ``steps``; receive ``i`` is split at ``cuts[i]`` (None: byte by byte)."""
    conn = Iec21Connection(role)
    events: list[Event] = []
    receive_index = 0
    for index, step in enumerate(steps):
        now = float(index)
        if isinstance(step, Send):
            conn.send(step.message, now=now)
        else:
            data = step.data
            if cuts is None:
                points = list(range(1, len(data)))
            else:
                points = sorted({c % len(data) for c in cuts[receive_index] if c % len(data)})
            receive_index += 1
            for start, end in zip([0, *points], [*points, len(data)], strict=True):
                conn.receive_data(data[start:end], now=now)
                while (event := conn.next_event()) is not NEED_DATA:
                    events.append(event)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    return events, conn.state, conn.take_trailing_data()


def test_transcripts_replay_whole_and_byte_by_byte() -> None:
    for name, (role, steps) in TRANSCRIPTS.items():
        receives = sum(isinstance(s, Receive) for s in steps)
        whole = replay(role, steps, [[] for _ in range(receives)])
        assert whole[0], name
        assert replay(role, steps, None) == whole, name
    # the transcripts reach their intended ends
    assert replay(Role.CLIENT, CLIENT_PROGRAMMING, None)[1] is State.IDLE
    assert replay(Role.SERVER, SERVER_HANDOVER, None)[1:] == (
        State.BINARY,
        b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e",
    )


@given(
    name=st.sampled_from(sorted(TRANSCRIPTS)),
    cuts=st.lists(st.lists(st.integers(min_value=0, max_value=500), max_size=12), min_size=25, max_size=25),
)
def test_random_splits_give_identical_events(name: str, cuts: list[list[int]]) -> None:
    role, steps = TRANSCRIPTS[name]
    receives = sum(isinstance(s, Receive) for s in steps)
    whole = replay(role, steps, [[] for _ in range(receives)])
    assert replay(role, steps, cuts) == whole


@given(
    data=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20),
)
def test_random_bytes_split_anywhere_fail_the_same_way(data: bytes, cuts: list[int]) -> None:
    """Even for garbage, split feeding gives the same events and the same failure (or none)."""

    def run(points: list[int]) -> tuple[list[object], str]:
        conn = Iec21Connection(Role.CLIENT)
        conn.send(RequestMessage(), now=0.0)
        seen: list[object] = []
        try:
            for start, end in zip([0, *points], [*points, len(data)], strict=True):
                conn.receive_data(data[start:end], now=1.0)
                while (event := conn.next_event()) is not NEED_DATA:
                    seen.append(event)
                    if conn.state is State.IDENTIFIED:
                        conn.send(AckOptionSelect.readout("0"), now=1.0)
        except RemoteProtocolError as exc:  # the hex dump shows what was buffered; the rest must agree
            return seen, str(exc).rsplit(" [", 1)[0]
        return seen, conn.state.value

    points = sorted({c for c in cuts if 0 < c < len(data)})
    assert run(points) == run([])

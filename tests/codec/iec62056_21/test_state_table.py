"""Every (state, input) pair of both roles, table-driven (DESIGN.md section 7 item 3).

For each state a connection is driven there by a realistic sequence (``iec21_kit``), then one
input is applied. Received bytes must move the machine to the state in the table or raise
RemoteProtocolError (``ERR``), identically whether fed whole or byte by byte; a send must move it
to the state in the table or raise LocalProtocolError (``LOCAL``) and change nothing; a timer
expiry must return waiting states to IDLE and leave all others alone.
"""

from __future__ import annotations

from typing import Final

import pytest
from iec21_kit import IDENT_E, connection_in, drain

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.iec62056_21 import (
    CLIENT_STATES,
    SAMPLE_READOUT,
    SAMPLE_READOUT_BYTES,
    SERVER_STATES,
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    Event,
    Message,
    Nak,
    RequestMessage,
    State,
    Timeout,
    WakeUp,
)
from metercom.errors import LocalProtocolError, RemoteProtocolError

ERR: Final = "ERR"
LOCAL: Final = "LOCAL"
S = State

INPUTS: Final[dict[str, bytes]] = {
    "nul": b"\x00",
    "junk": b"?",
    "high": b"\xff",
    "etx": b"\x03",
    "request": b"/?!\r\n",
    "ident": b"/LTT597705377\r\n",
    "option_readout": bytes.fromhex("06 30 35 30 0D 0A"),
    "option_programming": bytes.fromhex("06 30 35 31 0D 0A"),
    "option_binary": bytes.fromhex("06 32 35 32 0D 0A"),
    "ack": b"\x06",
    "nak": b"\x15",
    "readout": SAMPLE_READOUT_BYTES,
    "block_bad_bcc": SAMPLE_READOUT_BYTES[:-1] + b"u",
    "answer": AnswerMessage("1.8.0(1*kWh)").to_bytes(),
    "answer_partial": AnswerMessage("1.8.0(1*kWh)", partial=True).to_bytes(),
    "error": AnswerMessage("(ERROR)").to_bytes(),
    "p0": CommandMessage.password_request("1").to_bytes(),
    "p1": CommandMessage.password("00000000").to_bytes(),
    "r1": CommandMessage.read("1.8.0").to_bytes(),
    "b0": CommandMessage.sign_off().to_bytes(),
    "command_bad_bcc": b"\x01B0\x03r",
}

# state -> (outcome for inputs not listed, {input: outcome}); NUL and one junk byte never change
# a receiving or "our turn" state (see the connection's module docstring).
_QUIET = {"nul": None, "junk": None}  # None: stays in the same state

RECEIVE: Final[dict[Role, dict[State, tuple[str | State, dict[str, str | State | None]]]]] = {
    Role.CLIENT: {
        S.IDLE: (S.IDLE, {"ident": S.AWAIT_READOUT}),  # a pushed identification: mode D
        S.AWAIT_IDENTIFICATION: (ERR, {**_QUIET, "ident": S.IDENTIFIED, "request": None}),  # echo
        S.IDENTIFIED: (ERR, _QUIET),
        S.AWAIT_READOUT: (
            ERR,
            {**_QUIET, "readout": S.IDLE, "answer": S.IDLE, "error": S.IDLE, "block_bad_bcc": S.SEND_NAK},
        ),
        S.AWAIT_OPERAND: (
            ERR,
            {**_QUIET, "p0": S.PROGRAMMING, "b0": S.IDLE, "command_bad_bcc": S.SEND_NAK},
        ),
        S.PROGRAMMING: (ERR, _QUIET),
        S.AWAIT_REPLY: (  # after a read command (R3)
            ERR,
            {
                **_QUIET,
                "nak": S.PROGRAMMING,
                "answer": S.PROGRAMMING,
                "error": S.PROGRAMMING,
                "readout": S.PROGRAMMING,
                "answer_partial": S.SEND_BLOCK_ACK,
                "block_bad_bcc": S.SEND_NAK,
                "command_bad_bcc": S.SEND_NAK,
                "b0": S.IDLE,
            },
        ),
        S.SEND_BLOCK_ACK: (ERR, _QUIET),
        S.SEND_NAK: (ERR, _QUIET),
        S.BINARY: (S.BINARY, {}),
        S.ERROR: (ERR, {}),
    },
    Role.SERVER: {
        S.IDLE: (S.IDLE, {"request": S.REQUESTED}),
        S.REQUESTED: (ERR, _QUIET),
        S.AWAIT_OPTION: (
            ERR,
            {
                **_QUIET,
                "option_readout": S.SEND_READOUT,
                "option_programming": S.SEND_OPERAND,
                "option_binary": S.BINARY,
                "request": S.REQUESTED,  # the reader started over
                "ack": None,  # the first byte of an option select: wait for the rest
            },
        ),
        S.SEND_READOUT: (ERR, _QUIET),
        S.AFTER_READOUT: (S.IDLE, {"nul": None, "nak": S.SEND_READOUT, "request": S.REQUESTED}),
        S.PUSH_READOUT: (ERR, _QUIET),
        S.SEND_OPERAND: (ERR, _QUIET),
        S.AWAIT_COMMAND: (
            ERR,
            {
                **_QUIET,
                "p0": S.REPLY,
                "p1": S.REPLY,
                "r1": S.REPLY,
                "nak": S.REPLY,
                "b0": S.IDLE,
                "command_bad_bcc": S.SEND_NAK,
            },
        ),
        S.REPLY: (ERR, _QUIET),
        S.AWAIT_BLOCK_ACK: (
            ERR,
            {
                **_QUIET,
                "ack": S.REPLY,
                "nak": S.REPLY,
                "p0": S.REPLY,
                "p1": S.REPLY,
                "r1": S.REPLY,
                "b0": S.IDLE,
                "command_bad_bcc": S.SEND_NAK,
            },
        ),
        S.SEND_NAK: (ERR, _QUIET),
        S.BINARY: (S.BINARY, {}),
        S.ERROR: (ERR, {}),
    },
}

SENDS: Final[dict[str, Message]] = {
    "request": RequestMessage(),
    "wakeup": WakeUp(3),
    "ident": IDENT_E,
    "option_readout": AckOptionSelect.readout("5"),
    "option_programming": AckOptionSelect.programming("5"),
    "option_binary": AckOptionSelect.binary("5"),
    "ack": Ack(),
    "nak": Nak(),
    "readout": SAMPLE_READOUT,
    "answer": AnswerMessage("1.8.0(1)"),
    "answer_partial": AnswerMessage("1.8.0(1)", partial=True),
    "p0": CommandMessage.password_request("1"),
    "p1": CommandMessage.password("00000000"),
    "r1": CommandMessage.read("1.8.0"),
    "w3": CommandMessage("W", "3", "P.01(1)", partial=True),
    "b0": CommandMessage.sign_off(),
}

SEND: Final[dict[Role, dict[State, dict[str, State]]]] = {
    Role.CLIENT: {
        S.IDLE: {"request": S.AWAIT_IDENTIFICATION, "wakeup": S.IDLE},
        S.IDENTIFIED: {
            "option_readout": S.AWAIT_READOUT,
            "option_programming": S.AWAIT_OPERAND,
            "option_binary": S.BINARY,
        },
        S.PROGRAMMING: {"p1": S.AWAIT_REPLY, "r1": S.AWAIT_REPLY, "w3": S.AWAIT_REPLY, "b0": S.IDLE},
        S.SEND_BLOCK_ACK: {"ack": S.AWAIT_REPLY, "nak": S.AWAIT_REPLY, "b0": S.IDLE},
        S.SEND_NAK: {"nak": S.AWAIT_READOUT},
    },
    Role.SERVER: {
        S.IDLE: {"ident": S.PUSH_READOUT},
        S.REQUESTED: {"ident": S.AWAIT_OPTION},
        S.SEND_READOUT: {"readout": S.AFTER_READOUT},
        S.PUSH_READOUT: {"readout": S.IDLE},
        S.SEND_OPERAND: {"p0": S.AWAIT_COMMAND, "b0": S.IDLE},
        S.REPLY: {
            "ack": S.AWAIT_COMMAND,
            "nak": S.AWAIT_COMMAND,
            "answer": S.AWAIT_COMMAND,
            "p0": S.AWAIT_COMMAND,
            "answer_partial": S.AWAIT_BLOCK_ACK,
            "b0": S.IDLE,
        },
        S.SEND_NAK: {"nak": S.AWAIT_COMMAND},
    },
}

# States whose timer returns the connection to IDLE, and whether a Timeout event is reported.
TIMED: Final[dict[Role, dict[State, bool]]] = {
    Role.CLIENT: {
        S.AWAIT_IDENTIFICATION: True,
        S.AWAIT_READOUT: True,
        S.AWAIT_OPERAND: True,
        S.AWAIT_REPLY: True,
    },
    Role.SERVER: {
        S.AWAIT_OPTION: True,
        S.AFTER_READOUT: False,
        S.AWAIT_COMMAND: True,
        S.AWAIT_BLOCK_ACK: True,
    },
}

STATES: Final = {Role.CLIENT: CLIENT_STATES, Role.SERVER: SERVER_STATES}


def _pairs(table: dict[Role, dict[State, object]]) -> list[tuple[Role, State]]:
    return [
        (role, state)
        for role in (Role.CLIENT, Role.SERVER)
        for state in sorted(STATES[role], key=lambda s: s.value)
    ]


def test_tables_cover_every_state() -> None:
    for role in (Role.CLIENT, Role.SERVER):
        assert set(RECEIVE[role]) == set(STATES[role])
        assert set(SEND[role]) <= set(STATES[role])
        assert set(TIMED[role]) <= set(STATES[role])
    assert set(CLIENT_STATES) | set(SERVER_STATES) == set(State)


def expected_receive(role: Role, state: State, name: str) -> str | State:
    default, overrides = RECEIVE[role][state]
    outcome = overrides.get(name, default)
    return state if outcome is None else outcome


def _apply(role: Role, state: State, data: bytes, byte_by_byte: bool) -> tuple[str | State, list[Event]]:
    conn = connection_in(role, state)
    events: list[Event] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
    try:
        for chunk in chunks:
            conn.receive_data(chunk, now=100.0)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
    except RemoteProtocolError:
        assert conn.state is State.ERROR
        return ERR, events
    return conn.state, events


@pytest.mark.parametrize(("role", "state"), _pairs(RECEIVE), ids=lambda v: getattr(v, "value", v))
@pytest.mark.parametrize("name", list(INPUTS))
def test_receive(role: Role, state: State, name: str) -> None:
    data = INPUTS[name]
    outcome, events = _apply(role, state, data, byte_by_byte=False)
    assert outcome == expected_receive(role, state, name)
    # chunking invariance: the same input byte by byte gives the same outcome and events
    assert _apply(role, state, data, byte_by_byte=True) == (outcome, events)


@pytest.mark.parametrize(("role", "state"), _pairs(RECEIVE), ids=lambda v: getattr(v, "value", v))
@pytest.mark.parametrize("name", list(SENDS))
def test_send(role: Role, state: State, name: str) -> None:
    conn = connection_in(role, state)
    expected = SEND[role].get(state, {}).get(name, LOCAL)
    if expected == LOCAL:
        deadline = conn.next_deadline()
        with pytest.raises(LocalProtocolError):
            conn.send(SENDS[name], now=100.0)
        assert conn.state is state
        assert conn.next_deadline() == deadline
        if state is not State.ERROR:
            drain(conn)  # nothing half-done was queued
    else:
        wire = conn.send(SENDS[name], now=100.0)
        assert wire == SENDS[name].to_bytes()
        assert conn.state is expected


@pytest.mark.parametrize(("role", "state"), _pairs(RECEIVE), ids=lambda v: getattr(v, "value", v))
def test_timer(role: Role, state: State) -> None:
    conn = connection_in(role, state)
    timed = TIMED[role].get(state)
    deadline = conn.next_deadline()
    assert (deadline is not None) == (timed is not None)
    conn.handle_timeout(1e9)
    if timed is None:
        assert conn.state is state
        return
    events = drain(conn)
    assert conn.state is State.IDLE
    assert any(isinstance(e, Timeout) for e in events) == timed
    assert conn.next_deadline() is None

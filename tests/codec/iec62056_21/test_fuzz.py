"""Fuzzing both roles (DESIGN.md section 7 item 5): random bytes and random mutations of valid
conversations, fed in random chunks with timers firing in between, to a connection that answers
every "our turn" state legally. Only RemoteProtocolError may escape, and every run stays fast.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iec21_kit import IDENT_E, connection_in

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.iec62056_21 import (
    CLIENT_STATES,
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    SAMPLE_READOUT_FULL_BYTES,
    SERVER_STATES,
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    Iec21Connection,
    Message,
    Nak,
    RequestMessage,
    State,
)
from metercom.errors import RemoteProtocolError

pytestmark = pytest.mark.fuzz

_MAX_RUN_S = 0.5


def answer(conn: Iec21Connection, choice: int) -> Message | None:
    """A legal message for every "our turn" state (``choice`` varies the path)."""
    state = conn.state
    if conn.role is Role.CLIENT:
        if state is State.IDLE:
            return RequestMessage() if choice % 4 == 0 else None
        if state is State.IDENTIFIED:
            ident = conn.identification
            assert ident is not None
            if choice % 3 == 2 and ident.binary_mode_available:
                return AckOptionSelect.binary("0")
            return AckOptionSelect("0", "0", "1" if choice % 3 == 1 else "0")
        if state is State.PROGRAMMING:
            return [
                CommandMessage.password("00000000"),
                CommandMessage.read("1.8.0", command_type="3"),
                CommandMessage.write("0.9.1", "1"),
                CommandMessage.execute("X()"),
                CommandMessage.sign_off(),
            ][choice % 5]
        if state is State.SEND_BLOCK_ACK:
            return Nak() if choice % 5 == 0 else Ack()
        if state is State.SEND_NAK:
            return Nak()
        return None
    if state is State.REQUESTED:
        return IDENT_E if choice % 2 else SAMPLE_IDENTIFICATION
    if state in (State.SEND_READOUT, State.PUSH_READOUT):
        return SAMPLE_READOUT
    if state is State.SEND_OPERAND:
        return CommandMessage.password_request("42")
    if state is State.REPLY:
        return [
            Ack(),
            Nak(),
            AnswerMessage("1.8.0(1)"),
            AnswerMessage("x(1)", partial=True),
            AnswerMessage("(ERROR)"),
        ][choice % 5]
    if state is State.SEND_NAK:
        return Nak()
    return None


def run(conn: Iec21Connection, data: bytes, cuts: list[int], choices: list[int]) -> None:
    """Feed ``data`` split at ``cuts``; answer, fire timers; only RemoteProtocolError may escape."""
    started = time.perf_counter()
    points = sorted({c % (len(data) + 1) for c in cuts})
    now = 0.0
    step = 0
    try:
        for start, end in zip([0, *points], [*points, len(data)], strict=True):
            now += 0.4 * (step % 7)
            step += 1
            if step % 5 == 0:
                conn.handle_timeout(now)
            conn.receive_data(data[start:end], now=now)
            while (event := conn.next_event()) is not NEED_DATA:
                assert event is not None
            choice = choices[step % len(choices)] if choices else 0
            if (message := answer(conn, choice)) is not None:
                conn.send(message, now=now)  # legal by construction: a LocalProtocolError is a bug
    except RemoteProtocolError:
        assert conn.state is State.ERROR
    assert time.perf_counter() - started < _MAX_RUN_S


_roles_states = st.sampled_from(
    [(Role.CLIENT, s) for s in sorted(CLIENT_STATES, key=lambda s: s.value)]
    + [(Role.SERVER, s) for s in sorted(SERVER_STATES, key=lambda s: s.value)]
)


@settings(max_examples=300)
@given(
    where=_roles_states,
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=10),
    choices=st.lists(st.integers(0, 100), max_size=5),
)
def test_random_bytes(where: tuple[Role, State], data: bytes, cuts: list[int], choices: list[int]) -> None:
    role, state = where
    run(connection_in(role, state), data, cuts, choices)


# Valid streams each role may receive, to be mutated.
_BLOCKS = (
    SAMPLE_IDENTIFICATION.to_bytes(),
    IDENT_E.to_bytes(),
    SAMPLE_READOUT.to_bytes(),
    SAMPLE_READOUT_FULL_BYTES,
    CommandMessage.password_request("1234567").to_bytes(),
    b"\x06",
    b"\x15",
    AnswerMessage("P.01(1)(2)\r\n", partial=True).to_bytes(),
    AnswerMessage("P.01(3)\r\n").to_bytes(),
    AnswerMessage("(ERROR)").to_bytes(),
    CommandMessage.sign_off().to_bytes(),
    b"/?!\r\n",
    b"/?12345678!\r\n",
    AckOptionSelect.readout("5").to_bytes(),
    AckOptionSelect.programming("5").to_bytes(),
    AckOptionSelect.binary("5").to_bytes(),
    CommandMessage.password("00000000").to_bytes(),
    CommandMessage.read("1.8.0", command_type="3").to_bytes(),
    CommandMessage.write("0.9.1", "1").to_bytes(),
    bytes(20),
)

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("repeat"), st.integers(0, 10_000), st.integers(1, 40)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    buf = bytearray(data)
    for kind, position, arg in mutations:
        at = position % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= 1 << int(arg)  # type: ignore[call-overload]
        elif kind == "delete":
            del buf[at : at + int(arg)]  # type: ignore[call-overload]
        elif kind == "insert":
            buf[at:at] = arg
        elif kind == "repeat":
            buf[at:at] = buf[at : at + int(arg)]  # type: ignore[call-overload]
    return bytes(buf)


@settings(max_examples=300)
@given(
    role=st.sampled_from([Role.CLIENT, Role.SERVER]),
    blocks=st.lists(st.sampled_from(_BLOCKS), min_size=1, max_size=8),
    mutations=st.lists(_mutation, max_size=4),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    choices=st.lists(st.integers(0, 100), min_size=1, max_size=6),
    software_parity=st.booleans(),
    echo_cancel=st.booleans(),
)
def test_mutated_conversations(  # noqa: PLR0917 - one parameter per Hypothesis strategy
    role: Role,
    blocks: list[bytes],
    mutations: list[tuple[str, int, object]],
    cuts: list[int],
    choices: list[int],
    software_parity: bool,
    echo_cancel: bool,
) -> None:
    conn = Iec21Connection(role, software_parity=software_parity, echo_cancel=echo_cancel, max_block_size=512)
    if role is Role.CLIENT:
        conn.send(RequestMessage(), now=0.0)
    run(conn, mutate(b"".join(blocks), mutations), cuts, choices)


def test_huge_inputs_stay_bounded() -> None:
    """Megabytes of one byte value per state: linear work, bounded buffers, a clean outcome."""
    for role, states in ((Role.CLIENT, CLIENT_STATES), (Role.SERVER, SERVER_STATES)):
        for state in states:
            for filler in (b"\x00", b"\x02", b"/", b"\x01R1", b"x"):
                conn = connection_in(role, state)
                started = time.perf_counter()
                try:
                    for _ in range(64):
                        conn.receive_data(filler * 4096, now=1.0)
                        while conn.next_event() is not NEED_DATA:
                            pass
                except RemoteProtocolError:
                    pass
                assert time.perf_counter() - started < 2.0, (role, state, filler)

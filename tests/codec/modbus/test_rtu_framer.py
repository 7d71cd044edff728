"""RtuFramer: length, CRC and t3.5 silence; noise, truncation, overlong input; chunking invariance; fuzz."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import (
    MAX_RTU_FRAME,
    NEED_MORE,
    UNKNOWN,
    Adu,
    Noise,
    RtuFramer,
    encode_rtu,
    rtu_char_time_s,
    rtu_frame_length,
    rtu_silence_s,
)
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

T35 = rtu_silence_s(9600, 10)
REQUEST = bytes.fromhex("01 04 00 00 00 0A 70 0D")
REPLY = bytes.fromhex("01 04 14 08 FC 04 D2 00 00 0B 16 00 00 30 39 00 00 01 F4 00 63 00 00 EA 0D")


def drain(framer: RtuFramer) -> list[object]:
    """Every event, with FrameErrors recorded in place (as ("error", message))."""
    out: list[object] = []
    while True:
        try:
            event = framer.next_event()
        except FrameError as exc:
            out.append(("error", str(exc)))
            continue
        if event is NEED_DATA:
            return out
        out.append(event)


# -- timing --------------------------------------------------------------------------------------


def test_silence_values_of_the_spec() -> None:
    assert rtu_silence_s(9600) == pytest.approx(3.5 * 11 / 9600)  # 4.01 ms with an 11-bit character
    assert rtu_silence_s(9600, 10) == pytest.approx(0.0036458, abs=1e-7)  # PZEM 8N1: 3.65 ms
    assert rtu_silence_s(19200) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_silence_s(38400) == 0.00175  # fixed above 19,200 Bd
    assert rtu_char_time_s(9600, 10) == pytest.approx(1 / 960)
    with pytest.raises(LocalProtocolError):
        rtu_silence_s(0)


def test_unknown_function_code_ends_at_the_silence() -> None:
    frame = encode_rtu(7, bytes.fromhex("65 01 02 03"))  # function 0x65: not in the length table
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(frame, 10.0)
    assert framer.next_event() is NEED_DATA
    assert framer.next_deadline() == pytest.approx(10.0 + T35)
    framer.handle_timeout(10.0 + T35 / 2)  # too early: nothing happens
    assert framer.next_event() is NEED_DATA
    framer.handle_timeout(10.0 + T35)
    assert framer.next_event() == Adu(7, bytes.fromhex("65 01 02 03"))
    assert framer.next_deadline() is None


def test_a_truncated_reply_is_reported_at_the_silence() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(REPLY[:12], 1.0)
    assert framer.next_event() is NEED_DATA
    framer.handle_timeout(1.0 + T35)
    with pytest.raises(
        FrameError, match="CRC mismatch in a 12-byte frame, the function code implies 25 bytes"
    ):
        framer.next_event()


def test_a_few_bytes_alone_are_too_short() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(b"\x00\x01", 1.0)
    framer.handle_timeout(2.0)
    with pytest.raises(FrameError, match="too short"):
        framer.next_event()


def test_only_handle_timeout_reports_a_silence() -> None:
    """A chunk fed late carries the read's time, which says nothing about the gap before it."""
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(REPLY[:5], 1.0)
    framer.receive_data(REPLY[5:], 1.0 + 2 * T35)  # the caller was busy: still one frame
    assert drain(framer) == [Adu(1, REPLY[1:-2])]
    framer.receive_data(REPLY[:5], 2.0)
    framer.handle_timeout(3.0)  # reported late: still a silence
    framer.receive_data(REPLY, 3.0)
    events = drain(framer)
    assert events[0][0] == "error"  # type: ignore[index]
    assert events[1] == Adu(1, REPLY[1:-2])


def test_noise_before_a_frame_is_dropped_and_reported() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(b"\x00" + REPLY, 1.0)  # an RS-485 driver's turn-on glitch
    assert framer.next_event() is NEED_DATA  # the length rule cannot start at the glitch
    framer.handle_timeout(1.0 + T35)
    assert framer.next_event() == Noise(b"\x00", "bytes before a frame")
    assert framer.next_event() == Adu(1, REPLY[1:-2])


def test_garbage_after_a_frame_does_not_spoil_it() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(REPLY + b"\xff\xff", 1.0)
    assert framer.next_event() == Adu(1, REPLY[1:-2])
    framer.handle_timeout(1.0 + T35)
    with pytest.raises(FrameError, match="too short"):
        framer.next_event()


def test_back_to_back_frames_in_one_chunk() -> None:
    framer = RtuFramer(Role.SERVER, silence_s=T35)
    second = encode_rtu(2, bytes.fromhex("03 0001 0002"))
    framer.receive_data(REQUEST + second + REQUEST, 1.0)
    assert drain(framer) == [Adu(1, REQUEST[1:-2]), Adu(2, second[1:-2]), Adu(1, REQUEST[1:-2])]


def test_more_than_256_bytes_without_an_end_is_an_error_then_hunting() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(b"\x01\x65" + b"\x00" * 300, 1.0)
    with pytest.raises(FrameError, match=f"after {MAX_RTU_FRAME} bytes"):
        framer.next_event()
    framer.receive_data(REPLY, 1.001)  # still no silence: dropped
    assert framer.next_event() is NEED_DATA
    assert framer.dropped > 300
    framer.handle_timeout(1.001 + T35)
    framer.receive_data(REPLY, 2.0)
    assert framer.next_event() == Adu(1, REPLY[1:-2])


def test_without_timing_flush_ends_the_frame() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=None)
    frame = encode_rtu(7, b"\x65\x01")
    framer.receive_data(frame)
    assert framer.next_deadline() is None
    assert framer.next_event() is NEED_DATA
    framer.flush()
    assert framer.next_event() == Adu(7, b"\x65\x01")


def test_discard_forgets_everything() -> None:
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    framer.receive_data(REPLY + REPLY[:5], 1.0)
    assert framer.buffered == 5
    assert framer.discard() == 5
    assert framer.next_event() is NEED_DATA
    assert framer.buffered == 0


def test_bad_parameters() -> None:
    with pytest.raises(LocalProtocolError):
        RtuFramer(Role.CLIENT, silence_s=0)
    with pytest.raises(LocalProtocolError):
        RtuFramer(Role.CLIENT, silence_s=T35, max_noise=-1)
    with pytest.raises(LocalProtocolError):
        encode_rtu(256, b"\x03")
    with pytest.raises(LocalProtocolError):
        encode_rtu(1, b"")
    with pytest.raises(LocalProtocolError):
        encode_rtu(1, b"\x10" * 254)


# -- the length table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "prefix", "expected"),
    [
        (Role.SERVER, "01 03", 8),
        (Role.SERVER, "01 10 00 10 00 02", NEED_MORE),
        (Role.SERVER, "01 10 00 10 00 02 04", 13),
        (Role.SERVER, "01 17 00 00 00 01 00 02 00 01 02", 15),
        (Role.SERVER, "01 42", 4),
        (Role.SERVER, "F8 41", 6),
        (Role.SERVER, "01 65", UNKNOWN),
        (Role.CLIENT, "01 04", NEED_MORE),
        (Role.CLIENT, "01 04 14", 25),
        (Role.CLIENT, "01 84", 5),
        (Role.CLIENT, "01 C2", 5),
        (Role.CLIENT, "01 06", 8),
        (Role.CLIENT, "01 18 00", NEED_MORE),
        (Role.CLIENT, "01 18 00 06", 12),
        (Role.CLIENT, "01 2B", UNKNOWN),
        (Role.CLIENT, "01", NEED_MORE),
    ],
)
def test_frame_length(role: Role, prefix: str, expected: int) -> None:
    assert rtu_frame_length(bytes.fromhex(prefix), role) == expected


# -- chunking invariance ---------------------------------------------------------------------------

_STREAM_FRAMES = [
    REPLY,
    bytes.fromhex("01 84 02 C2 C1"),
    encode_rtu(9, b"\x65\x01\x02"),  # unknown function: needs the silence
    bytes.fromhex("02 04 14 08 FD 86 A0 00 01 A0 D8 00 02 56 78 00 12 01 F3 00 64 FF FF 10 E1"),
    b"\x00" + bytes.fromhex("01 42 80 11"),  # glitch, then a frame
    REPLY[:9],  # truncated
    bytes.fromhex("01 C2 04 70 A3"),
]


def _timeline() -> list[tuple[int, float]]:
    """(byte, arrival time) of the stream: frames back to back at 9600 Bd, 2 x t3.5 apart."""
    out = []
    t = 0.0
    char_s = rtu_char_time_s(9600, 10)
    for frame in _STREAM_FRAMES:
        for byte in frame:
            t += char_s
            out.append((byte, t))
        t += 2 * T35
    return out


def _run(cuts: list[int]) -> list[object]:
    """Feed the timeline split at ``cuts``, firing the framer's timer as a session would."""
    timeline = _timeline()
    framer = RtuFramer(Role.CLIENT, silence_s=T35)
    events: list[object] = []
    bounds = [0, *sorted(set(cuts)), len(timeline)]
    # Chunks never straddle a silence: a real read returns what has arrived, and the session
    # wakes at the deadline in between.
    chunks: list[list[tuple[int, float]]] = []
    for start, end in itertools.pairwise(bounds):
        chunk: list[tuple[int, float]] = []
        for item in timeline[start:end]:
            if chunk and item[1] - chunk[-1][1] > T35:
                chunks.append(chunk)
                chunk = []
            chunk.append(item)
        if chunk:
            chunks.append(chunk)
    for chunk in chunks:
        arrival = chunk[-1][1]
        deadline = framer.next_deadline()
        if deadline is not None and deadline <= chunk[0][1]:
            framer.handle_timeout(deadline)
            events.extend(drain(framer))
        framer.receive_data(bytes(b for b, _ in chunk), arrival)
        events.extend(drain(framer))
    deadline = framer.next_deadline()
    if deadline is not None:
        framer.handle_timeout(deadline)
    events.extend(drain(framer))
    return events


def test_the_reference_stream_gives_the_expected_events() -> None:
    events = _run([])
    kinds = [e[0] if isinstance(e, tuple) and e and e[0] == "error" else type(e).__name__ for e in events]
    assert kinds == ["Adu", "Adu", "Adu", "Adu", "Noise", "Adu", "error", "Adu"]


@given(st.lists(st.integers(min_value=1, max_value=len(_timeline()) - 1), max_size=40))
def test_chunking_invariance(cuts: list[int]) -> None:
    assert _run(cuts) == _run([])


def test_byte_by_byte_equals_whole() -> None:
    assert _run(list(range(1, len(_timeline())))) == _run([])


# -- fuzz --------------------------------------------------------------------------------------------


@pytest.mark.fuzz
@settings(max_examples=300)
@given(
    role=st.sampled_from([Role.CLIENT, Role.SERVER]),
    chunks=st.lists(
        st.tuples(
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from([*_STREAM_FRAMES, REQUEST]),
            ),
            st.floats(min_value=0.0, max_value=0.01),
            st.booleans(),
        ),
        max_size=30,
    ),
    silence=st.sampled_from([T35, None]),
)
def test_fuzz_only_remote_protocol_errors_escape(
    role: Role, chunks: list[tuple[bytes, float, bool]], silence: float | None
) -> None:
    framer = RtuFramer(role, silence_s=silence)
    now = 0.0
    started = time.perf_counter()
    total = 0
    for data, gap, fire in chunks:
        now += gap
        total += len(data)
        framer.receive_data(data, now)
        if fire:
            deadline = framer.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
                framer.handle_timeout(now)
        produced = 0
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError:
                produced += 1
                continue
            if event is NEED_DATA:
                break
            produced += 1
            assert isinstance(event, (Adu, Noise))
            if isinstance(event, Adu):
                assert 0 <= event.unit <= 255
                assert 1 <= len(event.pdu) <= 253
        assert produced <= len(data) + 2  # bounded: never more events than bytes
        assert framer.buffered <= MAX_RTU_FRAME
    framer.flush()
    drain(framer)
    assert time.perf_counter() - started < 0.5 + total * 1e-5

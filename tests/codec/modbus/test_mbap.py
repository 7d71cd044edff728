"""MbapFramer: Modbus TCP framing both ways, chunking invariance, broken streams, fuzz."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import Adu, MbapFramer, encode_mbap
from metercom.errors import LocalProtocolError, RemoteProtocolError

# Read 10 input registers of unit 1, transaction 0x1234 (MBAP length = unit + PDU = 6).
REQUEST = bytes.fromhex("12 34 00 00 00 06 01 04 00 00 00 0A")
REPLY = bytes.fromhex(
    "12 34 00 00 00 17 01 04 14 08 FC 04 D2 00 00 0B 16 00 00 30 39 00 00 01 F4 00 63 00 00"
)


def test_encode_both_ways() -> None:
    assert encode_mbap(0x1234, 1, bytes.fromhex("04 0000 000A")) == REQUEST
    framer = MbapFramer(Role.SERVER)
    framer.receive_data(REQUEST)
    assert framer.next_event() == Adu(1, bytes.fromhex("04 0000 000A"), 0x1234)
    assert framer.next_event() is NEED_DATA
    assert framer.send(Adu(1, bytes.fromhex("04 0000 000A"), 0x1234)) == REQUEST


@given(st.lists(st.integers(min_value=1, max_value=2 * len(REPLY) - 1), max_size=20))
def test_chunking_invariance(cuts: list[int]) -> None:
    stream = REPLY + REPLY
    bounds = [0, *sorted(set(cuts)), len(stream)]
    framer = MbapFramer(Role.CLIENT)
    events = []
    for start, end in itertools.pairwise(bounds):
        framer.receive_data(stream[start:end], 0.0)
        while (event := framer.next_event()) is not NEED_DATA:
            events.append(event)
    assert events == [Adu(1, REPLY[7:], 0x1234)] * 2
    assert framer.buffered == 0


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (bytes.fromhex("00 01 00 05 00 06 01 04 00 00 00 0A"), "protocol id 5"),
        (bytes.fromhex("00 01 00 00 00 01 01"), "length field 1"),
        (bytes.fromhex("00 01 00 00 01 00 01 04"), "length field 256"),
        (b"/?!\r\n\x00\x00", "protocol id"),  # an IEC 62056-21 request on a Modbus port
    ],
)
def test_a_broken_stream_keeps_raising(data: bytes, match: str) -> None:
    framer = MbapFramer(Role.SERVER)
    framer.receive_data(data)
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match=match):
            framer.next_event()
    framer.receive_data(REQUEST)  # ignored: the stream cannot be resynchronised
    with pytest.raises(RemoteProtocolError):
        framer.next_event()


def test_timer_verbs_do_nothing_and_discard_clears() -> None:
    framer = MbapFramer(Role.CLIENT)
    framer.receive_data(REPLY[:10])
    assert framer.next_deadline() is None
    framer.handle_timeout(5.0)
    framer.flush()
    assert framer.discard() == 10
    assert framer.next_event() is NEED_DATA


def test_encode_rejects_bad_parts() -> None:
    with pytest.raises(LocalProtocolError):
        encode_mbap(70000, 1, b"\x03")
    with pytest.raises(LocalProtocolError):
        encode_mbap(1, 300, b"\x03")
    with pytest.raises(LocalProtocolError):
        encode_mbap(1, 1, b"")


@pytest.mark.fuzz
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_only_remote_protocol_errors_escape(chunks: list[bytes]) -> None:
    framer = MbapFramer(Role.SERVER)
    for chunk in chunks:
        framer.receive_data(chunk)
        try:
            while (event := framer.next_event()) is not NEED_DATA:
                assert isinstance(event, Adu)
                assert 1 <= len(event.pdu) <= 253
        except RemoteProtocolError:
            pass

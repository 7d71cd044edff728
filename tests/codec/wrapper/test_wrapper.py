"""IEC 62056-47 wrapper: frames both ways, negative frames, TCP stream decoding with any
chunking, UDP datagrams, the sans-I/O connection for both roles, fuzz.

Vector provenance: /work/shared/reference/dlms-vectors.json (the vector's name is the test id):
loopback captures of gurux-dlms 1.0.203 and dlms-cosem 25.1.0 clients against a gurux-dlms
server, and u9n/dlms-cosem tests/test_udp_message.py (commit c52e9d44) for the UDP push.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.wrapper import (
    ApduReceived,
    FrameDiscarded,
    SendApdu,
    WrapperConnection,
    WrapperEvent,
    WrapperFrame,
    WrapperStreamDecoder,
    WrapperTransport,
    decode_datagram,
)
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

# Copies of the wrapper entries of dlms-vectors.json (name, source, hex, meaning).
VECTOR_FILE = json.loads(Path(__file__).with_name("wrapper_vectors.json").read_text(encoding="utf-8"))
WIRE = {v["name"]: bytes.fromhex(v["hex"]) for v in VECTOR_FILE}

# name -> (source wPort, destination wPort, APDU length)
VECTORS: dict[str, tuple[int, int, int]] = {
    "UDP wrapper datagram with general-glo-ciphering push": (1, 1, 70),
    "Wrapper AARQ from gurux-dlms client (no security)": (16, 1, 31),
    "Wrapper AARE from gurux-dlms server (accepted)": (1, 16, 43),
    "Wrapper GET-Request-Normal logical device name": (16, 1, 13),
    "Wrapper GET-Response-Normal logical device name": (1, 16, 22),
    "Wrapper GET-Response-Normal register scaler_unit": (1, 16, 10),
    "Wrapper GET-Response-Normal register value": (1, 16, 9),
    "Wrapper GET-Request with entry_descriptor (gurux client)": (16, 1, 32),
    "Wrapper GET-Request with range_descriptor (gurux client)": (16, 1, 64),
    "Wrapper GET-Response for the range request (3 rows)": (1, 16, 69),
    "NEGATIVE: malformed RLRE from gurux-dlms 1.0.203 server": (1, 16, 23),
    "Wrapper GET-Response-With-Datablock block 1 (gurux server, max PDU 512)": (1, 16, 512),
    "Wrapper GET-Response-With-Datablock last block": (1, 16, 316),
    "Wrapper GET-Request-Next": (16, 1, 7),
    "Wrapper AARQ LLS from gurux-dlms client (client SAP 17, password 12345678)": (17, 1, 56),
    "Wrapper AARQ HLS-SHA256 (mechanism 6) from gurux-dlms client": (1, 1, 76),
    "NEGATIVE: AARE HLS-SHA256 from gurux-dlms 1.0.203 server (bad responding-authentication-value length)": (
        1, 1, 76,
    ),
    "Wrapper AARQ HLS-GMAC with glo-initiate-request from gurux-dlms client": (1, 1, 95),
    "Wrapper AARQ from dlms-cosem 25.1.0 client": (16, 1, 43),
    "Wrapper GET-Request-With-List from dlms-cosem client": (16, 1, 24),
}  # fmt: skip


def test_every_wrapper_vector_is_covered() -> None:
    assert set(WIRE) == set(VECTORS)
    shared = Path("/work/shared/reference/dlms-vectors.json")
    if shared.exists():  # the copy still matches the reference file
        reference = {v["name"]: v for v in json.loads(shared.read_text(encoding="utf-8"))}
        assert all(reference[v["name"]] == v for v in VECTOR_FILE)


def wire_of(name: str) -> bytes:
    return WIRE[name]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_both_ways(name: str) -> None:
    source, destination, length = VECTORS[name]
    wire = wire_of(name)
    frame = WrapperFrame.from_bytes(wire)
    assert (frame.version, frame.source_wport, frame.destination_wport, len(frame.apdu)) == (
        1,
        source,
        destination,
        length,
    )
    assert frame.to_bytes() == wire
    assert WrapperFrame(source, destination, frame.apdu).to_bytes() == wire
    assert decode_datagram(wire) == frame


@pytest.mark.parametrize(
    "name",
    [
        "NEGATIVE: malformed RLRE from gurux-dlms 1.0.203 server",
        (
            "NEGATIVE: AARE HLS-SHA256 from gurux-dlms 1.0.203 server "
            "(bad responding-authentication-value length)"
        ),
    ],
    ids=str,
)
def test_negative_apdus_are_good_wrapper_frames(name: str) -> None:
    """The wrapper is intact (the length field matches); the ACSE APDU inside is what is broken,
    and that is the ACSE decoder's business: the wrapper hands the bytes up unchanged."""
    wire = wire_of(name)
    frame = WrapperFrame.from_bytes(wire)
    assert frame.apdu == wire[8:]
    assert frame.apdu[0] in (0x61, 0x63)
    client = WrapperConnection(Role.CLIENT, frame.destination_wport, frame.source_wport)
    client.receive_data(wire)
    assert drain(client) == [ApduReceived(wire[8:], frame.source_wport, frame.destination_wport)]


# --- negative frames -------------------------------------------------------------------------

GET = wire_of("Wrapper GET-Request-Next")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"", "truncated"),
        (GET[:7], "truncated"),
        (GET[:-1], "length field says 7 bytes, 6"),
        (GET + b"\x00", "length field says 7 bytes, 8"),
        (b"\x00\x02" + GET[2:], "version 0x0002"),
        (b"\x7e\xa0" + GET[2:], "version"),
    ],
)
def test_negative_frames(wire: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        WrapperFrame.from_bytes(wire)
    with pytest.raises(FrameError):
        decode_datagram(wire)


def test_max_length_bound() -> None:
    with pytest.raises(FrameError, match="exceeds the configured maximum 6"):
        WrapperFrame.from_bytes(GET, max_length=6)
    assert WrapperFrame.from_bytes(GET, max_length=7).apdu == GET[8:]


def test_to_bytes_rejects_bad_fields() -> None:
    for frame in (
        WrapperFrame(0x10000, 1, b""),
        WrapperFrame(1, -1, b""),
        WrapperFrame(1, 1, b"", version=0x10000),
        WrapperFrame(1, 1, bytes(0x10000)),
    ):
        with pytest.raises(LocalProtocolError):
            frame.to_bytes()
    assert len(WrapperFrame(1, 1, bytes(0xFFFF)).to_bytes()) == 0xFFFF + 8


# --- TCP stream --------------------------------------------------------------------------------

STREAM_NAMES = sorted(n for n in VECTORS if not n.startswith("UDP"))
STREAM = b"".join(wire_of(n) for n in STREAM_NAMES) + WrapperFrame(1, 16, bytes(3000)).to_bytes()


def decode_stream(chunks: list[bytes], **kwargs: int) -> list[WrapperFrame]:
    decoder = WrapperStreamDecoder(**kwargs)
    frames: list[WrapperFrame] = []
    for chunk in chunks:
        decoder.feed(chunk)
        frames.extend(decoder)
    assert decoder.buffered == 0
    return frames


WHOLE = decode_stream([STREAM])


def test_stream_whole_and_byte_by_byte() -> None:
    assert [f.to_bytes() for f in WHOLE[:-1]] == [wire_of(n) for n in STREAM_NAMES]
    assert decode_stream([bytes((b,)) for b in STREAM]) == WHOLE


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_stream_chunking_invariance(data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(STREAM) - 1), max_size=50))))
    bounds = [0, *cuts, len(STREAM)]
    assert decode_stream([STREAM[a:b] for a, b in itertools.pairwise(bounds)]) == WHOLE


def test_stream_waits_for_header_and_body() -> None:
    decoder = WrapperStreamDecoder()
    decoder.feed(GET[:5])
    assert decoder.next() is NEED_DATA
    decoder.feed(GET[5:9])
    assert decoder.next() is NEED_DATA
    assert decoder.buffered == 9
    decoder.feed(GET[9:])
    assert decoder.next() == WrapperFrame.from_bytes(GET)
    assert decoder.next() is NEED_DATA


def test_stream_corruption_is_final_and_bounded() -> None:
    decoder = WrapperStreamDecoder(max_length=1024)
    decoder.feed(GET + b"\x00\x01\x00\x10\x00\x01\xff\xff")  # announces 65535 bytes
    assert decoder.next() == WrapperFrame.from_bytes(GET)
    with pytest.raises(FrameError, match="exceeds the configured maximum 1024"):
        decoder.next()
    assert decoder.broken
    assert decoder.buffered == 0
    decoder.feed(GET)  # ignored: the stream cannot be resynchronised
    with pytest.raises(FrameError):
        decoder.next()
    other = WrapperStreamDecoder()
    other.feed(b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")  # HDLC on a wrapper port
    with pytest.raises(FrameError, match="version"):
        other.next()
    with pytest.raises(LocalProtocolError):
        WrapperStreamDecoder(max_length=0x10000)


# --- connection --------------------------------------------------------------------------------


def drain(conn: WrapperConnection) -> list[WrapperEvent]:
    events: list[WrapperEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@pytest.mark.parametrize(
    "names",
    [
        (
            "Wrapper AARQ from gurux-dlms client (no security) + "
            "Wrapper AARE from gurux-dlms server (accepted) + "
            "Wrapper GET-Request-Normal logical device name + Wrapper GET-Response-Normal logical device name"
        )
    ],
    ids=str,
)
@pytest.mark.parametrize("transport", list(WrapperTransport))
def test_client_and_server_speak_like_gurux(names: str, transport: WrapperTransport) -> None:
    client = WrapperConnection(Role.CLIENT, 16, 1, transport=transport)
    server = WrapperConnection(Role.SERVER, None, None, transport=transport)
    for request, response in (
        (
            "Wrapper AARQ from gurux-dlms client (no security)",
            "Wrapper AARE from gurux-dlms server (accepted)",
        ),
        ("Wrapper GET-Request-Normal logical device name", "Wrapper GET-Response-Normal logical device name"),
    ):
        data = client.send(SendApdu(wire_of(request)[8:]))
        assert data == wire_of(request)
        server.receive_data(data)
        (event,) = drain(server)
        assert event == ApduReceived(wire_of(request)[8:], 16, 1)
        answer = server.send(SendApdu(wire_of(response)[8:]))
        assert answer == wire_of(response)
        client.receive_data(answer)
        assert drain(client) == [ApduReceived(wire_of(response)[8:], 1, 16)]
    assert client.next_deadline() is None
    assert server.next_deadline() is None
    client.handle_timeout(100.0)
    assert drain(client) == []


def test_tcp_frames_packed_and_split() -> None:
    server = WrapperConnection(Role.SERVER, 16, 1)
    requests = [bytes([0xC0, i]) * (i + 1) for i in range(20)]
    data = b"".join(WrapperFrame(16, 1, r).to_bytes() for r in requests)
    for i in range(0, len(data), 7):
        server.receive_data(data[i : i + 7], now=float(i))
    assert [e.apdu for e in drain(server) if isinstance(e, ApduReceived)] == requests


def test_udp_datagrams_are_independent() -> None:
    listener = WrapperConnection(Role.CLIENT, 1, 1, transport=WrapperTransport.UDP)
    push = wire_of("UDP wrapper datagram with general-glo-ciphering push")
    listener.receive_data(push)
    listener.receive_data(push[:20])  # truncated datagram: discarded, not fatal
    listener.receive_data(push + b"\x00")  # trailing byte: discarded
    listener.receive_data(push)
    events = drain(listener)
    assert [type(e) for e in events] == [ApduReceived, FrameDiscarded, FrameDiscarded, ApduReceived]
    assert isinstance(events[0], ApduReceived)
    assert events[0].apdu[0] == 0xDB


def test_frames_for_other_wports_are_discarded() -> None:
    client = WrapperConnection(Role.CLIENT, 16, 1)
    client.receive_data(WrapperFrame(1, 17, b"\xc4").to_bytes())  # to another client
    client.receive_data(WrapperFrame(2, 16, b"\xc4").to_bytes())  # from another logical device
    client.receive_data(WrapperFrame(1, 16, b"\xc4").to_bytes())
    events = drain(client)
    assert [type(e) for e in events] == [FrameDiscarded, FrameDiscarded, ApduReceived]
    server = WrapperConnection(Role.SERVER, 16, 1)
    server.receive_data(WrapperFrame(17, 1, b"\xc0").to_bytes())
    server.receive_data(WrapperFrame(16, 2, b"\xc0").to_bytes())
    assert [type(e) for e in drain(server)] == [FrameDiscarded, FrameDiscarded]


def test_server_follows_the_client_wport() -> None:
    """One TCP connection, two client SAPs in turn (dlms-cosem #95): replies follow the asker."""
    server = WrapperConnection(Role.SERVER, None, None)
    with pytest.raises(LocalProtocolError, match="no peer wPort"):
        server.send(SendApdu(b"\xc4"))
    for client_wport, server_wport in ((16, 1), (32, 1), (16, 17)):
        server.receive_data(WrapperFrame(client_wport, server_wport, b"\xc0").to_bytes())
        (event,) = drain(server)
        assert event == ApduReceived(b"\xc0", client_wport, server_wport)
        reply = WrapperFrame.from_bytes(server.send(SendApdu(b"\xc4")))
        assert (reply.source_wport, reply.destination_wport) == (server_wport, client_wport)
    override = WrapperFrame.from_bytes(server.send(SendApdu(b"\xc4", destination_wport=102)))
    assert override.destination_wport == 102


def test_connection_argument_checks() -> None:
    with pytest.raises(LocalProtocolError):
        WrapperConnection(Role.CLIENT, None, 1)
    with pytest.raises(LocalProtocolError):
        WrapperConnection(Role.CLIENT, 16, None)
    with pytest.raises(LocalProtocolError):
        WrapperConnection(Role.SERVER, 0x10000, 1)
    client = WrapperConnection(Role.CLIENT, 16, 1, max_length=10)
    with pytest.raises(LocalProtocolError, match="max_length"):
        client.send(SendApdu(bytes(11)))
    with pytest.raises(LocalProtocolError):
        client.send("not a command")  # type: ignore[arg-type]


def test_corrupt_tcp_stream_raises_every_time() -> None:
    client = WrapperConnection(Role.CLIENT, 16, 1)
    client.receive_data(b"\x00\x02" + bytes(6))
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match="version"):
            client.next_event()


# --- fuzz ----------------------------------------------------------------------------------------


def assert_fast(work: Callable[[], object], limit_s: float = 0.1) -> None:
    """One fuzz input must be handled within ``limit_s``. A slow run is repeated (twice at most)
    so a scheduler or GC pause on a busy machine does not count; a slow code path still fails."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
        if best < limit_s:
            return
    raise AssertionError(f"fuzz input took {best * 1000:.0f} ms (limit {limit_s * 1000:.0f} ms)")


@pytest.mark.fuzz
def test_fuzz_only_remote_protocol_error() -> None:
    rng = random.Random(6205647)
    samples = [wire_of(n) for n in sorted(VECTORS)]
    for round_ in range(1500):
        if round_ % 3 == 0:
            data = bytearray(rng.randbytes(rng.randint(0, 120)))
        else:
            data = bytearray(rng.choice(samples))
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(data))
                if rng.random() < 0.5:
                    data[pos] ^= 1 << rng.randrange(8)
                else:
                    del data[pos]
        assert_fast(lambda data=bytes(data): _fuzz_one(data))


def _fuzz_one(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        WrapperFrame.from_bytes(data)
    for transport in WrapperTransport:
        conn = WrapperConnection(Role.SERVER, None, None, transport=transport)
        conn.receive_data(data)
        with contextlib.suppress(RemoteProtocolError):
            drain(conn)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_fuzz_hypothesis_stream(data: bytes, max_length: int) -> None:
    decoder = WrapperStreamDecoder(max_length=max_length)
    decoder.feed(data)
    try:
        for frame in decoder:
            assert len(frame.apdu) <= max_length
    except RemoteProtocolError:
        assert decoder.broken

"""HDLC frame format type 3: FCS, addresses, frames both ways, negative frames, the stream splitter.

Vector provenance: /work/shared/reference/dlms-vectors.json; the vector's name is the test id.
The frames come from u9n/dlms-cosem tests (commit c52e9d44, file and line in the name's
"source") and from loopback captures of gurux-dlms 1.0.203 (client and server).
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
from metercom.codec.hdlc import (
    DiscardedBytes,
    FrameKind,
    HdlcAddress,
    HdlcFrame,
    HdlcFrameSplitter,
    add_llc_header,
    fcs16,
    strip_llc_header,
)
from metercom.codec.hdlc.address import decode_address
from metercom.codec.hdlc.fcs import GOOD_RESIDUE, REVERSE_BITS, fcs16_bytes, fcs_residue
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

C16 = HdlcAddress(16)
S1_17 = HdlcAddress(1, 17)
S1 = HdlcAddress(1)


def reference_fcs16(data: bytes) -> int:
    """Table-driven FCS-16 exactly as RFC 1662 appendix C.2 describes it (independent of fcs.py)."""
    table = []
    for b in range(256):
        v = b
        for _ in range(8):
            v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
        table.append(v)
    fcs = 0xFFFF
    for byte in data:
        fcs = (fcs >> 8) ^ table[(fcs ^ byte) & 0xFF]
    return fcs ^ 0xFFFF


# Copies of the HDLC entries of dlms-vectors.json (name, source, hex, meaning), kept beside the tests.
VECTOR_FILE = json.loads(Path(__file__).with_name("hdlc_vectors.json").read_text(encoding="utf-8"))
WIRE = {v["name"]: bytes.fromhex(v["hex"]) for v in VECTOR_FILE}

# name -> (kind, destination, source, poll_final, N(S), N(R), segmented, information length)
VECTORS: dict[str, tuple[FrameKind, HdlcAddress, HdlcAddress, bool, int, int, bool, int]] = {
    "HDLC SNRM (2-byte server address)": (FrameKind.SNRM, S1_17, C16, True, 0, 0, False, 0),
    "HDLC UA with negotiated parameters": (FrameKind.UA, C16, S1_17, True, 0, 0, False, 21),
    "HDLC UA with 4-byte server address": (
        FrameKind.UA, HdlcAddress(1), HdlcAddress(1, 17, 4), True, 0, 0, False, 23,
    ),
    "HDLC I-frame carrying AARQ (no security)": (FrameKind.I, S1_17, C16, True, 0, 0, False, 34),
    "HDLC I-frame carrying AARE (accepted)": (FrameKind.I, C16, S1_17, True, 0, 1, False, 46),
    "HDLC UI frame with push DataNotification (long frame, 11-bit length)": (
        FrameKind.UI, HdlcAddress(0x20), HdlcAddress(4, 65), True, 0, 0, False, 569,
    ),
    "HDLC UA without information field (Pietro Fiorentini local port)": (
        FrameKind.UA, C16, S1, True, 0, 0, False, 0,
    ),
    "Kamstrup OMNIA public-client AARQ (HDLC)": (
        FrameKind.I, HdlcAddress(1, 866), C16, True, 0, 0, False, 46,
    ),
    "Kamstrup OMNIA public-client AARE with BER long-form length (HDLC)": (
        FrameKind.I, C16, HdlcAddress(1, 866), True, 0, 1, False, 60,
    ),
    "Kamstrup OMNIA GET-Request (HDLC)": (FrameKind.I, HdlcAddress(1, 866), C16, True, 1, 1, False, 16),
    "Kamstrup OMNIA GET-Response (HDLC)": (FrameKind.I, C16, HdlcAddress(1, 866), True, 1, 2, False, 12),
    "HDLC SNRM without parameters (gurux-dlms client)": (FrameKind.SNRM, S1, C16, True, 0, 0, False, 0),
    "HDLC I-frame AARQ (gurux-dlms client, no security)": (FrameKind.I, S1, C16, True, 0, 0, False, 34),
    "HDLC I-frame AARE (gurux-dlms server, accepted)": (FrameKind.I, C16, S1, True, 0, 1, False, 46),
    "HDLC I-frame GET-Response (gurux-dlms server)": (FrameKind.I, C16, S1, True, 1, 2, False, 25),
    "HDLC I-frame GET-Request (gurux-dlms client)": (FrameKind.I, S1, C16, True, 1, 1, False, 16),
    "HDLC segmented I-frame (first segment, format A8)": (FrameKind.I, C16, S1, True, 0, 1, True, 125),
    "NEGATIVE: malformed UA from gurux-dlms 1.0.203 server": (FrameKind.UA, C16, S1, True, 0, 0, False, 21),
}  # fmt: skip
HAN_PUSH_NAME = "HDLC UI frame with push DataNotification (long frame, 11-bit length)"
HAN_PUSH = WIRE[HAN_PUSH_NAME]


def test_every_hdlc_vector_is_covered() -> None:
    assert set(WIRE) == set(VECTORS)
    shared = Path("/work/shared/reference/dlms-vectors.json")
    if shared.exists():  # the copy still matches the reference file
        reference = {v["name"]: v for v in json.loads(shared.read_text(encoding="utf-8"))}
        assert all(reference[v["name"]] == v for v in VECTOR_FILE)


# --- FCS -------------------------------------------------------------------------------------


def test_fcs_check_value() -> None:
    assert fcs16(b"123456789") == 0x906E == reference_fcs16(b"123456789")
    assert fcs16(b"") == 0x0000 == reference_fcs16(b"")


@given(st.binary(max_size=600))
def test_fcs_matches_table_driven_reference(data: bytes) -> None:
    assert fcs16(data) == reference_fcs16(data)
    assert fcs16_bytes(data) == reference_fcs16(data).to_bytes(2, "little")
    # Residue: data followed by its FCS leaves the "good FCS" register.
    assert fcs_residue((data + fcs16_bytes(data)).translate(REVERSE_BITS)) == GOOD_RESIDUE


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_fcs_of_vectors(name: str) -> None:
    wire = WIRE[name]
    assert reference_fcs16(wire[1:-3]).to_bytes(2, "little") == wire[-3:-1]
    assert fcs16(wire[1:-3]) == reference_fcs16(wire[1:-3])


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "address"),
    [
        ("21", HdlcAddress(16)),
        ("03", HdlcAddress(1)),
        ("0223", HdlcAddress(1, 17)),
        ("00020023", HdlcAddress(1, 17, 4)),
        ("00020cc5", HdlcAddress(1, 866)),
        ("fefefeff", HdlcAddress(0x3FFF, 0x3FFF, 4)),
        ("ff", HdlcAddress(0x7F)),
    ],
)
def test_address_both_ways(wire: str, address: HdlcAddress) -> None:
    raw = bytes.fromhex(wire)
    assert HdlcAddress.from_bytes(raw) == address
    assert address.to_bytes() == raw


def test_address_rules() -> None:
    assert HdlcAddress(1, 17).length == 2
    assert HdlcAddress(1, 866).length == 4
    assert HdlcAddress(1, 17).matches(HdlcAddress(1, 17, 4))
    assert not HdlcAddress(1, 17).matches(HdlcAddress(1))
    assert HdlcAddress(0x7F).is_all_station
    assert HdlcAddress(0x3FFF, 5, 4).is_all_station
    assert str(HdlcAddress(16)) == "0x10"
    assert str(HdlcAddress(1, 17)) == "1/17"
    for bad in (
        lambda: HdlcAddress(128),
        lambda: HdlcAddress(1, 200, 2),
        lambda: HdlcAddress(1, 17, 3),
        lambda: HdlcAddress(1, None, 2),
        lambda: HdlcAddress(0x4000, 1),
        lambda: HdlcAddress(-1),
    ):
        with pytest.raises(LocalProtocolError):
            bad()


@pytest.mark.parametrize(
    ("wire", "why"),
    [("000001", "3-byte"), ("0000000001", "longer than 4"), ("0000", "ends inside"), ("", "ends inside")],
)
def test_address_malformed(wire: str, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        decode_address(bytes.fromhex(wire), 0)
    with pytest.raises(FrameError):
        HdlcAddress.from_bytes(bytes.fromhex(wire))


def test_address_trailing_bytes() -> None:
    with pytest.raises(FrameError, match="after the HDLC address"):
        HdlcAddress.from_bytes(b"\x21\x03")


# --- frames both ways ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_both_ways(name: str) -> None:
    kind, dst, src, pf, ns, nr, seg, info_len = VECTORS[name]
    wire = WIRE[name]
    frame = HdlcFrame.from_bytes(wire)
    assert (frame.kind, frame.destination, frame.source) == (kind, dst, src)
    assert (frame.poll_final, frame.send_sequence_number, frame.receive_sequence_number) == (pf, ns, nr)
    assert (frame.segmented, len(frame.information)) == (seg, info_len)
    assert frame.to_bytes() == wire
    rebuilt = HdlcFrame(kind, dst, src, pf, ns, nr, frame.information, seg)
    assert rebuilt == frame
    assert rebuilt.to_bytes() == wire


@pytest.mark.parametrize("name", [HAN_PUSH_NAME])
def test_long_ui_frame_both_ways(name: str) -> None:
    frame = HdlcFrame.from_bytes(HAN_PUSH)
    assert frame.kind is FrameKind.UI
    assert frame.poll_final
    assert not frame.segmented
    assert len(HAN_PUSH) - 2 == 0x243  # the 11-bit length uses the upper length bits
    assert frame.destination == HdlcAddress(0x20)
    assert frame.source == HdlcAddress(4, 65)
    assert strip_llc_header(frame.information)[:6] == bytes.fromhex("0f4000000000")
    assert frame.to_bytes() == HAN_PUSH


def test_control_fields() -> None:
    cases = {
        FrameKind.I: 0x10 | (5 << 5) | (3 << 1),
        FrameKind.RR: 0x11 | (5 << 5),
        FrameKind.RNR: 0x15 | (5 << 5),
        FrameKind.REJ: 0x19 | (5 << 5),
        FrameKind.SNRM: 0x93,
        FrameKind.DISC: 0x53,
        FrameKind.UA: 0x73,
        FrameKind.DM: 0x1F,
        FrameKind.FRMR: 0x97,
        FrameKind.UI: 0x13,
    }
    for kind, control in cases.items():
        info = b"\xe6\xe6\x00x" if kind in (FrameKind.I, FrameKind.UI) else b""
        frame = HdlcFrame(kind, S1_17, C16, True, 3, 5, info)
        assert frame.control == control, kind
        decoded = HdlcFrame.from_bytes(frame.to_bytes())
        assert decoded.kind is kind
        assert decoded.poll_final
        if kind.carries_receive_sequence:
            assert decoded.receive_sequence_number == 5
        assert kind.is_information == (kind is FrameKind.I)
        assert kind.is_supervisory == (kind in (FrameKind.RR, FrameKind.RNR, FrameKind.REJ))


def test_to_bytes_rejects_bad_fields() -> None:
    with pytest.raises(LocalProtocolError, match="modulo 8"):
        HdlcFrame(FrameKind.I, S1_17, C16, True, 8, 0, b"x").to_bytes()
    with pytest.raises(LocalProtocolError, match="11-bit"):
        HdlcFrame(FrameKind.I, S1_17, C16, True, 0, 0, bytes(2038)).to_bytes()
    # the largest information field that fits with a 2-byte server address
    assert len(HdlcFrame(FrameKind.I, S1_17, C16, True, 0, 0, bytes(2047 - 10)).to_bytes()) == 2049


# --- negative frames -------------------------------------------------------------------------

GOOD = WIRE["HDLC I-frame carrying AARQ (no security)"]
SNRM = WIRE["HDLC SNRM (2-byte server address)"]


def _with_fcs(body: bytes) -> bytes:
    return b"\x7e" + body + fcs16_bytes(body) + b"\x7e"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (GOOD[:-1], "flags"),
        (GOOD[1:], "flags"),
        (GOOD[:8] + b"\x7e", "length"),
        (b"\x7e\xa0\x07\x7e", "truncated"),
        (b"", "truncated"),
        (GOOD[:20] + bytes([GOOD[20] ^ 0x40]) + GOOD[21:], "FCS"),
        (GOOD[:5] + bytes([GOOD[5] ^ 0x10]) + GOOD[6:], "HCS"),
        (GOOD[:-3] + bytes([GOOD[-3] ^ 1]) + GOOD[-2:], "FCS"),
        (SNRM[:-3] + bytes([SNRM[-3] ^ 1]) + SNRM[-2:], "FCS"),
        (b"\x7e\x90" + GOOD[2:], "format type"),
        (b"\x7e\xb0" + GOOD[2:], "format type"),
        (b"\x7e\xa0\x2d" + GOOD[3:], "length"),
        (_with_fcs(b"\xa0\x09\x00\x00\x01\x21\x93"), "3-byte"),
        (_with_fcs(b"\xa0\x0b\x00\x00\x00\x00\x01\x21\x93"), "longer than 4"),
        (_with_fcs(b"\xa0\x07\x02\x23\x21"), "before its control"),
    ],
)
def test_negative_frames(wire: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        HdlcFrame.from_bytes(wire)


def test_frame_with_hcs_but_empty_information_is_refused() -> None:
    header = b"\xa0\x0a\x02\x23\x21\x93"
    body = header + fcs16_bytes(header)
    with pytest.raises(FrameError, match="information field missing"):
        HdlcFrame.from_bytes(_with_fcs(body))


def test_undefined_control_field_is_remote_protocol_error() -> None:
    body = b"\xa0\x07\x03\x21\x0d"  # 0x0D: SREJ, not part of IEC 62056-46
    with pytest.raises(RemoteProtocolError, match="undefined HDLC control"):
        HdlcFrame.from_bytes(_with_fcs(body))
    body = b"\xa0\x07\x03\x21\x2f"  # SABM, not part of IEC 62056-46
    with pytest.raises(RemoteProtocolError):
        HdlcFrame.from_bytes(_with_fcs(body))


# --- LLC ---------------------------------------------------------------------------------------


def test_llc_header() -> None:
    assert add_llc_header(b"\xc0\x01", Role.CLIENT) == b"\xe6\xe6\x00\xc0\x01"
    assert add_llc_header(b"\xc4\x01", Role.SERVER) == b"\xe6\xe7\x00\xc4\x01"
    assert strip_llc_header(b"\xe6\xe7\x00\xc4") == b"\xc4"
    assert strip_llc_header(b"\xe6\xe6\x00") == b""
    for bad in (b"", b"\xe6\xe6", b"\xe7\xe6\x00", b"\xe6\x00\x00\x01"):
        with pytest.raises(RemoteProtocolError, match="LLC"):
            strip_llc_header(bad)


# --- splitter ----------------------------------------------------------------------------------


def split_all(data: bytes, chunks: list[bytes] | None = None, **kwargs: int) -> list[bytes | DiscardedBytes]:
    splitter = HdlcFrameSplitter(**kwargs)
    out: list[bytes | DiscardedBytes] = []
    for chunk in chunks if chunks is not None else [data]:
        splitter.feed(chunk)
        out.extend(splitter)
    return out


FRAMES = [WIRE[name] for name in sorted(WIRE) if name != HAN_PUSH_NAME] + [HAN_PUSH]


def test_splitter_separate_and_shared_flags() -> None:
    separate = b"".join(FRAMES)
    shared = FRAMES[0] + b"".join(f[1:] for f in FRAMES[1:])
    assert split_all(separate) == FRAMES
    assert split_all(shared) == FRAMES
    idle = b"\x7e\x7e\x7e" + b"\x7e\x7e".join(FRAMES)
    assert split_all(idle) == FRAMES


def test_splitter_leading_garbage_is_reported() -> None:
    garbage = b"\x00\x01NOISE\xa0\x13"
    assert split_all(garbage + FRAMES[0]) == [DiscardedBytes(garbage), FRAMES[0]]
    # an echo of our own partial frame, then the answer
    assert split_all(FRAMES[1][5:] + FRAMES[2]) == [DiscardedBytes(FRAMES[1][5:-1]), FRAMES[2]]


def test_splitter_false_starts_resynchronise() -> None:
    frame = FRAMES[3]
    cases = [
        b"\x7e\x55" + frame,  # flag followed by a non-type-3 byte
        b"\x7e\xa7\xff" + frame,  # length beyond the limit
        b"\x7e\xa0\x03" + frame,  # length below the minimum
        b"\x7e\xa0\x40\x00\x00\x00\x00\x00" + frame,  # address without end
        b"\x7e\xa0\x40\x00\x00\x01\x21" + frame,  # 3-byte address
        b"\x7e\xa0\x40\x03\x21\x10\x00\x00" + frame,  # bad HCS
        b"\x7e\xa0\x0b\x03\x21\x10" + frame,  # room for an HCS, none for information
    ]
    for data in cases:
        items = split_all(data)
        assert items[-1] == frame, data.hex()
        assert all(isinstance(item, DiscardedBytes) for item in items[:-1])


def test_splitter_missing_closing_flag() -> None:
    good = FRAMES[0]
    broken = good[:-1] + b"\x00"  # closing flag replaced
    items = split_all(broken + good)
    assert items[-1] == good
    assert b"".join(i.data for i in items[:-1] if isinstance(i, DiscardedBytes)) == broken[1:]


def test_splitter_bounds() -> None:
    items = split_all(bytes(1000) + FRAMES[0], max_garbage=256)
    assert [len(i.data) for i in items if isinstance(i, DiscardedBytes)] == [256, 256, 256, 232]
    assert items[-1] == FRAMES[0]
    splitter = HdlcFrameSplitter(max_garbage=64)
    splitter.feed(bytes(63))
    assert splitter.next() is NEED_DATA
    assert splitter.buffered == 63
    splitter.feed(b"\x00")
    assert splitter.next() == DiscardedBytes(bytes(64))
    # a frame longer than max_frame_length is refused at its header
    assert split_all(HAN_PUSH, max_frame_length=300)[-1] != HAN_PUSH
    with pytest.raises(LocalProtocolError):
        HdlcFrameSplitter(max_frame_length=3)
    with pytest.raises(LocalProtocolError):
        HdlcFrameSplitter(max_garbage=0)


def test_splitter_needs_data_until_complete() -> None:
    splitter = HdlcFrameSplitter()
    frame = FRAMES[1]
    for byte in frame[:-1]:
        splitter.feed(bytes((byte,)))
        assert splitter.next() is NEED_DATA
    splitter.feed(frame[-1:])
    assert splitter.next() == frame
    assert splitter.next() is NEED_DATA
    assert splitter.buffered == 1


STREAM = (
    b"\x00garbage"
    + FRAMES[0]
    + FRAMES[1][1:]
    + b"\x7e\x7e\x7e\xa7\xff\x01"
    + FRAMES[2]
    + bytes(300)
    + HAN_PUSH
    + FRAMES[4][:-3]
    + b"\x00\x00\x7e"
    + FRAMES[5]
)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_splitter_chunking_invariance(data: st.DataObject) -> None:
    whole = split_all(STREAM)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(STREAM) - 1), max_size=40)))
    bounds = [0, *cuts, len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert split_all(STREAM, chunks) == whole


def test_splitter_byte_by_byte_is_identical() -> None:
    whole = split_all(STREAM)
    assert split_all(STREAM, [bytes((b,)) for b in STREAM]) == whole
    assert HAN_PUSH in whole
    assert FRAMES[5] in whole


# --- fuzz: only RemoteProtocolError, and fast -------------------------------------------------


def _mutations(rng: random.Random, frame: bytes, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(frame)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[pos % len(data)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data.insert(pos, rng.randrange(256))
            elif op == 2 and data:
                del data[pos % len(data)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        out.append(bytes(data))
    return out


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
def test_fuzz_from_bytes_and_splitter() -> None:
    rng = random.Random(62056)
    inputs = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))) for _ in range(800)]
    inputs += [
        b"\x7e\xa0" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))) + b"\x7e"
        for _ in range(400)
    ]
    for frame in FRAMES:
        inputs += _mutations(rng, frame, 150)
    accepted = 0
    for data in inputs:
        try:
            decoded = HdlcFrame.from_bytes(data)
            accepted += 1
            assert decoded.to_bytes() == data
        except RemoteProtocolError:
            pass
        assert_fast(lambda data=data: (_decode_quietly(data), split_all(data)))
    assert accepted < len(inputs) // 10


def _decode_quietly(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        HdlcFrame.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_hypothesis_from_bytes(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        HdlcFrame.from_bytes(data)
    for _item in split_all(data):
        pass

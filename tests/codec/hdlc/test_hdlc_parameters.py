"""SNRM/UA parameter negotiation (IEC 62056-46 6.4.4.4.3.2): vectors, defaults, quirks, negotiation.

Vector provenance: /work/shared/reference/dlms-vectors.json (the vector name is the test id).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.codec.hdlc import HdlcFrame, HdlcParameters
from metercom.errors import LocalProtocolError, RemoteProtocolError

UA_VECTORS = {
    "HDLC UA with negotiated parameters": (
        "7ea01f21022373e6c781801205019a06019a070400000001080400000001cca27e",
        HdlcParameters(154, 154, 1, 1),
    ),
    "HDLC UA with 4-byte server address": (
        "7ea023030002002373c0488180140502008006020080070400000001080400000001ce6a7e",
        HdlcParameters(128, 128, 1, 1),
    ),
    "HDLC UA without information field (Pietro Fiorentini local port)": (
        "7ea00721037301407e",
        HdlcParameters(),
    ),
    "HDLC SNRM (2-byte server address)": ("7ea00802232193bd647e", HdlcParameters()),
    "HDLC SNRM without parameters (gurux-dlms client)": ("7ea0070321930f017e", HdlcParameters()),
}

GURUX_UA = "7ea01e210373c37a81800005018006018007040000000108040002000161dc7e"


@pytest.mark.parametrize("name", sorted(UA_VECTORS))
def test_parameter_vectors_both_ways(name: str) -> None:
    wire, expected = UA_VECTORS[name]
    info = HdlcFrame.from_bytes(bytes.fromhex(wire)).information
    decoded = HdlcParameters.from_bytes(info)
    assert decoded == expected
    if info:
        assert decoded.to_bytes() == info  # widths as received: 1-byte 154, 2-byte 0x0080, 4-byte windows
        assert HdlcParameters.from_bytes(info, strict=True) == expected


@pytest.mark.parametrize("name", ["NEGATIVE: malformed UA from gurux-dlms 1.0.203 server"])
def test_gurux_malformed_ua(name: str) -> None:
    info = HdlcFrame.from_bytes(bytes.fromhex(GURUX_UA)).information
    assert info[2] == 0  # group length written to the wrong place
    with pytest.raises(RemoteProtocolError):
        HdlcParameters.from_bytes(info, strict=True)
    # Tolerant (default): group runs to the end, window size receive 00020001 -> 00000001.
    assert HdlcParameters.from_bytes(info) == HdlcParameters(128, 128, 1, 1)


def test_canonical_encoding() -> None:
    assert HdlcParameters().to_bytes().hex() == "818012050180060180070400000001080400000001"
    assert HdlcParameters(512, 2030, 7, 3).to_bytes().hex() == (
        "81801405020200060207ee070400000007080400000003"
    )
    assert HdlcParameters().is_default
    assert not HdlcParameters(window_receive=7).is_default


@given(
    st.integers(32, 2030),
    st.integers(32, 2030),
    st.integers(1, 7),
    st.integers(1, 7),
)
def test_round_trip(tx: int, rx: int, wtx: int, wrx: int) -> None:
    params = HdlcParameters(tx, rx, wtx, wrx)
    assert HdlcParameters.from_bytes(params.to_bytes(), strict=True) == params


def test_partial_group_uses_defaults() -> None:
    assert HdlcParameters.from_bytes(bytes.fromhex("8180030601ff")) == HdlcParameters(max_info_receive=255)
    assert HdlcParameters.from_bytes(bytes.fromhex("818000")) == HdlcParameters()
    assert HdlcParameters.from_bytes(bytes.fromhex("8180070702000708010299")) == HdlcParameters(
        window_transmit=7, window_receive=2
    )


def test_tolerance() -> None:
    # Too large: lowered to the maximum (safe); unknown parameter: skipped; bytes after the group: ignored.
    info = bytes.fromhex("81801305020fff060400001000070109080109" + "0901ff") + b"\x00"
    info = bytes((0x81, 0x80, len(info) - 4)) + info[3:]
    assert HdlcParameters.from_bytes(info) == HdlcParameters(2030, 2030, 7, 7)
    with pytest.raises(RemoteProtocolError):
        HdlcParameters.from_bytes(info, strict=True)


@pytest.mark.parametrize(
    ("hexed", "message"),
    [
        ("81", "shorter"),
        ("828003050180", "format identifier"),
        ("818103050180", "group identifier"),
        ("818009050180", "only 3 bytes"),
        ("81800105", "cut off"),
        ("818003050580", "announces 5 bytes"),
        ("818005050300001f", "3-byte value"),
        ("8180030501" + "10", "outside 32..2030"),
        ("8180030701" + "00", "outside 1..7"),
    ],
)
def test_malformed(hexed: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        HdlcParameters.from_bytes(bytes.fromhex(hexed))


def test_strict_rejects_unknown_and_trailing() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown"):
        HdlcParameters.from_bytes(bytes.fromhex("8180030901ff"), strict=True)
    with pytest.raises(RemoteProtocolError, match="after the HDLC parameter group"):
        HdlcParameters.from_bytes(bytes.fromhex("81800005018000"), strict=True)


def test_negotiation() -> None:
    server = HdlcParameters(512, 256, 7, 3)
    proposal = HdlcParameters(1024, 128, 2, 7)  # client: sends up to 1024, receives up to 128
    answer = server.negotiate(proposal)
    # The server sends at most what the client can receive and receives at most what it can.
    assert answer == HdlcParameters(128, 256, 7, 2)
    client_view = answer.limit_to(proposal)
    assert client_view == HdlcParameters(256, 128, 2, 7)
    assert client_view == answer.as_seen_by_peer()
    # A UA above what we proposed is limited to our proposal.
    assert HdlcParameters(2030, 2030, 7, 7).limit_to(HdlcParameters()) == HdlcParameters()


def test_invalid_local_values() -> None:
    for values in ((31, 128, 1, 1), (128, 2031, 1, 1), (128, 128, 0, 1), (128, 128, 1, 8)):
        with pytest.raises(LocalProtocolError):
            HdlcParameters(*values)

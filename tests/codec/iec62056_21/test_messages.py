"""IEC 62056-21 messages: vectors both ways, reject vectors, BCC vectors (protocols.md 1.3-1.5).

Provenance: BCC vectors of protocols.md 1.5 (computed there; P0 and W2 match pwitab's tests);
the 5- and 19-line readouts of 1.11; identifications from the 1.12 catalogue (pwitab #14, #33,
u9n/dlms-cosem #37, piggymeter_esphome_yaml #4, vzlogger tests); ``06 32 35 32 0D 0A`` from the
dlms.com/CSDN mode E example.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    SAMPLE_READOUT_BYTES,
    SAMPLE_READOUT_FULL,
    SAMPLE_READOUT_FULL_BYTES,
    SAMPLE_REQUEST,
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandId,
    CommandMessage,
    DataMessage,
    IdentificationMessage,
    Nak,
    ProtocolMode,
    RequestMessage,
    WakeUp,
    bcc,
    error_text,
)
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

# -- BCC (protocols.md 1.5) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param(b"\x01P0\x02(1234567)\x03", 0x50, id="P0 operand -> 'P' (pwitab tests)"),
        pytest.param(b"\x01W2\x02C003(910324092239)\x03", 0x1B, id="W2 formatted write (pwitab tests)"),
        pytest.param(b"\x01B0\x03", 0x71, id="break -> 'q'"),
        pytest.param(b"\x01P1\x02(00000000)\x03", 0x61, id="P1 default password -> 'a'"),
        pytest.param(b"\x01R1\x021.8.0()\x03", 0x5A, id="R1 1.8.0() -> 'Z'"),
        pytest.param(SAMPLE_READOUT_BYTES[:-1], 0x74, id="5-line readout -> 't'"),
        pytest.param(SAMPLE_READOUT_FULL_BYTES[:-1], 0x2D, id="19-line readout -> '-'"),
    ],
)
def test_bcc_vectors(frame: bytes, expected: int) -> None:
    assert bcc(frame[1:]) == expected  # the leading SOH/STX is not part of the BCC
    assert bcc(frame[1:] + bytes((expected,))) == 0  # XOR including the BCC itself cancels


def test_bcc_is_seven_bit() -> None:
    assert bcc(b"\xff") == 0x7F
    assert bcc(b"") == 0


def test_sample_readout_is_the_worked_example() -> None:
    assert len(SAMPLE_READOUT_BYTES) == 112
    assert SAMPLE_READOUT_BYTES[0] == 0x02
    assert SAMPLE_READOUT_BYTES.endswith(b"!\r\n\x03t")
    assert SAMPLE_READOUT_BYTES.startswith(b"\x020.0.0(EM72000656621)\r\n0.9.1(172751)\r\n")
    assert b"1.6.0(18014*kW)(10-02-01 00:15)\r\n" in SAMPLE_READOUT_BYTES
    assert len(SAMPLE_READOUT_FULL_BYTES) == 416
    assert SAMPLE_READOUT_FULL_BYTES[-1] == 0x2D
    assert len(SAMPLE_READOUT_FULL.datasets) == 19
    assert SAMPLE_IDENTIFICATION.to_bytes() == b"/LTT597705377\r\n"
    assert SAMPLE_REQUEST.to_bytes() == bytes.fromhex("2F 3F 31 21 0D 0A")


# -- vectors both ways ---------------------------------------------------------------------------

VECTORS = [
    (b"/?!\r\n", RequestMessage()),
    (b"/?1!\r\n", RequestMessage("1")),
    (b"/?12345678!\r\n", RequestMessage("12345678")),
    (b"/?" + b"9" * 32 + b"!\r\n", RequestMessage("9" * 32)),
    (b"/LTT597705377\r\n", IdentificationMessage("LTT", "5", "97705377")),
    (b"/ISk5MT174-0001\r\n", IdentificationMessage("ISk", "5", "MT174-0001")),
    (b"/LGZ4\\2ZMD120APt.G03\r\n", IdentificationMessage("LGZ", "4", "ZMD120APt.G03", "2")),
    (b"/APA5\\2NORAX30\r\n", IdentificationMessage("APA", "5", "NORAX30", "2")),
    (b"/KAM 685-382-QR-10\r\n", IdentificationMessage("KAM", " ", "685-382-QR-10")),
    (b"/ACE03k260V01.19\r\n", IdentificationMessage("ACE", "0", "3k260V01.19")),
    (b"/EHZE\r\n", IdentificationMessage("EHZ", "E", "")),
    (bytes.fromhex("06 30 35 30 0D 0A"), AckOptionSelect("0", "5", "0")),
    (bytes.fromhex("06 30 35 31 0D 0A"), AckOptionSelect.programming("5")),
    (bytes.fromhex("06 32 35 32 0D 0A"), AckOptionSelect.binary("5")),
    (b"\x06", Ack()),
    (b"\x15", Nak()),
    (bytes(65), WakeUp()),
    (SAMPLE_READOUT_BYTES, SAMPLE_READOUT),
    (SAMPLE_READOUT_FULL_BYTES, SAMPLE_READOUT_FULL),
    (b"\x02" + b"1.8.0(1)!\r\n\x03" + bytes((bcc(b"1.8.0(1)!\r\n\x03"),)), DataMessage("1.8.0(1)")),
    (b"\x02" + b"1.8.0(1)\r\n!\x03" + bytes((bcc(b"1.8.0(1)\r\n!\x03"),)), DataMessage("1.8.0(1)\r\n", "!")),
    (b"\x02" + b"1.8.0(1)\r\n\x03" + bytes((bcc(b"1.8.0(1)\r\n\x03"),)), DataMessage("1.8.0(1)\r\n", "")),
    (b"\x01P0\x02(1234567)\x03P", CommandMessage.password_request("1234567")),
    (b"\x01W2\x02C003(910324092239)\x03\x1b", CommandMessage("W", "2", "C003(910324092239)")),
    (b"\x01B0\x03q", CommandMessage.sign_off()),
    (b"\x01P1\x02(00000000)\x03a", CommandMessage.password("00000000")),
    (b"\x01R1\x021.8.0()\x03Z", CommandMessage.read("1.8.0")),
    (
        b"\x01W1\x020.9.1(172751)\x03" + bytes((bcc(b"W1\x020.9.1(172751)\x03"),)),
        CommandMessage.write("0.9.1", "172751"),
    ),
    (
        b"\x01W3\x02row(1)\x04" + bytes((bcc(b"W3\x02row(1)\x04"),)),
        CommandMessage("W", "3", "row(1)", partial=True),
    ),
    (
        b"\x021.8.0(343642.9*kWh)\x03" + bytes((bcc(b"1.8.0(343642.9*kWh)\x03"),)),
        AnswerMessage("1.8.0(343642.9*kWh)"),
    ),
    (b"\x02(1)(2)\x04" + bytes((bcc(b"(1)(2)\x04"),)), AnswerMessage("(1)(2)", partial=True)),
    (b"\x02(ERROR)\x03" + bytes((bcc(b"(ERROR)\x03"),)), AnswerMessage("(ERROR)")),
]


@pytest.mark.parametrize(("wire", "message"), VECTORS, ids=lambda v: repr(v)[:40])
def test_vectors_both_ways(wire: bytes, message: object) -> None:
    cls = type(message)
    assert cls.from_bytes(wire) == message  # type: ignore[attr-defined]
    assert message.to_bytes() == wire  # type: ignore[attr-defined]


def test_break_and_p0_literal_bytes() -> None:
    assert CommandMessage.sign_off().to_bytes() == bytes.fromhex("01 42 30 03 71")
    assert CommandMessage.sign_off(fast_wake_up=True).to_bytes()[:3] == b"\x01B1"


# -- reject vectors ------------------------------------------------------------------------------

REJECTS = [
    # (class, wire, exception)
    (DataMessage, SAMPLE_READOUT_BYTES[:-1] + b"u", FrameError),  # bad BCC
    (DataMessage, SAMPLE_READOUT_BYTES[:-2], RemoteProtocolError),  # truncated: no ETX/BCC
    (DataMessage, SAMPLE_READOUT_BYTES[:-1], RemoteProtocolError),  # truncated: no BCC
    (DataMessage, b"\x01" + SAMPLE_READOUT_BYTES[1:], RemoteProtocolError),  # wrong leading char
    (DataMessage, SAMPLE_READOUT_BYTES + b"x", RemoteProtocolError),  # trailing byte
    (DataMessage, b"\x02(1)\x04" + bytes((bcc(b"(1)\x04"),)), RemoteProtocolError),  # EOT in readout
    (DataMessage, b"\x02a!b\x03" + bytes((bcc(b"a!b\x03"),)), RemoteProtocolError),  # text after '!'
    (DataMessage, b"\x02", RemoteProtocolError),
    (CommandMessage, b"\x01B0\x03r", FrameError),
    (CommandMessage, b"\x01B0\x03", RemoteProtocolError),
    (CommandMessage, b"\x02B0\x03q", RemoteProtocolError),
    (CommandMessage, b"\x01X0\x03" + bytes((bcc(b"X0\x03"),)), RemoteProtocolError),  # unknown C
    (CommandMessage, b"\x01RX\x03" + bytes((bcc(b"RX\x03"),)), RemoteProtocolError),  # D not a digit
    (CommandMessage, b"\x01R\x03" + bytes((bcc(b"R\x03"),)), RemoteProtocolError),  # no D
    (CommandMessage, b"\x01R1x\x03" + bytes((bcc(b"R1x\x03"),)), RemoteProtocolError),  # no STX
    (CommandMessage, b"\x01B0\x04" + bytes((bcc(b"B0\x04"),)), RemoteProtocolError),  # EOT no data
    (CommandMessage, b"\x01R1\x02a\x02b\x03" + bytes((bcc(b"R1\x02a\x02b\x03"),)), RemoteProtocolError),
    (AnswerMessage, b"\x02(1)\x03\x00", FrameError),
    (AnswerMessage, b"\x02(1)\x03(1)\x03", RemoteProtocolError),
    (AnswerMessage, b"\x02\xb1\x03" + bytes((bcc(b"\xb1\x03"),)), RemoteProtocolError),  # bit 7
    (RequestMessage, b"/?!\r", RemoteProtocolError),
    (RequestMessage, b"/?\r\n", RemoteProtocolError),
    (RequestMessage, b"/LTT5\r\n", RemoteProtocolError),
    (RequestMessage, b"/?" + b"1" * 33 + b"!\r\n", RemoteProtocolError),  # address too long
    (RequestMessage, b"/?a/b!\r\n", RemoteProtocolError),
    (RequestMessage, bytes.fromhex("AF 3F 21 8D 0A"), RemoteProtocolError),  # parity bits
    (IdentificationMessage, b"/LTT\r\n", RemoteProtocolError),  # no Z
    (IdentificationMessage, b"/?!\r\n", RemoteProtocolError),
    (IdentificationMessage, b"LTT597705377\r\n", RemoteProtocolError),
    (IdentificationMessage, b"/LTT597705377", RemoteProtocolError),
    (IdentificationMessage, b"/LTT5" + b"x" * 33 + b"\r\n", RemoteProtocolError),
    (IdentificationMessage, b"/LT-5abc\r\n", RemoteProtocolError),
    (IdentificationMessage, b"/LTT5a!b\r\n", RemoteProtocolError),
    (IdentificationMessage, b"/LTT5a\rb\r\n", RemoteProtocolError),
    (AckOptionSelect, bytes.fromhex("06 30 35 30 0D"), RemoteProtocolError),
    (AckOptionSelect, b"\x060A0\r\n", RemoteProtocolError),
    (AckOptionSelect, b"\x150500\r\n"[:6], RemoteProtocolError),
    (Ack, b"\x15", RemoteProtocolError),
    (Nak, b"\x06", RemoteProtocolError),
    (Nak, b"", RemoteProtocolError),
    (WakeUp, b"\x00\x01", RemoteProtocolError),
    (WakeUp, b"", RemoteProtocolError),
]


@pytest.mark.parametrize(("cls", "wire", "error"), REJECTS, ids=lambda v: repr(v)[:40])
def test_reject_vectors(cls: type, wire: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        cls.from_bytes(wire)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.layer == "iec62056-21"


def test_bcc_error_message_says_expected_and_received() -> None:
    with pytest.raises(FrameError, match=r"expected 0x74, received 0x75"):
        DataMessage.from_bytes(SAMPLE_READOUT_BYTES[:-1] + b"u")


def test_parity_hint_in_error() -> None:
    with pytest.raises(RemoteProtocolError, match="software_parity"):
        IdentificationMessage.from_bytes(b"/LTT5\xb8\r\n")


@pytest.mark.parametrize(
    "build",
    [
        lambda: RequestMessage("x" * 33),
        lambda: RequestMessage("a!"),
        lambda: IdentificationMessage("LT", "5"),
        lambda: IdentificationMessage("LTT", "55"),
        lambda: IdentificationMessage("LTT", "/"),
        lambda: IdentificationMessage("LTT", "5", "a/b"),
        lambda: IdentificationMessage("LTT", "5", enhanced="x"),
        lambda: AckOptionSelect("0", "A", "0"),
        lambda: CommandMessage("Q", "1"),
        lambda: CommandMessage("R", "11"),
        lambda: CommandMessage("W", "3", None, partial=True),
        lambda: CommandMessage("R", "1", "a\x03b"),
        lambda: DataMessage("a!b"),
        lambda: DataMessage("a", terminator="?"),
        lambda: DataMessage("\u00e9"),
        lambda: AnswerMessage("\x04"),
        lambda: WakeUp(0),
    ],
)
def test_illegal_fields_raise_local_protocol_error(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# -- identification properties (protocols.md 1.2, 1.4, 1.6) -------------------------------------


@pytest.mark.parametrize(
    ("wire", "mode", "baud", "reaction"),
    [
        (b"/LTT597705377\r\n", ProtocolMode.C, 9600, 0.2),
        (b"/ISk5MT174-0001\r\n", ProtocolMode.C, 9600, 0.02),
        (b"/LGZ4\\2ZMD120APt.G03\r\n", ProtocolMode.E, 4800, 0.2),
        (b"/KAM 685-382-QR-10\r\n", ProtocolMode.A, 300, 0.2),
        (b"/ACE03k260V01.19\r\n", ProtocolMode.C, 300, 0.2),
        (b"/EHZA1\r\n", ProtocolMode.B, 600, 0.2),  # mode B 'A' is 600 Bd, not 300
        (b"/EHZF1\r\n", ProtocolMode.B, 19200, 0.2),
        (b"/EHZG1\r\n", ProtocolMode.B, None, 0.2),  # reserved
        (b"/ABC6x\r\n", ProtocolMode.C, 19200, 0.2),
        (b"/ABC7x\r\n", ProtocolMode.C, None, 0.2),  # reserved
        (b"/ABC5\\1x\r\n", ProtocolMode.C, 9600, 0.2),  # \W other than 2: no mode E
        (b"/ABC5\\x\r\n", ProtocolMode.C, 9600, 0.2),  # backslash without digit stays in the ident
    ],
)
def test_identification_properties(
    wire: bytes, mode: ProtocolMode, baud: int | None, reaction: float
) -> None:
    ident = IdentificationMessage.from_bytes(wire)
    assert ident.protocol_mode is mode
    assert ident.max_baud_rate == baud
    assert ident.reaction_time_s == reaction
    assert ident.to_bytes() == wire


def test_identification_without_enhanced_keeps_every_character() -> None:
    # pwitab #14: a parser assuming \W made MT174-0001 into T174-0001.
    ident = IdentificationMessage.from_bytes(b"/ISk5MT174-0001\r\n")
    assert ident.ident == "MT174-0001"
    assert ident.enhanced is None
    assert not ident.binary_mode_available
    assert IdentificationMessage.from_bytes(b"/ABC5\\x\r\n").ident == "\\x"


def test_option_select_helpers() -> None:
    assert AckOptionSelect.readout("5").baud_rate == 9600
    assert AckOptionSelect.readout().baud_rate == 300
    assert AckOptionSelect("0", "7", "0").baud_rate is None


def test_command_helpers_and_repr_hides_passwords() -> None:
    p1 = CommandMessage.password("secret99")
    assert p1.operand == "secret99"
    assert "secret99" not in repr(p1)
    assert "secret99" not in repr(CommandMessage.password("secret99", secure_result=True))
    assert "1234567" in repr(CommandMessage.password_request("1234567"))
    assert CommandMessage.read("1.8.0").data == "1.8.0()"
    assert CommandMessage.read("P.01", "1;2", command_type="3").to_bytes().startswith(b"\x01R3\x02P.01(1;2)")
    assert CommandMessage.execute("X(1)").command_type == "2"
    assert CommandMessage.sign_off().is_break
    assert CommandMessage.sign_off().operand is None
    assert CommandMessage("E", "2", "abc").operand == "abc"
    assert set(CommandId.TYPES) == {"P", "W", "R", "E", "B"}
    # reserved/national-use types stay legal on the wire (EMH R5/W5)
    assert CommandMessage.from_bytes(CommandMessage("R", "5", "1.8.0()").to_bytes()).command_type == "5"


def test_wake_up_for_baud_rate() -> None:
    assert WakeUp.for_baud_rate(300).count == 66  # 2.2 s at 300 Bd
    assert WakeUp.for_baud_rate(300, 2.17).count == 66
    assert WakeUp.for_baud_rate(9600).count == 2112


def test_error_text() -> None:
    assert error_text("(ERROR)") == "ERROR"
    assert error_text("(ERR12)\r\n") == "ERR12"
    assert error_text("(#0015)") == "#0015"  # Elster LIS-200
    assert error_text("(12.5*kWh)") is None
    assert error_text("1.8.0(ERROR)") is None
    assert error_text("(a)(b)") is None
    assert AnswerMessage("(ERROR)").error_text == "ERROR"


# -- properties ------------------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F, exclude_characters="\x01\x02\x03\x04")
)


@given(data=_text, partial=st.booleans())
def test_answer_round_trip(data: str, partial: bool) -> None:
    message = AnswerMessage(data, partial)
    assert AnswerMessage.from_bytes(message.to_bytes()) == message


@given(
    command=st.sampled_from("PWREB"),
    kind=st.sampled_from("0123456789"),
    data=st.none() | _text,
    partial=st.booleans(),
)
def test_command_round_trip(command: str, kind: str, data: str | None, partial: bool) -> None:
    partial = partial and data is not None
    message = CommandMessage(command, kind, data, partial)
    assert CommandMessage.from_bytes(message.to_bytes()) == message


@given(
    data=_text.filter(lambda t: "!" not in t), terminator=st.sampled_from(["!\r\n", "!", "!\r", "!\n", ""])
)
def test_data_message_round_trip(data: str, terminator: str) -> None:
    message = DataMessage(data, terminator)
    wire = message.to_bytes()
    decoded = DataMessage.from_bytes(wire)
    assert decoded.to_bytes() == wire
    assert decoded.data + decoded.terminator == data + terminator


@given(
    manufacturer=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3
    ),
    baud=st.sampled_from("0123456789ABCDEFGHI +-_"),
    ident=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/!"), max_size=32
    ),
    enhanced=st.none() | st.sampled_from("0123456789"),
)
def test_identification_round_trip(manufacturer: str, baud: str, ident: str, enhanced: str | None) -> None:
    if enhanced is None and len(ident) >= 2 and ident[0] == "\\" and ident[1].isdigit():
        enhanced, ident = ident[1], ident[2:]  # the wire cannot tell these apart
    message = IdentificationMessage(manufacturer, baud, ident, enhanced)
    assert IdentificationMessage.from_bytes(message.to_bytes()) == message


@given(st.binary(max_size=64))
def test_decoders_raise_only_remote_protocol_errors(data: bytes) -> None:
    for cls in (
        RequestMessage,
        IdentificationMessage,
        AckOptionSelect,
        DataMessage,
        CommandMessage,
        AnswerMessage,
        Ack,
        Nak,
        WakeUp,
    ):
        try:
            message = cls.from_bytes(data)
        except RemoteProtocolError:
            continue
        assert message.to_bytes() == data

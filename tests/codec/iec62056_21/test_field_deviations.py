"""One fixture per row of protocols.md 1.12 "How real meters deviate" (plus 1.9's end mark).

Each test names its source as given there; bytes are rebuilt from the published examples.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from iec21_kit import Line, Meter, drain

from metercom.codec.base import Role
from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    AckOptionSelect,
    AnswerMessage,
    AnswerReceived,
    ChangeBaudRate,
    CommandMessage,
    CommandReceived,
    DataMessage,
    DeviceError,
    HdlcHandover,
    IdentificationMessage,
    IdentificationReceived,
    Iec21Connection,
    OptionSelected,
    ProtocolMode,
    ReadoutReceived,
    RequestMessage,
    RequestReceived,
    State,
    bcc,
    parse_data_line,
)
from metercom.codec.iec62056_21.constants import wire_time_s
from metercom.errors import LocalProtocolError, RemoteProtocolError
from metercom.model.obis import Obis


def readout_bytes(text: str) -> bytes:
    body = text.encode("ascii") + b"\x03"
    return b"\x02" + body + bytes((bcc(body),))


def client_after_ident(ident: bytes) -> Iec21Connection:
    conn = Iec21Connection(Role.CLIENT)
    conn.send(RequestMessage(), now=0.0)
    conn.receive_data(ident, now=0.5)
    return conn


def test_identification_with_and_without_enhanced_id() -> None:
    """pwitab #14 + IdentificationMessage.from_representation: ``/ISk5MT174-0001`` lost its M."""
    conn = client_after_ident(b"/ISk5MT174-0001\r\n")
    event = drain(conn)[0]
    assert isinstance(event, IdentificationReceived)
    assert event.message.ident == "MT174-0001"
    assert event.message.reaction_time_s == 0.02  # lower-case third letter
    assert event.mode is ProtocolMode.C
    conn = client_after_ident(b"/LGZ4\\2ZMD120APt.G03\r\n")
    event = drain(conn)[0]
    assert isinstance(event, IdentificationReceived)
    assert (event.message.enhanced, event.message.ident) == ("2", "ZMD120APt.G03")
    assert event.mode is ProtocolMode.E


def test_offered_baud_not_honoured() -> None:
    """pwitab #33: ``/LGZ4\\2ZMD120APt.G03`` offers 4800 Bd; reading worked only at 300."""
    conn = client_after_ident(b"/LGZ4\\2ZMD120APt.G03\r\n")
    drain(conn)
    conn.send(AckOptionSelect.readout("0"), now=1.0)
    assert drain(conn) == []  # no speed change
    assert conn.baud_rate == 300
    conn.receive_data(SAMPLE_READOUT.to_bytes(), now=2.0)
    assert isinstance(drain(conn)[0], ReadoutReceived)


def test_delay_before_switching() -> None:
    """openHAB docs, vzlogger PR #111: USB adapters need 250-400 ms after the ACK."""
    conn = Iec21Connection(Role.CLIENT, baud_change_delay_s=0.4)
    conn.send(RequestMessage(), now=0.0)
    conn.receive_data(SAMPLE_IDENTIFICATION.to_bytes(), now=0.7)
    drain(conn)
    conn.send(AckOptionSelect.readout("5"), now=1.0)
    assert drain(conn) == [ChangeBaudRate(9600, 1.0 + wire_time_s(6, 300) + 0.4)]


def test_mode_e_needs_v_2() -> None:
    """u9n/dlms-cosem #37: Apator Norax ``/APA5\\2NORAX30`` answered ``ACK 0 5 2`` with a plain readout."""
    # our reader refuses to send the wrong form ...
    conn = client_after_ident(b"/APA5\\2NORAX30\r\n")
    drain(conn)
    with pytest.raises(LocalProtocolError, match="V=2 and Y=2"):
        conn.send(AckOptionSelect("0", "5", "2"), now=1.0)
    assert conn.send(AckOptionSelect.binary("5"), now=1.0) == bytes.fromhex("06 32 35 32 0D 0A")
    assert drain(conn) == [HdlcHandover(9600, 1.0 + wire_time_s(6, 300))]
    # ... and our meter behaves like the Norax when it receives it
    meter = Iec21Connection(Role.SERVER)
    meter.receive_data(b"/?!\r\n", now=0.0)
    drain(meter)
    meter.send(IdentificationMessage("APA", "5", "NORAX30", "2"), now=0.1)
    meter.receive_data(bytes.fromhex("06 30 35 32 0D 0A"), now=1.0)
    events = drain(meter)
    assert isinstance(events[0], OptionSelected)
    assert meter.state is State.SEND_READOUT


def test_transparent_tcp_modem_passes_the_parity_bit() -> None:
    """pwitab #16 (L+G ZMD over TCP): bytes arrive with the even-parity bit in bit 7."""

    def add_parity(data: bytes) -> bytes:
        return bytes(b | (0x80 if b.bit_count() % 2 else 0) for b in data)

    def strip(data: bytes) -> bytes:
        return bytes(b & 0x7F for b in data)

    client = Iec21Connection(Role.CLIENT, software_parity=True)
    assert client.send(RequestMessage(), now=0.0) == bytes.fromhex("AF 3F 21 8D 0A")
    client.reset(now=0.0)
    # the meter side speaks 7E1 to the modem; the TCP side sees 8 bits with parity
    line = Line(client, Iec21Connection(Role.SERVER), Meter())
    line.to_server.extend([strip] * 10)
    line.to_client.extend([add_parity] * 10)
    line.exchange(RequestMessage())
    events = line.exchange(AckOptionSelect.readout("5"))
    assert isinstance(events[1], ReadoutReceived)
    assert events[1].message == SAMPLE_READOUT
    # without the option the reader says what is wrong
    plain = Iec21Connection(Role.CLIENT)
    plain.send(RequestMessage(), now=0.0)
    plain.receive_data(add_parity(SAMPLE_IDENTIFICATION.to_bytes()), now=0.5)
    with pytest.raises(RemoteProtocolError, match="software_parity"):
        drain(plain)


def test_decimal_comma_and_short_codes() -> None:
    """piggymeter_esphome_yaml #4, Kamstrup 685: ``1.6(000007,4*kW)``, ``1.20(0083038*kWh)``."""
    wire = readout_bytes("1.6(000007,4*kW)\r\n1.20(0083038*kWh)\r\n!\r\n")
    conn = Iec21Connection(Role.CLIENT)
    conn.send(RequestMessage(), now=0.0)
    conn.receive_data(b"/KAM 685-382-QR-10\r\n" + wire, now=1.0)
    ident, readout, *_ = drain(conn)
    assert isinstance(ident, IdentificationReceived)
    assert ident.mode is ProtocolMode.A  # Z is a space
    assert isinstance(readout, ReadoutReceived)
    values = [(s.address, s.values[0].number, s.values[0].unit) for s in readout.datasets]
    assert values == [("1.6", Decimal("7.4"), "kW"), ("1.20", Decimal(83038), "kWh")]


def test_unit_inside_the_value() -> None:
    """lvzon notes, Iskra MT171: ``1-0:1.8.1*255(0000000 kWh)``."""
    (data_set,) = parse_data_line("1-0:1.8.1*255(0000000 kWh)")
    assert data_set.obis == Obis(1, 0, 1, 8, 1, 255)
    assert (data_set.values[0].number, data_set.values[0].unit) == (Decimal(0), "kWh")


def test_empty_unit_and_300_baud_only_meter() -> None:
    """vzlogger tests, Itron ACE3000 type 260: ``1.8.0(013925.5*)``, ident ``/ACE03k260V01.19``."""
    conn = client_after_ident(b"/ACE03k260V01.19\r\n")
    event = drain(conn)[0]
    assert isinstance(event, IdentificationReceived)
    assert event.message.max_baud_rate == 300
    with pytest.raises(LocalProtocolError, match="at most 300"):
        conn.send(AckOptionSelect.readout("1"), now=1.0)
    conn.send(AckOptionSelect.readout("0"), now=1.0)
    conn.receive_data(readout_bytes("1.8.0(013925.5*)\r\n!\r\n"), now=2.0)
    readout = drain(conn)[0]
    assert isinstance(readout, ReadoutReceived)
    value = readout.datasets[0].values[0]
    assert (value.number, value.unit) == (Decimal("13925.5"), None)


def test_ampersand_billing_period_separator() -> None:
    """pwitab #16, L+G ZMD405: ``1.8.1*12(...)`` and ``1.8.1&12(...)``."""
    star, amp = parse_data_line("1.8.1*12(001234.5*kWh)1.8.1&12(001234.5*kWh)")
    assert star.obis == amp.obis == Obis(1, 0, 1, 8, 1, 12)
    assert (star.address, amp.address) == ("1.8.1*12", "1.8.1&12")


def test_letter_codes() -> None:
    """pwitab #16, #19, lvzon: ``F.F``, ``C.1.0``, ``C.90.1``, ``0-0:C.1.0``; one meter sends ``FF``."""
    lines = ["F.F(00000000)", "C.1.0(54800102)", "C.90.1(1)", "0-0:C.1.0(72432595)", "FF(00000000)"]
    sets = [parse_data_line(line)[0] for line in lines]
    assert [s.obis for s in sets] == [
        Obis(1, 0, 97, 97, 0),
        Obis(1, 0, 96, 1, 0),
        Obis(1, 0, 96, 90, 1),
        Obis(0, 0, 96, 1, 0),
        None,
    ]
    assert sets[4].address == "FF"
    assert sets[4].values[0].text == "00000000"


def test_slash_inside_an_address() -> None:
    """vzlogger MeterD0.cpp comment, Siemens TD-3511: ``/`` inside an address."""
    conn = client_after_ident(SAMPLE_IDENTIFICATION.to_bytes())
    drain(conn)
    conn.send(AckOptionSelect.readout("5"), now=1.0)
    conn.receive_data(readout_bytes("1.8.0(1*kWh)\r\n96.50/1(ab)\r\n!\r\n"), now=2.0)
    readout = drain(conn)[1]  # after the ChangeBaudRate of the option select
    assert isinstance(readout, ReadoutReceived)
    assert [(s.address, s.parsed) for s in readout.datasets] == [("1.8.0", True), ("96.50/1", True)]


def test_data_starts_with_question_mark_before_stx() -> None:
    """vzlogger MeterD0.cpp comment, Elster AS1440: data starts with ``? STX``."""
    conn = client_after_ident(SAMPLE_IDENTIFICATION.to_bytes())
    drain(conn)
    conn.send(AckOptionSelect.readout("5"), now=1.0)
    conn.receive_data(b"?" + SAMPLE_READOUT.to_bytes(), now=2.0)
    assert isinstance(drain(conn)[1], ReadoutReceived)


def test_own_request_echoed_back() -> None:
    """vzlogger test fixture: ``/?!\\r\\n/LGZ52ZMD120APt.G03`` arrives on RX."""
    conn = client_after_ident(b"/?!\r\n/LGZ52ZMD120APt.G03\r\n")
    event = drain(conn)[0]
    assert isinstance(event, IdentificationReceived)
    assert (event.message.manufacturer, event.message.baud_char, event.message.ident) == (
        "LGZ",
        "5",
        "2ZMD120APt.G03",
    )
    # a head that echoes everything: echo_cancel drops our own bytes wherever they come back
    echoing = Iec21Connection(Role.CLIENT, echo_cancel=True)
    request = echoing.send(RequestMessage(), now=0.0)
    echoing.receive_data(request + SAMPLE_IDENTIFICATION.to_bytes(), now=0.5)
    drain(echoing)
    ack = echoing.send(AckOptionSelect.readout("5"), now=1.0)
    echoing.receive_data(ack + SAMPLE_READOUT.to_bytes(), now=2.0)
    assert isinstance(drain(echoing)[1], ReadoutReceived)


def test_push_meter_without_request() -> None:
    """vzlogger (Hager EHZ361): telegrams unsolicited; sync on the next identification."""
    conn = Iec21Connection(Role.CLIENT, initial_baud_rate=2400)
    conn.receive_data(b"2.8.0(00012.5*kWh)\r\n!\r\n\x03-", now=0.0)  # tail of a telegram
    assert drain(conn) == []
    conn.receive_data(b"/HAG5eHZ010C0D0\r\n" + SAMPLE_READOUT.to_bytes(), now=1.0)
    ident, readout = drain(conn)
    assert isinstance(ident, IdentificationReceived)
    assert ident.mode is ProtocolMode.D
    assert isinstance(readout, ReadoutReceived)


def test_address_needed_in_the_request() -> None:
    """vzlogger #233, EMH ITZ: readable only with the owner number in ``/?...!``."""
    meter = Iec21Connection(Role.SERVER, device_address="12345678", require_address=True)
    meter.receive_data(b"/?!\r\n", now=0.0)
    assert drain(meter) == []
    meter.receive_data(RequestMessage("12345678").to_bytes(), now=1.0)
    assert drain(meter) == [RequestReceived(RequestMessage("12345678"))]


def test_very_long_readout_at_300_baud() -> None:
    """Tasmota #7576, L+G ZMR120: 73 s per readout at 300 Bd."""
    body = "".join(
        f"1.8.{i % 9}*{i:02d}(0000{i:06d}.123*kWh)(10-02-01 00:{i % 60:02d})\r\n" for i in range(48)
    )
    wire = DataMessage(body).to_bytes()
    assert wire_time_s(len(wire), 300) > 70
    conn = client_after_ident(b"/LGZ0ZMR120\r\n")
    drain(conn)
    conn.send(AckOptionSelect.readout("0"), now=1.0)
    now = 1.2
    for start in range(0, len(wire), 10):  # 10 characters per read, as a serial driver might
        now += wire_time_s(10, 300)
        conn.handle_timeout(now)
        conn.receive_data(wire[start : start + 10], now=now)
        events = drain(conn)
    assert isinstance(events[0], ReadoutReceived)
    assert len(events[0].datasets) == 48


def test_nul_bytes_f_suffix_and_padded_multi_values() -> None:
    """RIOT-OS PR #22033: ``0.0.0(\\0...)``, ``1.8.0*00(007900.58)``, ``C.2.1(...)(<spaces>)``,
    and ``!`` straight after the last ``)`` (protocols.md 1.9)."""
    text = "0.0.0(\0\0\0\0\0\0\0\0)\r\n1.8.0*00(007900.58)\r\nC.2.1(1403151200)(        )!\r\n"
    wire = readout_bytes(text)
    message = DataMessage.from_bytes(wire)
    assert message.terminator == "!\r\n"
    assert message.to_bytes() == wire
    sets = message.datasets
    assert sets[0].values[0].text == ""
    assert sets[1].obis == Obis(1, 0, 1, 8, 0, 0)
    assert sets[1].values[0].number == Decimal("7900.58")
    assert [v.text for v in sets[2].values] == ["1403151200", ""]


def test_vendor_specific_flows() -> None:
    """pwitab README/#17: EMH uses national R5/W5; Elster LIS-200 errors are ``#nnnn``."""

    class Emh(Meter):
        def answer(self, command: CommandMessage) -> AnswerMessage:
            if (command.command, command.command_type) == ("R", "5"):
                return AnswerMessage("1.8.0(000123.4*kWh)")
            return AnswerMessage("(#0004)")

    line = Line(Iec21Connection(Role.CLIENT), Iec21Connection(Role.SERVER), Emh())
    line.exchange(RequestMessage())
    line.exchange(AckOptionSelect.programming("5"))
    answer = line.exchange(CommandMessage("R", "5", "1.8.0()"))[0]
    assert isinstance(answer, AnswerReceived)
    assert answer.datasets[0].values[0].number == Decimal("123.4")
    received = [e for e in line.meter.events if isinstance(e, CommandReceived)]
    assert received[-1].message.command_type == "5"
    error = line.exchange(CommandMessage("W", "5", "1.8.0(0)"))[0]
    assert isinstance(error, DeviceError)
    assert error.text == "#0004"


@pytest.mark.parametrize("split", [None, 1, 2, 3])
def test_echo_cancel_on_a_line_that_does_not_echo(split: int | None) -> None:
    # The identification starts with "/" like our request: it must not be taken for an echo.
    reader = Iec21Connection(Role.CLIENT, echo_cancel=True)
    reader.send(RequestMessage(), now=0.0)
    reply = SAMPLE_IDENTIFICATION.to_bytes()
    chunks = [reply] if split is None else [reply[:split], reply[split:]]
    for chunk in chunks:
        reader.receive_data(chunk, now=0.5)
    events = drain(reader)
    assert [type(e) for e in events] == [IdentificationReceived]
    assert reader.echo_bytes_dropped == 0

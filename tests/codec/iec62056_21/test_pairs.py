"""Reader and meter connections paired in memory: whole conversations (protocols.md 1.7, 1.8).

Every delivery on the in-memory :class:`Line` checks that both ends had the line at the same
speed, so the ``ChangeBaudRate`` instructions are verified along the way.
"""

from __future__ import annotations

import pytest
from iec21_kit import IDENT_E, Line, Meter, drain, flip

from metercom.codec.base import Role
from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    Ack,
    Acknowledged,
    AckOptionSelect,
    AnswerMessage,
    AnswerReceived,
    BreakReceived,
    ChangeBaudRate,
    CommandMessage,
    CommandReceived,
    DataMessage,
    DeviceError,
    FrameCorrupted,
    HdlcHandover,
    IdentificationMessage,
    IdentificationReceived,
    Iec21Connection,
    Nak,
    OptionSelected,
    PartialAnswerReceived,
    PasswordRequested,
    ProtocolMode,
    ReadoutReceived,
    RepeatRequested,
    RequestMessage,
    RequestReceived,
    State,
    Timeout,
    TimeoutKind,
    WakeUp,
)
from metercom.codec.iec62056_21.constants import wire_time_s
from metercom.errors import DeviceRejectedError, FrameError, LocalProtocolError, RemoteProtocolError


def make_line(meter: Meter | None = None, **client_options: object) -> Line:
    return Line(
        Iec21Connection(Role.CLIENT, **client_options), Iec21Connection(Role.SERVER), meter or Meter()
    )


def sign_on(line: Line, address: str = "") -> IdentificationReceived:
    events = line.exchange(RequestMessage(address))
    assert len(events) == 1
    assert isinstance(events[0], IdentificationReceived)
    return events[0]


# -- readout -------------------------------------------------------------------------------------


def test_mode_c_readout_at_9600() -> None:
    line = make_line()
    ident = sign_on(line, "1")
    assert ident.message == SAMPLE_IDENTIFICATION
    assert ident.mode is ProtocolMode.C
    assert line.client.state is State.IDENTIFIED
    # the reader may answer t_r = 200 ms after the identification arrived
    ident_end = line.now
    assert line.client.send_not_before == pytest.approx(ident_end + 0.2)

    events = line.exchange(AckOptionSelect.readout("5"))
    ack_sent = ident_end + 0.2
    assert events[0] == ChangeBaudRate(9600, ack_sent + wire_time_s(6, 300))
    readout = events[1]
    assert isinstance(readout, ReadoutReceived)
    assert readout.message == SAMPLE_READOUT
    assert [s.address for s in readout.datasets] == ["0.0.0", "0.9.1", "0.9.2", "1.8.0", "1.6.0"]
    assert events[2] == ChangeBaudRate(300, line.now)  # the meter falls back to 300 Bd
    assert line.client.state is State.IDLE

    server_events = line.meter.events
    assert isinstance(server_events[0], RequestReceived)
    assert server_events[0].message.device_address == "1"
    assert isinstance(server_events[1], OptionSelected)
    assert isinstance(server_events[2], ChangeBaudRate)
    assert server_events[2].baud_rate == 9600
    # the meter waits for a possible NAK, then ends the session by its timer
    assert line.server.state is State.AFTER_READOUT
    deadline = line.server.next_deadline()
    assert line.expire(line.server) == [ChangeBaudRate(300, deadline or 0.0)]
    assert line.server.state is State.IDLE
    # the same connections serve a second readout
    sign_on(line)
    assert isinstance(line.exchange(AckOptionSelect.readout("5"))[1], ReadoutReceived)


def test_reader_may_stay_below_the_offered_speed() -> None:
    # pwitab #33: /LGZ4\2ZMD120APt.G03 offers 4800 Bd, but the readout only worked at 300.
    meter = Meter(ident=IdentificationMessage("LGZ", "4", "ZMD120APt.G03", "2"))
    line = make_line(meter)
    sign_on(line)
    events = line.exchange(AckOptionSelect.readout("0"))
    assert not any(isinstance(e, ChangeBaudRate) for e in events)
    assert isinstance(events[0], ReadoutReceived)
    sign_on(line)
    with pytest.raises(LocalProtocolError, match="offered at most 4800"):
        line.client.send(AckOptionSelect.readout("5"), now=line.now)
    assert line.client.state is State.IDENTIFIED  # nothing changed


def test_mode_a_readout_follows_the_identification() -> None:
    meter = Meter(ident=IdentificationMessage("KAM", " ", "685-382-QR-10"))
    line = make_line(meter)
    events = line.exchange(RequestMessage())
    assert isinstance(events[0], IdentificationReceived)
    assert events[0].mode is ProtocolMode.A
    assert isinstance(events[1], ReadoutReceived)
    assert line.client.state is State.IDLE
    assert line.client.baud_rate == 300


def test_mode_b_switches_right_after_the_identification() -> None:
    meter = Meter(ident=IdentificationMessage("EHZ", "E", "B-METER"))
    line = make_line(meter)
    events = line.exchange(RequestMessage())
    assert events[0].mode is ProtocolMode.B  # type: ignore[union-attr]
    assert isinstance(events[1], ChangeBaudRate)
    assert events[1].baud_rate == 9600
    assert isinstance(events[2], ReadoutReceived)
    assert events[3] == ChangeBaudRate(300, line.now)
    # both switch when the identification has left the meter / arrived at the reader
    assert meter.events[1] == events[1]


def test_mode_d_push() -> None:
    # Hager EHZ361-like push meter: identification and data without a request, at 2400 Bd.
    client = Iec21Connection(Role.CLIENT, initial_baud_rate=2400)
    server = Iec21Connection(Role.SERVER, initial_baud_rate=2400)
    line = Line(client, server, Meter(ident=IdentificationMessage("EHZ", "3", "361")))
    line.server_send(line.meter.ident)
    line.server_send(line.meter.readout)
    assert server.state is State.IDLE
    events = drain(client)
    assert isinstance(events[0], IdentificationReceived)
    assert events[0].mode is ProtocolMode.D
    assert isinstance(events[1], ReadoutReceived)
    assert client.state is State.IDLE
    # a listener that starts mid-telegram syncs on the next identification
    client.receive_data(b"(12.5*kWh)\r\n!\r\n\x03x" + b"/EHZ3361\r\n" + SAMPLE_READOUT.to_bytes(), now=99.0)
    events = drain(client)
    assert [type(e) for e in events] == [IdentificationReceived, ReadoutReceived]


def test_mode_d_corrupt_push_cannot_be_repeated() -> None:
    client = Iec21Connection(Role.CLIENT, initial_baud_rate=2400)
    client.receive_data(b"/EHZ3361\r\n" + flip(10)(SAMPLE_READOUT.to_bytes()), now=0.0)
    assert isinstance(client.next_event(), IdentificationReceived)
    with pytest.raises(FrameError):
        client.next_event()
    assert client.state is State.ERROR


# -- BCC errors and repeats ----------------------------------------------------------------------


def test_bad_bcc_readout_is_repeated_after_nak() -> None:
    line = make_line()
    sign_on(line)
    line.to_client.append(flip(20))  # the readout arrives corrupt once
    events = line.exchange(AckOptionSelect.readout("5"))
    assert isinstance(events[0], ChangeBaudRate)
    assert isinstance(events[1], FrameCorrupted)
    assert events[1].attempt == 1
    assert "BCC mismatch" in events[1].reason
    assert not any(isinstance(e, ReadoutReceived) for e in events)  # nothing half-parsed
    assert line.client.state is State.SEND_NAK
    events = line.exchange(Nak())
    assert isinstance(events[0], ReadoutReceived)
    assert events[0].message == SAMPLE_READOUT
    assert any(isinstance(e, RepeatRequested) for e in line.meter.events)


def test_bad_bcc_gives_up_after_max_repeats() -> None:
    line = make_line(max_repeats=2)
    sign_on(line)
    line.to_client.extend([flip(20)] * 3)
    events = line.exchange(AckOptionSelect.readout("5"))
    assert isinstance(events[-1], FrameCorrupted)
    line.exchange(Nak())
    assert isinstance(line.client_events[-1], FrameCorrupted)
    assert line.client_events[-1].attempt == 2
    line.client_send(Nak())
    for event in drain(line.server):  # the meter repeats once more, still corrupt
        line.meter.on_event(event)
    line.server_send(SAMPLE_READOUT)  # mangled by the third flip
    with pytest.raises(FrameError, match="still corrupt after 2 repeat requests"):
        drain(line.client)
    assert line.client.state is State.ERROR
    assert not any(isinstance(e, ReadoutReceived) for e in line.client_events)
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        line.client.next_event()
    with pytest.raises(LocalProtocolError):
        line.client.send(Nak(), now=line.now)
    line.client.reset(now=line.now)
    assert line.client.state is State.IDLE


def test_meter_gives_up_after_too_many_naks() -> None:
    server = Iec21Connection(Role.SERVER, max_repeats=1)
    server.receive_data(b"/?!\r\n", now=0)
    drain(server)
    server.send(SAMPLE_IDENTIFICATION, now=0)
    server.receive_data(AckOptionSelect.readout().to_bytes(), now=1)
    drain(server)
    server.send(SAMPLE_READOUT, now=1)
    server.receive_data(b"\x15", now=2)
    assert drain(server) == [RepeatRequested(1)]
    server.send(SAMPLE_READOUT, now=2)
    server.receive_data(b"\x15", now=3)
    with pytest.raises(RemoteProtocolError, match="repeat"):
        drain(server)


# -- programming mode ----------------------------------------------------------------------------


def enter_programming(line: Line, pin: str = "00000000") -> list[object]:
    sign_on(line)
    events = line.exchange(AckOptionSelect.programming("5"))
    assert isinstance(events[0], ChangeBaudRate)
    request = events[1]
    assert isinstance(request, PasswordRequested)
    assert request.operand == "1234567"
    return line.exchange(CommandMessage.password(pin))


def test_programming_read_write_and_break() -> None:
    line = make_line()
    assert enter_programming(line) == [Acknowledged()]
    assert line.client.state is State.PROGRAMMING

    events = line.exchange(CommandMessage.read("1.8.0"))
    assert len(events) == 1
    answer = events[0]
    assert isinstance(answer, AnswerReceived)
    assert answer.data == "1.8.0(343642.9*kWh)"
    assert answer.datasets[0].value is not None
    assert str(answer.datasets[0].value.number) == "343642.9"

    assert line.exchange(CommandMessage.write("0.9.1", "172800")) == [Acknowledged()]
    assert line.meter.registers["0.9.1"] == "172800"
    answer = line.exchange(CommandMessage.read("0.9.1"))[0]
    assert isinstance(answer, AnswerReceived)
    assert answer.data == "0.9.1(172800)"

    error = line.exchange(CommandMessage.read("9.9.9"))[0]
    assert isinstance(error, DeviceError)
    assert error.text == "ERROR"
    exception = error.to_exception()
    assert isinstance(exception, DeviceRejectedError)
    assert exception.code == "ERROR"
    assert line.client.state is State.PROGRAMMING

    assert line.exchange(CommandMessage.execute("X(1)")) == [Acknowledged()]

    events = line.exchange(CommandMessage.sign_off())
    assert events == [ChangeBaudRate(300, line.now)]
    assert line.client.state is State.IDLE
    assert isinstance(line.meter.events[-2], BreakReceived)
    assert line.server.state is State.IDLE
    assert [type(e) for e in line.meter.events].count(CommandReceived) == 6


def test_wrong_password_is_a_device_error() -> None:
    line = make_line()
    events = enter_programming(line, pin="11111111")
    assert len(events) == 1
    assert isinstance(events[0], DeviceError)
    assert events[0].text == "ERROR"


def test_lis200_error_code_and_write_instead_of_password() -> None:
    # Elster LIS-200 unlocks by writing a lock register instead of answering P0; errors are #nnnn.
    class Lis200(Meter):
        def answer(self, command: CommandMessage) -> AnswerMessage | Ack:
            if command.command == "W":
                return Ack()
            return AnswerMessage("(#0015)")

    line = make_line(Lis200())
    sign_on(line)
    line.exchange(AckOptionSelect.programming("5"))
    assert line.exchange(CommandMessage.write("4:170.0", "12345")) == [Acknowledged()]
    error = line.exchange(CommandMessage.read("4:171.0"))[0]
    assert isinstance(error, DeviceError)
    assert error.text == "#0015"


def test_meter_that_breaks_the_session() -> None:
    class Refuser(Meter):
        def answer(self, command: CommandMessage) -> CommandMessage:  # noqa: ARG002
            return CommandMessage.sign_off()

    line = make_line(Refuser())
    events = enter_programming(line)
    assert isinstance(events[0], BreakReceived)
    assert events[1] == ChangeBaudRate(300, line.now)
    assert line.client.state is State.IDLE
    assert line.server.state is State.IDLE


def test_corrupt_command_is_nakked_and_repeated() -> None:
    line = make_line()
    enter_programming(line)
    line.to_server.append(flip(4))
    events = line.exchange(CommandMessage.read("1.8.0"))
    assert events == [RepeatRequested(1)]  # the meter answered NAK
    assert any(isinstance(e, FrameCorrupted) for e in line.meter.events)
    events = line.exchange(CommandMessage.read("1.8.0"))
    assert isinstance(events[0], AnswerReceived)


def test_reader_gives_up_after_repeated_naks() -> None:
    line = make_line(max_repeats=1)
    enter_programming(line)
    line.to_server.extend([flip(4), flip(4)])
    assert line.exchange(CommandMessage.read("1.8.0")) == [RepeatRequested(1)]
    with pytest.raises(RemoteProtocolError, match="repeat"):
        line.exchange(CommandMessage.read("1.8.0"))


def test_corrupt_answer_is_nakked_and_repeated() -> None:
    line = make_line()
    enter_programming(line)
    line.to_client.append(flip(3))
    events = line.exchange(CommandMessage.read("1.8.0"))
    assert isinstance(events[0], FrameCorrupted)
    events = line.exchange(Nak())
    assert isinstance(events[0], AnswerReceived)
    assert events[0].data == "1.8.0(343642.9*kWh)"


# -- partial blocks (protocols.md 1.8) -----------------------------------------------------------


def test_partial_block_read() -> None:
    blocks = ["P.01(1)(2)\r\n", "P.01(3)(4)\r\n", "P.01(5)(6)\r\n"]
    line = make_line(Meter(archives={"P.01": blocks}))
    enter_programming(line)
    events = line.exchange(CommandMessage.read("P.01", "1", command_type="3"))
    assert isinstance(events[0], PartialAnswerReceived)
    assert events[0].index == 0
    assert line.client.state is State.SEND_BLOCK_ACK
    # ask for block 0 again: it must not be counted twice
    events = line.exchange(Nak())
    assert isinstance(events[0], PartialAnswerReceived)
    assert events[0].index == 0
    events = line.exchange(Ack())
    assert isinstance(events[0], PartialAnswerReceived)
    assert events[0].index == 1
    line.to_client.append(flip(2))  # the last block arrives corrupt once
    events = line.exchange(Ack())
    assert isinstance(events[0], FrameCorrupted)
    events = line.exchange(Nak())
    final = events[0]
    assert isinstance(final, AnswerReceived)
    assert final.blocks == 3
    assert final.data == "".join(blocks)
    assert [v.text for s in final.datasets for v in s.values] == ["1", "2", "3", "4", "5", "6"]
    assert line.client.state is State.PROGRAMMING


def test_partial_block_write() -> None:
    line = make_line()
    enter_programming(line)
    rows = ["P.02(1)", "P.02(2)", "P.02(3)"]
    for index, row in enumerate(rows):
        last = index == len(rows) - 1
        message = CommandMessage("W", "3", row, partial=not last)
        assert line.exchange(message) == [Acknowledged()]
    assert line.meter.written_blocks == rows


def test_partial_answer_size_is_bounded() -> None:
    client = Iec21Connection(Role.CLIENT, max_block_size=64, max_answer_size=100)
    line = Line(client, Iec21Connection(Role.SERVER), Meter(archives={"P.01": ["x" * 40] * 5}))
    enter_programming(line)
    line.exchange(CommandMessage.read("P.01", command_type="3"))
    line.exchange(Ack())
    with pytest.raises(RemoteProtocolError, match="partial blocks"):
        line.exchange(Ack())


# -- mode E ----------------------------------------------------------------------------------------


def test_mode_e_handover() -> None:
    line = make_line(Meter(ident=IDENT_E))
    ident = sign_on(line)
    assert ident.mode is ProtocolMode.E
    events = line.exchange(AckOptionSelect.binary("5"))
    assert line.sent_by_client[-1] == bytes.fromhex("06 32 35 32 0D 0A")
    handover = events[0]
    assert isinstance(handover, HdlcHandover)
    assert handover.baud_rate == 9600
    assert handover.frame_format == "8N1"
    assert line.client.state is State.BINARY
    assert line.server.state is State.BINARY
    assert isinstance(line.meter.events[-1], HdlcHandover)
    # HDLC bytes that follow go to the HDLC codec untouched, parity bit and all
    line.server.receive_data(b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e", now=line.now)
    assert line.server.take_trailing_data() == b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"
    assert line.server.take_trailing_data() == b""
    assert drain(line.server) == []
    with pytest.raises(LocalProtocolError, match="HDLC"):
        line.client.send(Ack(), now=line.now)


def test_mode_e_trailing_bytes_in_the_same_chunk() -> None:
    server = Iec21Connection(Role.SERVER)
    server.receive_data(b"/?!\r\n", now=0)
    drain(server)
    server.send(IDENT_E, now=0)
    server.receive_data(bytes.fromhex("06 32 35 32 0D 0A 7E A0"), now=1)
    events = drain(server)
    assert isinstance(events[0], OptionSelected)
    assert events[1] == HdlcHandover(9600, 1)
    assert server.take_trailing_data() == b"\x7e\xa0"


def test_mode_e_refused_when_not_offered_or_v_not_2() -> None:
    line = make_line()  # /LTT597705377 offers no \2
    sign_on(line)
    with pytest.raises(LocalProtocolError, match="did not offer binary"):
        line.client.send(AckOptionSelect.binary("5"), now=line.now)
    line = make_line(Meter(ident=IDENT_E))
    sign_on(line)
    with pytest.raises(LocalProtocolError, match="V=2 and Y=2"):
        line.client.send(AckOptionSelect("0", "5", "2"), now=line.now)
    with pytest.raises(LocalProtocolError, match="V=2 and Y=2"):
        line.client.send(AckOptionSelect("2", "5", "0"), now=line.now)
    with pytest.raises(LocalProtocolError, match="reserved"):
        line.client.send(AckOptionSelect("0", "5", "3"), now=line.now)
    with pytest.raises(LocalProtocolError, match="reserved"):
        line.client.send(AckOptionSelect("5", "5", "0"), now=line.now)
    with pytest.raises(LocalProtocolError, match="reserved"):
        line.client.send(AckOptionSelect("0", "8", "0"), now=line.now)
    assert line.client.state is State.IDENTIFIED


# -- timers ----------------------------------------------------------------------------------------


def test_response_timeout_without_a_meter() -> None:
    client = Iec21Connection(Role.CLIENT)
    client.send(RequestMessage(), now=10.0)
    deadline = client.next_deadline()
    assert deadline == pytest.approx(10.0 + wire_time_s(5, 300) + 1.5)
    client.handle_timeout(deadline - 0.01)
    assert client.next_event() is not None
    assert client.state is State.AWAIT_IDENTIFICATION
    client.handle_timeout(deadline)
    assert drain(client) == [Timeout(TimeoutKind.RESPONSE, deadline)]
    assert client.state is State.IDLE
    assert client.next_deadline() is None


def test_inter_character_timeout_mid_readout() -> None:
    line = make_line()
    sign_on(line)
    line.client_send(AckOptionSelect.readout("5"))
    drain(line.client)
    line.client.receive_data(SAMPLE_READOUT.to_bytes()[:50], now=20.0)
    assert drain(line.client) == []
    assert line.client.next_deadline() == 21.5
    line.client.handle_timeout(21.5)
    assert drain(line.client) == [Timeout(TimeoutKind.INTER_CHARACTER, 21.5), ChangeBaudRate(300, 21.5)]
    assert line.client.state is State.IDLE


def test_slow_300_baud_readout_never_times_out() -> None:
    # L+G ZMR120: 73 s per readout at 300 Bd; characters keep coming, so t_a never expires.
    body = "".join(f"1.8.{i % 10}*{i % 100:02d}({i:010d}.123*kWh)\r\n" for i in range(70))
    readout = DataMessage(body)
    wire = readout.to_bytes()
    assert wire_time_s(len(wire), 300) > 60
    client = Iec21Connection(Role.CLIENT)
    client.send(RequestMessage(), now=0.0)
    client.receive_data(b"/ABC0slow\r\n", now=0.5)
    drain(client)
    client.send(AckOptionSelect.readout("0"), now=0.7)
    now = 1.0
    for byte in wire:
        now += wire_time_s(1, 300)
        client.handle_timeout(now)
        client.receive_data(bytes((byte,)), now=now)
    events = drain(client)
    assert len(events) == 1
    assert isinstance(events[0], ReadoutReceived)
    assert len(events[0].datasets) == 70


def test_meter_leaves_programming_mode_after_inactivity() -> None:
    server = Iec21Connection(Role.SERVER, inactivity_timeout_s=60.0)
    line = Line(Iec21Connection(Role.CLIENT), server, Meter())
    enter_programming(line)
    deadline = server.next_deadline()
    assert deadline is not None
    assert deadline > line.now + 59
    server.handle_timeout(deadline)
    assert drain(server) == [Timeout(TimeoutKind.INACTIVITY, deadline), ChangeBaudRate(300, deadline)]
    assert server.state is State.IDLE


def test_meter_waits_for_the_option_select_only_so_long() -> None:
    server = Iec21Connection(Role.SERVER)
    server.receive_data(b"/?!\r\n", now=0.0)
    drain(server)
    server.send(SAMPLE_IDENTIFICATION, now=0.2)
    deadline = server.next_deadline()
    assert deadline == pytest.approx(0.2 + wire_time_s(15, 300) + 1.5)
    server.handle_timeout(deadline)
    assert drain(server) == [Timeout(TimeoutKind.RESPONSE, deadline)]
    assert server.state is State.IDLE


def test_meter_drops_a_partial_request_silently() -> None:
    server = Iec21Connection(Role.SERVER)
    server.receive_data(b"/?12", now=0.0)
    assert drain(server) == []
    assert server.next_deadline() == 1.5
    server.handle_timeout(1.5)
    assert drain(server) == []
    server.receive_data(b"!\r\n/?!\r\n", now=5.0)
    assert [type(e) for e in drain(server)] == [RequestReceived]


# -- wake-up, addresses, reaction times ------------------------------------------------------------


def test_wake_up_preamble_then_request() -> None:
    line = make_line()
    wake = WakeUp.for_baud_rate(300)
    wire = line.client_send(wake)
    assert wire == bytes(66)
    assert line.client.send_not_before == pytest.approx(wire_time_s(66, 300) + 1.5)
    assert line.run() == []
    assert line.server.state is State.IDLE
    ident = sign_on(line)
    assert line.now > 2.2 + 1.5
    assert ident.message == SAMPLE_IDENTIFICATION


def test_meter_answers_only_its_address() -> None:
    server = Iec21Connection(Role.SERVER, device_address="12345678", require_address=True)
    server.receive_data(b"/?!\r\n/?87654321!\r\n", now=0.0)
    assert drain(server) == []
    server.receive_data(b"/?12345678!\r\n", now=0.1)
    assert [type(e) for e in drain(server)] == [RequestReceived]
    numeric = Iec21Connection(Role.SERVER, device_address="1")
    numeric.receive_data(b"/?001!\r\n", now=0.0)
    assert [type(e) for e in drain(numeric)] == [RequestReceived]
    anyone = Iec21Connection(Role.SERVER)
    anyone.receive_data(b"/?99!\r\n", now=0.0)
    assert [type(e) for e in drain(anyone)] == [RequestReceived]


def test_fast_meter_reaction_time() -> None:
    line = make_line(Meter(ident=IdentificationMessage("ISk", "5", "MT174-0001")))
    sign_on(line)
    assert line.client.send_not_before == pytest.approx(line.now + 0.02)


def test_baud_change_delay_for_slow_adapters() -> None:
    line = make_line(baud_change_delay_s=0.3)
    sign_on(line)
    sent_at = line.client.send_not_before or 0.0
    events = line.exchange(AckOptionSelect.readout("5"))
    assert events[0] == ChangeBaudRate(9600, sent_at + wire_time_s(6, 300) + 0.3)


def test_reader_retries_after_timeout_on_the_same_connection() -> None:
    line = make_line()
    line.client_send(RequestMessage())
    line.server.reset(now=line.now)  # the meter did not hear it
    line.client.handle_timeout(line.now + 10)
    assert isinstance(drain(line.client)[0], Timeout)
    assert isinstance(sign_on(line), IdentificationReceived)


def test_client_events_are_not_duplicated_between_runs() -> None:
    line = make_line()
    sign_on(line)
    assert line.run() == []
    assert isinstance(line.client_events[0], IdentificationReceived)
    assert line.server.state is State.AWAIT_OPTION


def test_meter_naks_our_block_acknowledgement() -> None:
    client = Iec21Connection(Role.CLIENT)
    client.send(RequestMessage(), now=0)
    client.receive_data(SAMPLE_IDENTIFICATION.to_bytes(), now=0)
    drain(client)
    client.send(AckOptionSelect.programming("5"), now=0)
    client.receive_data(CommandMessage.password_request().to_bytes(), now=0)
    drain(client)
    client.send(CommandMessage.read("P.01", command_type="3"), now=0)
    client.receive_data(AnswerMessage("a(1)", partial=True).to_bytes(), now=0)
    drain(client)
    client.send(Nak(), now=0)  # ask for block 0 again
    client.receive_data(b"\x15", now=0)  # the meter did not understand our NAK
    assert drain(client) == [RepeatRequested(1)]
    assert client.state is State.SEND_BLOCK_ACK
    client.send(Nak(), now=0)  # repeat it: no second block may be dropped
    client.receive_data(AnswerMessage("a(1)", partial=True).to_bytes(), now=0)
    assert [type(e) for e in drain(client)] == [PartialAnswerReceived]
    client.send(Ack(), now=0)
    client.receive_data(AnswerMessage("a(2)").to_bytes(), now=0)
    final = drain(client)[0]
    assert isinstance(final, AnswerReceived)
    assert final.data == "a(1)a(2)"

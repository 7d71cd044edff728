"""Edge branches of the connection: option-select checks on the meter side, limits, options."""

from __future__ import annotations

import re

import pytest
from iec21_kit import IDENT_E, drain

from metercom.codec.base import Role
from metercom.codec.iec62056_21 import (
    SAMPLE_IDENTIFICATION,
    AckOptionSelect,
    AnswerMessage,
    DataMessage,
    IdentificationMessage,
    IdentificationReceived,
    Iec21Connection,
    ProtocolMode,
    RequestMessage,
    State,
)
from metercom.errors import LocalProtocolError, RemoteProtocolError


def meter_awaiting_option(ident: IdentificationMessage = IDENT_E, **options: object) -> Iec21Connection:
    meter = Iec21Connection(Role.SERVER, **options)  # type: ignore[arg-type]
    meter.receive_data(b"/?!\r\n", now=0.0)
    drain(meter)
    meter.send(ident, now=0.1)
    return meter


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (bytes.fromhex("06 30 38 30 0D 0A"), "reserved baud rate"),
        (bytes.fromhex("06 30 36 30 0D 0A"), "offered at most 9600"),
        (bytes.fromhex("06 35 35 30 0D 0A"), "reserved protocol control"),
        (bytes.fromhex("06 30 35 34 0D 0A"), "reserved mode control"),
        (bytes.fromhex("06 32 35 30 0D 0A"), "needs mode control Y=2"),
        (b"\x06A", "ACK V Z Y"),
        (b"\x06050\r\r", "ACK V Z Y"),
    ],
)
def test_meter_rejects_bad_option_selects(option: bytes, message: str) -> None:
    meter = meter_awaiting_option()
    meter.receive_data(option, now=1.0)
    with pytest.raises(RemoteProtocolError, match=re.escape(message)):
        drain(meter)
    assert meter.state is State.ERROR


def test_meter_without_binary_mode_rejects_the_handover() -> None:
    meter = meter_awaiting_option(SAMPLE_IDENTIFICATION)
    meter.receive_data(AckOptionSelect.binary("5").to_bytes(), now=1.0)
    with pytest.raises(RemoteProtocolError, match="did not offer"):
        drain(meter)


def test_request_for_another_meter_ends_the_wait() -> None:
    meter = meter_awaiting_option(device_address="1")
    meter.receive_data(b"/?2!\r\n", now=1.0)
    assert drain(meter) == []
    assert meter.state is State.IDLE


def test_meter_cannot_offer_reserved_speeds() -> None:
    meter = Iec21Connection(Role.SERVER)
    meter.receive_data(b"/?!\r\n", now=0.0)
    drain(meter)
    with pytest.raises(LocalProtocolError, match="reserved"):
        meter.send(IdentificationMessage("ABC", "7", "x"), now=0.1)
    assert meter.state is State.REQUESTED


def test_reader_rejects_reserved_mode_b_speed() -> None:
    reader = Iec21Connection(Role.CLIENT)
    reader.send(RequestMessage(), now=0.0)
    reader.receive_data(b"/ABCHx\r\n", now=0.5)
    with pytest.raises(RemoteProtocolError, match="reserved mode B"):
        drain(reader)


@pytest.mark.parametrize(
    "options",
    [
        {"initial_baud_rate": 0},
        {"max_repeats": -1},
        {"max_block_size": 2},
        {"max_block_size": 100, "max_answer_size": 10},
        {"response_timeout_s": -1.0},
        {"reaction_time_s": -0.1},
        {"device_address": "a/b"},
    ],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        Iec21Connection(Role.CLIENT, **options)  # type: ignore[arg-type]


def test_send_takes_only_messages() -> None:
    with pytest.raises(LocalProtocolError, match="takes an IEC 62056-21 message"):
        Iec21Connection(Role.CLIENT).send(b"/?!\r\n", now=0.0)  # type: ignore[arg-type]


def test_block_limit_applies_when_the_end_is_already_there() -> None:
    reader = Iec21Connection(Role.CLIENT, max_block_size=64)
    reader.send(RequestMessage(), now=0.0)
    reader.receive_data(b"/ABC0x\r\n", now=0.1)
    drain(reader)
    reader.send(AckOptionSelect.readout(), now=0.2)
    reader.receive_data(DataMessage("x" * 100).to_bytes(), now=1.0)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 64"):
        drain(reader)


def test_reaction_time_option_and_properties() -> None:
    reader = Iec21Connection(Role.CLIENT, reaction_time_s=0.5)
    reader.send(RequestMessage(), now=0.0)
    reader.receive_data(b"/ISk5MT174-0001\r\n", now=1.0)
    event = drain(reader)[0]
    assert isinstance(event, IdentificationReceived)
    assert reader.send_not_before == 1.5  # the option wins over the 20 ms of the FLAG ID
    assert reader.protocol_mode is ProtocolMode.C
    assert reader.identification == event.message


def test_echo_buffer_is_bounded() -> None:
    reader = Iec21Connection(Role.CLIENT, echo_cancel=True)
    for _ in range(100):
        reader.send(RequestMessage("1" * 32), now=0.0)
        reader.reset(now=0.0)
    assert len(reader._echo) <= 4096


def test_answer_datasets_use_programming_limits() -> None:
    answer = AnswerMessage("P.01(" + "1" * 100 + ")  \r\n")
    assert answer.datasets[0].values[0].text == "1" * 100

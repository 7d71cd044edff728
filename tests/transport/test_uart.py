"""The UART character model and byte-pipe format emulation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.errors import InputError
from metercom.transport import LineSettings
from metercom.transport._uart import PipeEmulation, decode_frame, encode_frame, parity_bit

FORMATS = [
    LineSettings.parse(f) for f in ("5N1", "6E2", "7E1", "7O1", "7M1", "7S1", "7N2", "8N1", "8E1", "8O2")
]


def test_parity_bits() -> None:
    assert parity_bit("E", 0x38) == 1  # '8' has three ones
    assert parity_bit("O", 0x38) == 0
    assert parity_bit("E", 0x3F) == 0
    assert parity_bit("M", 0x00) == 1
    assert parity_bit("S", 0xFF) == 0


def test_frame_layout_7e1() -> None:
    # '8' = 0x38 in 7E1: start 0, data 0001110 (LSB first), parity 1, stop 1.
    frame = encode_frame(LineSettings.parse("7E1"), 0x38)
    bits = [(frame >> i) & 1 for i in range(10)]
    assert bits == [0, 0, 0, 0, 1, 1, 1, 0, 1, 1]


@given(st.sampled_from(FORMATS), st.integers(0, 255))
def test_same_format_round_trips(settings: LineSettings, value: int) -> None:
    sampled = decode_frame(settings, encode_frame(settings, value))
    assert sampled.value == value & ((1 << settings.bytesize) - 1)
    assert not sampled.parity_error
    assert not sampled.framing_error
    assert sampled.synced


def test_a_flipped_start_bit_loses_sync() -> None:
    settings = LineSettings()
    assert not decode_frame(settings, encode_frame(settings, 0x41) | 1).synced


def test_a_zero_stop_bit_is_a_framing_error() -> None:
    settings = LineSettings()
    frame = encode_frame(settings, 0x41) & ~(1 << 9)
    sampled = decode_frame(settings, frame)
    assert sampled.framing_error
    assert sampled.value == 0x41  # still delivered, as a tty with INPCK off does


def test_pipe_emulation_of_7e1_matches_the_field_note() -> None:
    pipe = PipeEmulation(LineSettings.parse("7E1"))
    assert pipe.encode(b"/?!\r\n") == bytes.fromhex("AF 3F 21 8D 0A")
    decoded, parity_errors, framing_errors = pipe.decode(bytes.fromhex("AF 3F 21 8D 0A") + b"\x38")
    assert decoded == b"/?!\r\n8"
    assert (parity_errors, framing_errors) == (1, 0)


def test_pipe_emulation_of_8n1_is_the_identity() -> None:
    pipe = PipeEmulation(LineSettings())
    data = bytes(range(256))
    assert pipe.identity
    assert pipe.encode(data) is data
    assert pipe.decode(data) == (data, 0, 0)


def test_pipe_emulation_of_7n2_sets_bit_7_as_second_stop_bit() -> None:
    pipe = PipeEmulation(LineSettings.parse("7N2"))
    assert pipe.encode(b"A") == b"\xc1"
    assert pipe.decode(b"\x41") == (b"A", 0, 1)  # bit 7 low where the second stop bit belongs


@given(st.binary(max_size=64))
def test_pipe_emulation_round_trips_7_bit_data(data: bytes) -> None:
    pipe = PipeEmulation(LineSettings.parse("7O1"))
    decoded, parity_errors, _ = pipe.decode(pipe.encode(data))
    assert decoded == bytes(b & 0x7F for b in data)
    assert parity_errors == 0


@pytest.mark.parametrize("frame_format", ["8E1", "8N2", "7E2", "5N1"])
def test_formats_without_10_bits_cannot_be_emulated(frame_format: str) -> None:
    with pytest.raises(InputError, match="10-bit formats"):
        PipeEmulation(LineSettings.parse(frame_format))

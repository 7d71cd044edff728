"""Frame vectors of protocols.md 5.1 (PZEM-004T v3.0; CRCs computed and cross-checked there), both ways.

Each vector is encoded from its parts and compared with the wire bytes, and decoded from the wire
bytes (whole) by the framer of the receiving role and compared with its parts.
"""

from __future__ import annotations

import pytest

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import (
    Adu,
    RtuFramer,
    crc16_modbus,
    crc16_modbus_bytes,
    encode_rtu,
    frame_crc_ok,
    reset_energy_pdu,
)
from metercom.errors import FrameError

# (description, receiving role, unit, PDU hex, wire hex)
VECTORS = [
    ("read 10 input regs, slave 1", Role.SERVER, 0x01, "04 0000 000A", "01 04 00 00 00 0A 70 0D"),
    ("read 10 input regs via general address", Role.SERVER, 0xF8, "04 0000 000A", "F8 04 00 00 00 0A 64 64"),
    (
        "reply slave 1: 230.0 V, 1.234 A, 283.8 W, 12345 Wh, 50.0 Hz, PF 0.99, no alarm",
        Role.CLIENT,
        0x01,
        "04 14 08FC 04D2 0000 0B16 0000 3039 0000 01F4 0063 0000",
        "01 04 14 08 FC 04 D2 00 00 0B 16 00 00 30 39 00 00 01 F4 00 63 00 00 EA 0D",
    ),
    (
        "reply slave 2, high words set, alarm",
        Role.CLIENT,
        0x02,
        "04 14 08FD 86A0 0001 A0D8 0002 5678 0012 01F3 0064 FFFF",
        "02 04 14 08 FD 86 A0 00 01 A0 D8 00 02 56 78 00 12 01 F3 00 64 FF FF 10 E1",
    ),
    ("reset energy, slave 1 (request)", Role.SERVER, 0x01, "42", "01 42 80 11"),
    ("reset energy, slave 1 (reply)", Role.CLIENT, 0x01, "42", "01 42 80 11"),
    ("reset energy via 0xF8", Role.SERVER, 0xF8, "42", "F8 42 C2 41"),
    ("read holding 0x0001-0x0002 via 0xF8", Role.SERVER, 0xF8, "03 0001 0002", "F8 03 00 01 00 02 81 A2"),
    ("set address to 2 via 0xF8", Role.SERVER, 0xF8, "06 0002 0002", "F8 06 00 02 00 02 BD A2"),
    ("exception: illegal address on function 4", Role.CLIENT, 0x01, "84 02", "01 84 02 C2 C1"),
    ("reset-energy error (slave error)", Role.CLIENT, 0x01, "C2 04", "01 C2 04 70 A3"),
]


@pytest.mark.parametrize(
    ("what", "role", "unit", "pdu_hex", "wire_hex"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_vector_encodes(what: str, role: Role, unit: int, pdu_hex: str, wire_hex: str) -> None:
    assert encode_rtu(unit, bytes.fromhex(pdu_hex)) == bytes.fromhex(wire_hex)
    assert RtuFramer(role, silence_s=0.004).send(Adu(unit, bytes.fromhex(pdu_hex))) == bytes.fromhex(wire_hex)


@pytest.mark.parametrize(
    ("what", "role", "unit", "pdu_hex", "wire_hex"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_vector_decodes_by_length_without_waiting_for_silence(
    what: str, role: Role, unit: int, pdu_hex: str, wire_hex: str
) -> None:
    framer = RtuFramer(role, silence_s=0.004)
    framer.receive_data(bytes.fromhex(wire_hex), 1.0)
    assert framer.next_event() == Adu(unit, bytes.fromhex(pdu_hex))
    assert framer.next_event() is NEED_DATA
    assert framer.next_deadline() is None  # nothing pending


@pytest.mark.parametrize(
    ("what", "role", "unit", "pdu_hex", "wire_hex"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_vector_with_one_flipped_bit_is_a_frame_error(
    what: str, role: Role, unit: int, pdu_hex: str, wire_hex: str
) -> None:
    wire = bytearray.fromhex(wire_hex)
    wire[len(wire) // 2] ^= 0x10
    framer = RtuFramer(role, silence_s=0.004)
    framer.receive_data(bytes(wire), 1.0)
    assert framer.next_event() is NEED_DATA  # the length is reached but the CRC is wrong: wait for silence
    framer.handle_timeout(1.004)
    with pytest.raises(FrameError, match="CRC mismatch") as info:
        framer.next_event()
    assert info.value.data == bytes(wire)
    assert framer.next_event() is NEED_DATA


def test_crc_catalogue_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_modbus_bytes(b"\x01\x04\x00\x00\x00\x0a") == b"\x70\x0d"  # low byte first


def test_crc_over_a_frame_with_its_crc_is_zero() -> None:
    for *_, wire_hex in VECTORS:
        assert frame_crc_ok(bytes.fromhex(wire_hex))
    assert not frame_crc_ok(b"\x01\x04")
    assert not frame_crc_ok(bytes.fromhex("01 04 00 00 00 0A 70 0E"))


def test_reset_energy_pdu_is_the_bare_function_code() -> None:
    assert reset_energy_pdu() == b"\x42"

"""CRC-16/MODBUS, the check of every Modbus RTU frame.

Rule: the CRC of Modbus over Serial Line v1.02 clause 2.5.1.2 / 6.2.2: reflected polynomial
0xA001 (0x8005 unreflected), initial register 0xFFFF, no final XOR, appended to the frame
least significant byte first. Catalogue check value: ``crc16_modbus(b"123456789") == 0x4B37``.

Theory of operation: a byte-at-a-time table loop. Because the CRC is appended low byte
first and has no final XOR, running it over a frame *including* its two CRC bytes leaves the
register at zero, so a received frame is checked with one pass and no slicing:
``crc16_modbus(frame) == 0``. (pymodbus has the same polynomial in ``FramerRTU.compute_CRC``,
but the codec layer stays free of third-party imports, so it carries its own 256-entry table.)
"""

from __future__ import annotations

from typing import Final

__all__ = ["crc16_modbus", "crc16_modbus_bytes", "frame_crc_ok"]


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _make_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """Return the CRC-16/MODBUS of ``data`` as an integer (sent low byte first)."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_modbus_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """Return the CRC of ``data`` in wire order (least significant byte first)."""
    return crc16_modbus(data).to_bytes(2, "little")


def frame_crc_ok(frame: bytes | bytearray | memoryview) -> bool:
    """True when ``frame`` ends with its own correct CRC (the register over all of it is 0)."""
    return len(frame) >= 3 and crc16_modbus(frame) == 0

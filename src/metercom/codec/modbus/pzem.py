"""PZEM-004T v3.0 (Peacefair) specifics that plain Modbus does not cover.

Rule: the module speaks Modbus RTU at 9600 Bd 8N1 and adds two vendor function codes
(protocols.md 5.1): 0x42 resets the energy counter (request and reply are the bare function
code, ``addr 42 CRC``, 4 bytes; a failure is answered ``addr C2 code CRC``) and 0x41 is the
factory calibration (address 0xF8, password 0x3721). Address 0xF8 is a "general" address any
single module answers, which is how an unknown module is given its address.

This module holds the PDU bytes only; pymodbus PDU classes for 0x42 live in
``metercom.session.modbus`` (they need pymodbus, which the codec layer may not import).
"""

from __future__ import annotations

from typing import Final

from metercom.errors import RemoteProtocolError

__all__ = [
    "CALIBRATE_FUNCTION",
    "CALIBRATION_PASSWORD",
    "GENERAL_ADDRESS",
    "RESET_ENERGY_FUNCTION",
    "check_reset_energy_reply",
    "reset_energy_pdu",
]

#: Vendor function code: reset the energy counter.
RESET_ENERGY_FUNCTION: Final = 0x42
#: Vendor function code: factory calibration (only at :data:`GENERAL_ADDRESS`).
CALIBRATE_FUNCTION: Final = 0x41
#: Password the calibration request carries.
CALIBRATION_PASSWORD: Final = 0x3721
#: Address any single PZEM answers, whatever its configured address (one device on the line only).
GENERAL_ADDRESS: Final = 0xF8


def reset_energy_pdu() -> bytes:
    """The PDU of the reset-energy request (and of its positive reply): the function code alone."""
    return bytes((RESET_ENERGY_FUNCTION,))


def check_reset_energy_reply(pdu: bytes) -> None:
    """Check a positive reset-energy reply PDU; raises :class:`RemoteProtocolError` otherwise.

    Exception replies (``C2 code``) are not handled here: the session turns every function
    code with bit 7 set into a :class:`~metercom.codec.modbus.exceptions.ModbusExceptionResponse`.
    """
    if pdu != reset_energy_pdu():
        raise RemoteProtocolError(
            "reset-energy reply must echo the bare function code 0x42", layer="modbus", data=pdu
        )

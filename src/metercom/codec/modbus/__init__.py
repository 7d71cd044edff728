"""Modbus: only what pymodbus lacks, kept pure (DESIGN.md sections 1 and 2).

pymodbus supplies the PDU classes, register conversions and reference servers (used by
``metercom.session.modbus`` and ``metercom.sim.modbus``). This package adds, without any
third-party import:

* :mod:`.rtu`: :class:`RtuFramer`, RTU frames cut by length, CRC *and* t3.5 silence
  (``next_deadline()``/``handle_timeout(now)``), for both roles; :func:`encode_rtu`.
* :mod:`.mbap`: :class:`MbapFramer`, Modbus TCP framing that reports a broken stream.
* :mod:`.crc`: CRC-16/MODBUS.
* :mod:`.functions`: function codes and the RTU length table.
* :mod:`.exceptions`: one :class:`~metercom.errors.DeviceRejectedError` subclass per
  Modbus exception code.
* :mod:`.pzem`: the PZEM-004T vendor function 0x42 (reset energy) and its addresses.
"""

from __future__ import annotations

from metercom.codec.modbus.crc import crc16_modbus, crc16_modbus_bytes, frame_crc_ok
from metercom.codec.modbus.exceptions import (
    EXCEPTION_CLASSES,
    Acknowledge,
    GatewayPathUnavailable,
    GatewayTargetFailedToRespond,
    IllegalDataAddress,
    IllegalDataValue,
    IllegalFunction,
    MemoryParityError,
    ModbusExceptionResponse,
    NegativeAcknowledge,
    ServerDeviceBusy,
    ServerDeviceFailure,
    exception_for,
)
from metercom.codec.modbus.functions import MAX_RTU_FRAME, NEED_MORE, UNKNOWN, FunctionCode, rtu_frame_length
from metercom.codec.modbus.mbap import MBAP_HEADER_LENGTH, MbapFramer, encode_mbap
from metercom.codec.modbus.pzem import (
    CALIBRATE_FUNCTION,
    CALIBRATION_PASSWORD,
    GENERAL_ADDRESS,
    RESET_ENERGY_FUNCTION,
    check_reset_energy_reply,
    reset_energy_pdu,
)
from metercom.codec.modbus.rtu import (
    MIN_RTU_FRAME,
    Adu,
    Noise,
    RtuFramer,
    encode_rtu,
    rtu_char_time_s,
    rtu_silence_s,
)

__all__ = [
    "CALIBRATE_FUNCTION",
    "CALIBRATION_PASSWORD",
    "EXCEPTION_CLASSES",
    "GENERAL_ADDRESS",
    "MAX_RTU_FRAME",
    "MBAP_HEADER_LENGTH",
    "MIN_RTU_FRAME",
    "NEED_MORE",
    "RESET_ENERGY_FUNCTION",
    "UNKNOWN",
    "Acknowledge",
    "Adu",
    "FunctionCode",
    "GatewayPathUnavailable",
    "GatewayTargetFailedToRespond",
    "IllegalDataAddress",
    "IllegalDataValue",
    "IllegalFunction",
    "MbapFramer",
    "MemoryParityError",
    "ModbusExceptionResponse",
    "NegativeAcknowledge",
    "Noise",
    "RtuFramer",
    "ServerDeviceBusy",
    "ServerDeviceFailure",
    "check_reset_energy_reply",
    "crc16_modbus",
    "crc16_modbus_bytes",
    "encode_mbap",
    "encode_rtu",
    "exception_for",
    "frame_crc_ok",
    "reset_energy_pdu",
    "rtu_char_time_s",
    "rtu_frame_length",
    "rtu_silence_s",
]

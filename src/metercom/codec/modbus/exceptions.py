"""Modbus exception responses as exceptions: one :class:`DeviceRejectedError` subclass per code.

Rule: a Modbus server that understood a request and refuses it answers with the function code
plus 0x80 and one exception-code byte (Modbus Application Protocol v1.1b3 clause 7). The
session raises :func:`exception_for` of that code, so callers catch precisely
(``except IllegalDataAddress``) or broadly (``except ModbusExceptionResponse`` /
``DeviceRejectedError``). The collector records these and does not retry them (DESIGN.md
section 4); :class:`ServerDeviceBusy` and :class:`Acknowledge` are the two a caller may
sensibly try again later.

The table is data: code, class, spec name, and a hint for the message. PZEM-004T uses codes
1-4 only and answers a failed energy reset with function 0xC2 (0x42 + 0x80).
"""

from __future__ import annotations

from typing import ClassVar

from metercom.errors import DeviceRejectedError

__all__ = [
    "EXCEPTION_CLASSES",
    "Acknowledge",
    "GatewayPathUnavailable",
    "GatewayTargetFailedToRespond",
    "IllegalDataAddress",
    "IllegalDataValue",
    "IllegalFunction",
    "MemoryParityError",
    "ModbusExceptionResponse",
    "NegativeAcknowledge",
    "ServerDeviceBusy",
    "ServerDeviceFailure",
    "exception_for",
]


class ModbusExceptionResponse(DeviceRejectedError):
    """A Modbus exception response; ``code`` is the exception code, ``function`` the request's."""

    #: The exception code this class stands for (0 on the base class: an unknown code).
    CODE: ClassVar[int] = 0
    #: Name of the code in the Modbus Application Protocol specification.
    SPEC_NAME: ClassVar[str] = "unknown exception code"
    #: What usually causes it, and what to do.
    HINT: ClassVar[str] = ""

    def __init__(
        self, message: str, *, code: int | str | None = None, unit: int = 0, function: int = 0
    ) -> None:
        self.unit = unit
        self.function = function
        super().__init__(message, code=code)


class IllegalFunction(ModbusExceptionResponse):
    CODE = 0x01
    SPEC_NAME = "ILLEGAL FUNCTION"
    HINT = "the device does not support this function code (check the --device profile)"


class IllegalDataAddress(ModbusExceptionResponse):
    CODE = 0x02
    SPEC_NAME = "ILLEGAL DATA ADDRESS"
    HINT = "the register range does not exist on this device (check the register map)"


class IllegalDataValue(ModbusExceptionResponse):
    CODE = 0x03
    SPEC_NAME = "ILLEGAL DATA VALUE"
    HINT = "the device refused the value or the request's quantity"


class ServerDeviceFailure(ModbusExceptionResponse):
    CODE = 0x04
    SPEC_NAME = "SERVER DEVICE FAILURE"
    HINT = "the device failed while executing the request (PZEM: 'slave error')"


class Acknowledge(ModbusExceptionResponse):
    CODE = 0x05
    SPEC_NAME = "ACKNOWLEDGE"
    HINT = "accepted, still processing; poll again later"


class ServerDeviceBusy(ModbusExceptionResponse):
    CODE = 0x06
    SPEC_NAME = "SERVER DEVICE BUSY"
    HINT = "the device is busy with a long command; try again later"


class NegativeAcknowledge(ModbusExceptionResponse):
    CODE = 0x07
    SPEC_NAME = "NEGATIVE ACKNOWLEDGE"
    HINT = "the device cannot perform the program function"


class MemoryParityError(ModbusExceptionResponse):
    CODE = 0x08
    SPEC_NAME = "MEMORY PARITY ERROR"
    HINT = "the device found a parity error in its memory; it may need service"


class GatewayPathUnavailable(ModbusExceptionResponse):
    CODE = 0x0A
    SPEC_NAME = "GATEWAY PATH UNAVAILABLE"
    HINT = "the gateway has no path to that unit id (check the gateway configuration)"


class GatewayTargetFailedToRespond(ModbusExceptionResponse):
    CODE = 0x0B
    SPEC_NAME = "GATEWAY TARGET DEVICE FAILED TO RESPOND"
    HINT = "the gateway got no answer from the unit behind it (wrong unit id, device off, wiring)"


#: Exception code -> class.
EXCEPTION_CLASSES: dict[int, type[ModbusExceptionResponse]] = {
    cls.CODE: cls
    for cls in (
        IllegalFunction,
        IllegalDataAddress,
        IllegalDataValue,
        ServerDeviceFailure,
        Acknowledge,
        ServerDeviceBusy,
        NegativeAcknowledge,
        MemoryParityError,
        GatewayPathUnavailable,
        GatewayTargetFailedToRespond,
    )
}


def exception_for(code: int, *, unit: int, function: int) -> ModbusExceptionResponse:
    """The exception for exception ``code`` in the reply of ``unit`` to ``function``."""
    cls = EXCEPTION_CLASSES.get(code, ModbusExceptionResponse)
    name = cls.SPEC_NAME if cls is not ModbusExceptionResponse else f"unknown exception code 0x{code:02X}"
    message = f"unit {unit} refused function 0x{function:02X}: exception 0x{code:02X} {name}"
    if cls.HINT:
        message += f"; {cls.HINT}"
    return cls(message, code=code, unit=unit, function=function)

"""Modbus exception codes map to one DeviceRejectedError subclass each."""

from __future__ import annotations

import pytest

from metercom.codec.modbus import (
    EXCEPTION_CLASSES,
    GatewayTargetFailedToRespond,
    IllegalDataAddress,
    ModbusExceptionResponse,
    ServerDeviceFailure,
    exception_for,
)
from metercom.errors import DeviceRejectedError


def test_one_class_per_code() -> None:
    assert sorted(EXCEPTION_CLASSES) == [1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B]
    assert len(set(EXCEPTION_CLASSES.values())) == len(EXCEPTION_CLASSES)
    for code, cls in EXCEPTION_CLASSES.items():
        assert issubclass(cls, ModbusExceptionResponse)
        assert issubclass(cls, DeviceRejectedError)
        assert code == cls.CODE
        assert cls.exit_code == 5


@pytest.mark.parametrize(
    ("code", "cls", "text"),
    [
        (0x02, IllegalDataAddress, "unit 1 refused function 0x04: exception 0x02 ILLEGAL DATA ADDRESS"),
        (0x04, ServerDeviceFailure, "exception 0x04 SERVER DEVICE FAILURE"),
        (0x0B, GatewayTargetFailedToRespond, "GATEWAY TARGET DEVICE FAILED TO RESPOND"),
        (0x33, ModbusExceptionResponse, "unknown exception code 0x33"),
    ],
)
def test_exception_for(code: int, cls: type[ModbusExceptionResponse], text: str) -> None:
    exc = exception_for(code, unit=1, function=0x04)
    assert type(exc) is cls
    assert exc.code == code
    assert exc.unit == 1
    assert exc.function == 0x04
    assert text in str(exc)

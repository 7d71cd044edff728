"""Result codes (Data-Access-Result, Action-Result) and the exceptions raised for them.

The code tables are checked against the peers' tables as facts (dlms-cosem 25.1.0
``enumerations``, gurux-dlms 1.0.203 ``ErrorCode``) in the interop tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from metercom.codec.dlms.results import (
    ACTION_ERRORS,
    DATA_ACCESS_ERRORS,
    ActionResult,
    DataAccessResult,
    DataBlockNumberInvalidError,
    DlmsResultError,
    HardwareFaultError,
    LongActionAbortedError,
    LongGetAbortedError,
    NoLongActionInProgressError,
    NoLongGetInProgressError,
    ObjectUndefinedError,
    OtherReasonError,
    ReadWriteDeniedError,
    ServiceRejectedError,
    UnknownResultError,
    error_for_result,
    raise_for_result,
)
from metercom.codec.dlms.xdlms import CosemAttributeDescriptor, CosemMethodDescriptor
from metercom.errors import DeviceRejectedError, LocalProtocolError, MetercomError
from metercom.model.obis import Obis

ENERGY = CosemAttributeDescriptor(3, Obis(1, 0, 1, 8, 0, 255), 2)
DISCONNECT = CosemMethodDescriptor(70, Obis(0, 0, 96, 3, 10, 255), 1)

# The ASN.1 tables (Green Book clause 9.5), written out once more by hand.
DATA_ACCESS_TABLE = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-get-aborted",
    16: "no-long-get-in-progress",
    17: "long-set-aborted",
    18: "no-long-set-in-progress",
    19: "data-block-number-invalid",
    250: "other-reason",
}
ACTION_TABLE = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-action-aborted",
    16: "no-long-action-in-progress",
    250: "other-reason",
}


def test_tables() -> None:
    assert {int(m): m.spec_name for m in DataAccessResult} == DATA_ACCESS_TABLE
    assert {int(m): m.spec_name for m in ActionResult} == ACTION_TABLE
    assert set(DATA_ACCESS_ERRORS) == set(DATA_ACCESS_TABLE) - {0}
    assert set(ACTION_ERRORS) == set(ACTION_TABLE) - {0}
    for table, errors in ((DATA_ACCESS_TABLE, DATA_ACCESS_ERRORS), (ACTION_TABLE, ACTION_ERRORS)):
        for code, cls in errors.items():
            assert cls.spec_name == table[code]
            assert issubclass(cls, DlmsResultError)
            assert issubclass(cls, DeviceRejectedError)


def test_one_class_per_meaning() -> None:
    assert DATA_ACCESS_ERRORS[1] is ACTION_ERRORS[1] is HardwareFaultError
    assert DATA_ACCESS_ERRORS[15] is LongGetAbortedError
    assert ACTION_ERRORS[15] is LongActionAbortedError
    assert DATA_ACCESS_ERRORS[16] is NoLongGetInProgressError
    assert ACTION_ERRORS[16] is NoLongActionInProgressError
    classes = set(DATA_ACCESS_ERRORS.values()) | set(ACTION_ERRORS.values())
    assert len(classes) == len({cls.spec_name for cls in classes}) == 17


def test_unknown_codes_are_kept() -> None:
    vendor = DataAccessResult(200)
    assert int(vendor) == 200
    assert vendor.name == "CODE_200"
    assert not vendor.known
    assert vendor.spec_name == "code 200"
    assert DataAccessResult.OTHER_REASON.known
    assert ActionResult(5).spec_name == "code 5"
    assert bytes((vendor,)) == b"\xc8"
    for bad in (256, -1, "3", 1.5):
        with pytest.raises(ValueError, match="is not a valid"):
            DataAccessResult(bad)


@pytest.mark.parametrize("code", sorted(DATA_ACCESS_TABLE))
def test_raise_for_data_access_result(code: int) -> None:
    result = DataAccessResult(code)
    if code == 0:
        raise_for_result(result, ENERGY, service="GET")
        assert error_for_result(result) is None
        return
    with pytest.raises(DATA_ACCESS_ERRORS[code]) as info:
        raise_for_result(result, ENERGY, service="GET")
    error = info.value
    assert isinstance(error, MetercomError)
    assert error.code == code
    assert error.result is result
    assert error.context == "GET class 3 1-0:1.8.0*255 attribute 2"
    assert str(error).startswith(
        f"GET class 3 1-0:1.8.0*255 attribute 2: the meter answered {DATA_ACCESS_TABLE[code]} "
        f"(Data-Access-Result {code})"
    )
    assert error.exit_code == DeviceRejectedError.exit_code


@pytest.mark.parametrize("code", sorted(ACTION_TABLE))
def test_raise_for_action_result(code: int) -> None:
    result = ActionResult(code)
    if code == 0:
        raise_for_result(result, DISCONNECT, service="ACTION")
        return
    with pytest.raises(ACTION_ERRORS[code]) as info:
        raise_for_result(result, DISCONNECT, service="ACTION")
    assert str(info.value).startswith(
        f"ACTION class 70 0-0:96.3.10*255 method 1: the meter answered {ACTION_TABLE[code]} "
        f"(Action-Result {code})"
    )


def test_messages_and_hints() -> None:
    with pytest.raises(ReadWriteDeniedError, match="use a client SAP with higher rights"):
        raise_for_result(DataAccessResult.READ_WRITE_DENIED, "1-0:1.8.0*255 attribute 2", service="SET")
    with pytest.raises(ObjectUndefinedError, match=r"^request: the meter answered object-undefined"):
        raise_for_result(DataAccessResult.OBJECT_UNDEFINED)
    with pytest.raises(DataBlockNumberInvalidError, match="restart the transfer"):
        raise_for_result(DataAccessResult.DATA_BLOCK_NUMBER_INVALID, "profile")
    with pytest.raises(OtherReasonError) as info:
        raise_for_result(ActionResult.OTHER_REASON, "reset")
    assert str(info.value) == "reset: the meter answered other-reason (Action-Result 250)"
    with pytest.raises(UnknownResultError, match=r"code 200 \(Data-Access-Result 200\); the code is not in"):
        raise_for_result(DataAccessResult(200), ENERGY)
    with pytest.raises(LocalProtocolError):
        raise_for_result(3)  # type: ignore[arg-type]


def test_service_rejected_error_is_a_device_rejection() -> None:
    error = ServiceRejectedError("GET x: refused", code="service-not-allowed / operation-not-possible")
    assert isinstance(error, DeviceRejectedError)
    assert error.code == "service-not-allowed / operation-not-possible"


@pytest.mark.interop
def test_tables_agree_with_dlms_cosem() -> None:
    enumerations: Any = pytest.importorskip("dlms_cosem.enumerations")
    assert {int(m): m.name for m in enumerations.DataAccessResult} == {
        int(m): m.name for m in DataAccessResult
    }
    assert {int(m): m.name for m in enumerations.ActionResultStatus} == {int(m): m.name for m in ActionResult}


@pytest.mark.interop
def test_data_access_codes_agree_with_gurux() -> None:
    error_code: Any = pytest.importorskip("gurux_dlms.enums.ErrorCode")
    gurux = {int(m) for m in error_code.ErrorCode if int(m) >= 0}
    assert gurux == {int(m) for m in DataAccessResult}

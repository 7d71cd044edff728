"""xDLMS service APDUs with logical-name referencing: GET, SET, ACTION, notifications,
exception-response and general-block-transfer (IEC 62056-5-3 clauses 6-8; Green Book DLMS UA
1000-2 clause 9.3 services, 9.4 protocol incl. block transfer, 9.5 ASN.1).

Rule: every APDU is a frozen dataclass named as its ASN.1 type (``GetRequestNormal`` is
``Get-Request-Normal``, tag and choice in its docstring) with ``from_bytes(data)`` and
``to_bytes()``. Decoding is bounded (every length and element count is checked against the
bytes that remain before anything is built; a SEQUENCE OF may not claim more elements than
could fit) and only :class:`~metercom.errors.RemoteProtocolError` escapes from any input.
Building a value checks its fields and raises :class:`~metercom.errors.LocalProtocolError`.
Error messages name the APDU, field and offset and show only the tag, choice and invoke-id
bytes: values may hold secrets (SET of an LLS secret, ACTION change_secret).

Theory of operation:

* The plaintext ``XDLMS-APDU`` is a tag byte; for get/set/action requests and responses a
  second byte selects the CHOICE alternative (``C4 02`` = get-response-with-datablock).
  :func:`decode_xdlms_apdu` dispatches on these two bytes and raises for anything it does
  not decode, naming the tag (see :mod:`.decode`).
* Values are :class:`metercom.model.dlms_data.Data` (A-XDR via
  :mod:`metercom.codec.dlms.axdr`); results are the tables of
  :mod:`metercom.codec.dlms.results`. Decoding keeps what was received (unknown result codes,
  reserved invoke-id bits, raw selective-access parameters, the date-time octets of a
  notification), so ``from_bytes(x).to_bytes() == x`` for input in canonical form. A round
  trip normalises non-canonical lengths (``81 05``) and BOOLEAN/OPTIONAL flag bytes other than
  00/01; ``decode(encode(decode(x))) == decode(x)`` always holds (the fuzz tests check it).
* Responses carry the invoke-id-and-priority byte of their request. Nothing here pairs them;
  the session does.
* Block transfer (long GET responses, long SET values, long ACTION parameters and results) is
  run by the sans-I/O helpers of :mod:`metercom.codec.dlms.blocks`.

Module map: :mod:`.descriptors` (invoke-id, attribute/method descriptors, selective access),
:mod:`.get`, :mod:`.set`, :mod:`.action`, :mod:`.notification` (data-notification,
event-notification-request), :mod:`.exception` (exception-response), :mod:`.gbt`
(general-block-transfer), :mod:`.decode` (the dispatcher).
"""

from __future__ import annotations

from metercom.codec.dlms.initiate import ConfirmedServiceError
from metercom.codec.dlms.results import ActionResult, DataAccessResult

from ._apdu import XdlmsApdu
from .action import (
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPblock,
)
from .decode import SERVICE_APDU_TYPES, Apdu, decode_xdlms_apdu
from .descriptors import (
    CLOCK_TIME,
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    EntryDescriptor,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
    RangeDescriptor,
    SelectiveAccessDescriptor,
)
from .exception import ExceptionResponse, ExceptionServiceError, ExceptionStateError, rejection_error
from .gbt import GeneralBlockTransfer
from .get import (
    GetDataResult,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    decode_get_data_result_list,
    encode_get_data_result_list,
)
from .notification import DataNotification, EventNotificationRequest
from .set import (
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
)

__all__ = [
    "CLOCK_TIME",
    "DEFAULT_INVOKE_ID_AND_PRIORITY",
    "SERVICE_APDU_TYPES",
    "ActionRequestNextPblock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPblock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPblock",
    "ActionRequestWithPblock",
    "ActionResponseNextPblock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithOptionalData",
    "ActionResponseWithPblock",
    "ActionResult",
    "Apdu",
    "CaptureObjectDefinition",
    "ConfirmedServiceError",
    "CosemAttributeDescriptor",
    "CosemAttributeDescriptorWithSelection",
    "CosemMethodDescriptor",
    "DataAccessResult",
    "DataNotification",
    "EntryDescriptor",
    "EventNotificationRequest",
    "ExceptionResponse",
    "ExceptionServiceError",
    "ExceptionStateError",
    "GeneralBlockTransfer",
    "GetDataResult",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "RangeDescriptor",
    "SelectiveAccessDescriptor",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDatablock",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseLastDatablockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
    "XdlmsApdu",
    "decode_get_data_result_list",
    "decode_xdlms_apdu",
    "encode_get_data_result_list",
    "rejection_error",
]

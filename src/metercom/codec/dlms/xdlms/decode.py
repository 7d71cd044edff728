"""Dispatch of plaintext xDLMS APDUs by tag and choice (Green Book DLMS UA 1000-2 clause 9.5, the
``XDLMS-APDU`` CHOICE; IEC 62056-5-3).

Rule: :func:`decode_xdlms_apdu` skips nothing silently. Every byte string either decodes into
exactly one APDU value or raises :class:`~metercom.errors.RemoteProtocolError` naming the tag
(and the choice) it could not handle. Tags of APDUs that exist but are not decoded here are
named with the module to use instead: ACSE (0x60..0x63), ciphered APDUs (glo-/ded-/general-
ciphering: decrypt with :mod:`metercom.codec.dlms.security` first, then decode the plaintext
here), and short-name referencing (not supported).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias, cast

from metercom.codec.dlms.initiate import ConfirmedServiceError, InitiateRequest, InitiateResponse
from metercom.errors import RemoteProtocolError

from ._apdu import XdlmsApdu
from ._wire import LAYER, Buffer, Reader, as_bytes
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
    ActionResponseWithPblock,
)
from .exception import ExceptionResponse
from .gbt import GeneralBlockTransfer
from .get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
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

__all__ = ["SERVICE_APDU_TYPES", "Apdu", "decode_xdlms_apdu"]

#: Every APDU :func:`decode_xdlms_apdu` returns.
Apdu: TypeAlias = (
    GetRequestNormal
    | GetRequestNext
    | GetRequestWithList
    | GetResponseNormal
    | GetResponseWithDatablock
    | GetResponseWithList
    | SetRequestNormal
    | SetRequestWithFirstDatablock
    | SetRequestWithDatablock
    | SetRequestWithList
    | SetRequestWithListAndFirstDatablock
    | SetResponseNormal
    | SetResponseDatablock
    | SetResponseLastDatablock
    | SetResponseLastDatablockWithList
    | SetResponseWithList
    | ActionRequestNormal
    | ActionRequestNextPblock
    | ActionRequestWithList
    | ActionRequestWithFirstPblock
    | ActionRequestWithListAndFirstPblock
    | ActionRequestWithPblock
    | ActionResponseNormal
    | ActionResponseWithPblock
    | ActionResponseWithList
    | ActionResponseNextPblock
    | ExceptionResponse
    | GeneralBlockTransfer
    | DataNotification
    | EventNotificationRequest
    | ConfirmedServiceError
    | InitiateRequest
    | InitiateResponse
)

#: The service APDU classes, in tag/choice order.
SERVICE_APDU_TYPES: Final[tuple[type[XdlmsApdu], ...]] = (
    GetRequestNormal,
    GetRequestNext,
    GetRequestWithList,
    SetRequestNormal,
    SetRequestWithFirstDatablock,
    SetRequestWithDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    EventNotificationRequest,
    ActionRequestNormal,
    ActionRequestNextPblock,
    ActionRequestWithList,
    ActionRequestWithFirstPblock,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    SetResponseNormal,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseWithList,
    ActionResponseNormal,
    ActionResponseWithPblock,
    ActionResponseWithList,
    ActionResponseNextPblock,
    ExceptionResponse,
    GeneralBlockTransfer,
    DataNotification,
)

# tag -> {choice -> class} for the services that are a CHOICE; tag -> class for the others.
_BY_CHOICE: Final[dict[int, dict[int, type[XdlmsApdu]]]] = {}
_BY_TAG: Final[dict[int, type[XdlmsApdu]]] = {}
for _cls in SERVICE_APDU_TYPES:
    if _cls.CHOICE is None:
        _BY_TAG[_cls.TAG] = _cls
    else:
        _BY_CHOICE.setdefault(_cls.TAG, {})[_cls.CHOICE] = _cls

_SERVICE_NAMES: Final = {
    0xC0: "get-request",
    0xC1: "set-request",
    0xC3: "action-request",
    0xC4: "get-response",
    0xC5: "set-response",
    0xC7: "action-response",
}

# Decoders that live in other modules (the initiate APDUs are xDLMS APDUs too).
_OTHER: Final[dict[int, Callable[[bytes], Apdu]]] = {
    0x01: InitiateRequest.from_bytes,
    0x08: InitiateResponse.from_bytes,
    0x0E: ConfirmedServiceError.from_bytes,
}

_SN = "short-name referencing, not supported (use logical-name referencing)"
_ACSE = "an ACSE APDU; decode it with metercom.codec.dlms.acse"
_CIPHERED = "a ciphered APDU; unprotect it with metercom.codec.dlms.security and decode the plaintext"
_NOT_DECODED: Final[dict[int, tuple[str, str]]] = {
    0x05: ("readRequest", _SN),
    0x06: ("writeRequest", _SN),
    0x0C: ("readResponse", _SN),
    0x0D: ("writeResponse", _SN),
    0x16: ("unconfirmedWriteRequest", _SN),
    0x18: ("informationReportRequest", _SN),
    0x60: ("AARQ", _ACSE),
    0x61: ("AARE", _ACSE),
    0x62: ("RLRQ", _ACSE),
    0x63: ("RLRE", _ACSE),
    0xD9: ("access-request", "not supported"),
    0xDA: ("access-response", "not supported"),
    0xDF: ("general-signing", "not supported"),
    0xE6: ("gateway-request", "not supported"),
    0xE7: ("gateway-response", "not supported"),
}
for _base, _prefix in ((0x20, "glo-"), (0x40, "ded-")):
    for _offset, _name in (
        (0x01, "initiateRequest"),
        (0x05, "readRequest"),
        (0x06, "writeRequest"),
        (0x08, "initiateResponse"),
        (0x0C, "readResponse"),
        (0x0D, "writeResponse"),
        (0x0E, "confirmedServiceError"),
        (0x16, "unconfirmedWriteRequest"),
        (0x18, "informationReportRequest"),
    ):
        _NOT_DECODED[_base + _offset] = (_prefix + _name, _CIPHERED)
for _base, _prefix in ((0xC8, "glo-"), (0xD0, "ded-")):
    for _offset, _name in (
        (0, "get-request"),
        (1, "set-request"),
        (2, "event-notification-request"),
        (3, "action-request"),
        (4, "get-response"),
        (5, "set-response"),
        (7, "action-response"),
    ):
        _NOT_DECODED[_base + _offset] = (_prefix + _name, _CIPHERED)
_NOT_DECODED[0xDB] = ("general-glo-ciphering", _CIPHERED)
_NOT_DECODED[0xDC] = ("general-ded-ciphering", _CIPHERED)
_NOT_DECODED[0xDD] = ("general-ciphering", _CIPHERED)


def decode_xdlms_apdu(data: Buffer) -> Apdu:
    """Decode one complete plaintext xDLMS APDU (GET/SET/ACTION requests and responses,
    exception-response, general-block-transfer, data-notification, event-notification-request,
    confirmed-service-error, initiate request/response).

    Raises :class:`RemoteProtocolError` for anything else, naming the tag and choice.
    """
    buf = as_bytes(data)
    if not buf:
        raise RemoteProtocolError("empty input where an xDLMS APDU was expected", layer=LAYER)
    tag = buf[0]
    choices = _BY_CHOICE.get(tag)
    if choices is not None:
        if len(buf) < 2:
            raise RemoteProtocolError(
                f"{_SERVICE_NAMES[tag]} (tag 0x{tag:02x}) truncated: the choice byte is missing",
                layer=LAYER,
                data=buf,
            )
        cls = choices.get(buf[1])
        if cls is None:
            raise RemoteProtocolError(
                f"{_SERVICE_NAMES[tag]} (tag 0x{tag:02x}) has no choice {buf[1]} "
                f"(defined: {', '.join(str(c) for c in sorted(choices))})",
                layer=LAYER,
                data=buf[:3],
            )
        r = Reader(buf, cls.__name__, 2)
    else:
        single = _BY_TAG.get(tag)
        if single is None:
            other = _OTHER.get(tag)
            if other is not None:
                return other(buf)
            known = _NOT_DECODED.get(tag)
            if known is not None:
                raise RemoteProtocolError(
                    f"APDU tag 0x{tag:02x} ({known[0]}) is {known[1]}", layer=LAYER, data=buf[:1]
                )
            raise RemoteProtocolError(f"unknown xDLMS APDU tag 0x{tag:02x}", layer=LAYER, data=buf[:1])
        cls = single
        r = Reader(buf, cls.__name__, 1)
    value = cls.read_body(r)
    r.finish()
    return cast(Apdu, value)

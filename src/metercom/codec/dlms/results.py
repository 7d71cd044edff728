"""Result codes of the xDLMS services and the exceptions they turn into (IEC 62056-5-3 clause 8 /
Green Book DLMS UA 1000-2 clause 9.5: ``Data-Access-Result`` and ``Action-Result``).

Rule: a result code is data until a caller decides it is an error. The APDU codecs carry
:class:`DataAccessResult` and :class:`ActionResult` values as they were received; the session
calls :func:`raise_for_result` where a refusal must stop the work, and gets one
:class:`~metercom.errors.DeviceRejectedError` subclass per spec code (``ReadWriteDeniedError``,
``ObjectUndefinedError``, ...), so callers catch exactly what they can handle. The collector
records these and does not retry (DESIGN.md section 4).

Theory of operation:

* Both enumerations are tables of the codes the ASN.1 defines. The two share their meaning for
  codes 0..14 and 250; 15 and 16 are long-get-aborted / no-long-get-in-progress for
  Data-Access-Result but long-action-aborted / no-long-action-in-progress for Action-Result,
  and 17..19 exist only in Data-Access-Result. The lists agree with the tables of dlms-cosem
  25.1.0 (``enumerations.DataAccessResult``, ``ActionResultStatus``), gurux-dlms 1.0.203
  (``ErrorCode``) and gocosem (``dataAccessResult_*``, ``actionResult_*``), read as facts.
* A code outside the table (vendor extensions exist in the field) still decodes: the enum
  returns a pseudo-member named ``CODE_<n>`` that re-encodes to the same byte, so nothing a
  meter sends is lost or turned into a decoding error. :func:`raise_for_result` raises
  :class:`UnknownResultError` for it.
* One exception class per *meaning*, not per table: ``HardwareFaultError`` is raised for a
  Data-Access-Result 1 and for an Action-Result 1 alike. Each error carries ``code`` (the
  integer), ``result`` (the enum member, which says which table) and ``context`` (what was
  asked, e.g. ``"GET class 3 1-0:1.8.0*255 attribute 2"``).
* :class:`ServiceRejectedError` covers refusals that are not result codes: an
  ExceptionResponse (tag 0xD8) or a ConfirmedServiceError (tag 0x0E) answering a request
  (see :mod:`metercom.codec.dlms.xdlms`).
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final, Protocol

from metercom.errors import DeviceRejectedError, LocalProtocolError

__all__ = [
    "ACTION_ERRORS",
    "DATA_ACCESS_ERRORS",
    "ActionResult",
    "DataAccessResult",
    "DataBlockNumberInvalidError",
    "DataBlockUnavailableError",
    "Describable",
    "DlmsResultError",
    "HardwareFaultError",
    "LongActionAbortedError",
    "LongGetAbortedError",
    "LongSetAbortedError",
    "NoLongActionInProgressError",
    "NoLongGetInProgressError",
    "NoLongSetInProgressError",
    "ObjectClassInconsistentError",
    "ObjectUnavailableError",
    "ObjectUndefinedError",
    "OtherReasonError",
    "ReadWriteDeniedError",
    "ScopeOfAccessViolatedError",
    "ServiceRejectedError",
    "TemporaryFailureError",
    "TypeUnmatchedError",
    "UnknownResultError",
    "error_for_result",
    "raise_for_result",
]


class _ResultEnum(enum.IntEnum):
    """An IntEnum that keeps unknown one-byte codes as ``CODE_<n>`` pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> _ResultEnum | None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
            member = int.__new__(cls, value)
            member._name_ = f"CODE_{value}"
            member._value_ = value
            return member
        return None

    @property
    def known(self) -> bool:
        """True if the code is in the table of the standard."""
        return self._name_ in type(self).__members__

    @property
    def spec_name(self) -> str:
        """The ASN.1 name: ``"read-write-denied"``; ``"code 200"`` for codes outside the table."""
        if not self.known:
            return f"code {int(self)}"
        return self._name_.lower().replace("_", "-")


class DataAccessResult(_ResultEnum):
    """``Data-Access-Result ::= ENUMERATED`` (GET, SET, selective access, data blocks)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(_ResultEnum):
    """``Action-Result ::= ENUMERATED`` (ACTION)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


# ------------------------------------------------------------------------------------------------
# Exceptions: one per meaning
# ------------------------------------------------------------------------------------------------


class DlmsResultError(DeviceRejectedError):
    """The meter answered a GET, SET or ACTION with a Data-Access-Result or Action-Result other
    than success. ``code`` is the integer, ``result`` the enum member (its type says which
    table), ``context`` what was asked."""

    #: The ASN.1 name of the code this class stands for (``""`` for the base classes).
    spec_name: ClassVar[str] = ""
    #: What usually helps, shown in the message.
    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        result: DataAccessResult | ActionResult,
        context: str = "",
    ) -> None:
        self.result = result
        self.context = context
        super().__init__(message, code=int(result))


class HardwareFaultError(DlmsResultError):
    """hardware-fault (1)."""

    spec_name = "hardware-fault"
    hint = "the meter reports an internal fault; check its status/error register"


class TemporaryFailureError(DlmsResultError):
    """temporary-failure (2)."""

    spec_name = "temporary-failure"
    hint = "the object is busy; try again later"


class ReadWriteDeniedError(DlmsResultError):
    """read-write-denied (3): the association has no right to this attribute or method."""

    spec_name = "read-write-denied"
    hint = "this client association lacks the access right; use a client SAP with higher rights"


class ObjectUndefinedError(DlmsResultError):
    """object-undefined (4): no such object (class id + logical name) or attribute."""

    spec_name = "object-undefined"
    hint = "check the OBIS code, class id and attribute against the meter's object list"


class ObjectClassInconsistentError(DlmsResultError):
    """object-class-inconsistent (9): the object exists with another class id."""

    spec_name = "object-class-inconsistent"
    hint = "the class id does not match the object; read the object list for the right class"


class ObjectUnavailableError(DlmsResultError):
    """object-unavailable (11)."""

    spec_name = "object-unavailable"
    hint = "the object exists but cannot be accessed now (e.g. disabled function)"


class TypeUnmatchedError(DlmsResultError):
    """type-unmatched (12): the value's type does not fit the attribute or method."""

    spec_name = "type-unmatched"
    hint = "read the attribute first and send the value with the same DLMS type"


class ScopeOfAccessViolatedError(DlmsResultError):
    """scope-of-access-violated (13): e.g. a selective access the object does not support."""

    spec_name = "scope-of-access-violated"
    hint = "the access selector or its parameters are outside what the object supports"


class DataBlockUnavailableError(DlmsResultError):
    """data-block-unavailable (14)."""

    spec_name = "data-block-unavailable"
    hint = "the meter could not produce the next block; restart the transfer"


class LongGetAbortedError(DlmsResultError):
    """long-get-aborted (15, Data-Access-Result)."""

    spec_name = "long-get-aborted"
    hint = "the meter aborted the block transfer; read again, perhaps a smaller range"


class NoLongGetInProgressError(DlmsResultError):
    """no-long-get-in-progress (16, Data-Access-Result)."""

    spec_name = "no-long-get-in-progress"
    hint = "a GET-Request-Next was sent with no block transfer running"


class LongSetAbortedError(DlmsResultError):
    """long-set-aborted (17, Data-Access-Result)."""

    spec_name = "long-set-aborted"
    hint = "the meter aborted the block transfer; send the value again"


class NoLongSetInProgressError(DlmsResultError):
    """no-long-set-in-progress (18, Data-Access-Result)."""

    spec_name = "no-long-set-in-progress"
    hint = "a SET datablock was sent with no block transfer running"


class DataBlockNumberInvalidError(DlmsResultError):
    """data-block-number-invalid (19, Data-Access-Result)."""

    spec_name = "data-block-number-invalid"
    hint = "blocks were lost or repeated; restart the transfer"


class LongActionAbortedError(DlmsResultError):
    """long-action-aborted (15, Action-Result)."""

    spec_name = "long-action-aborted"
    hint = "the meter aborted the block transfer; invoke the method again"


class NoLongActionInProgressError(DlmsResultError):
    """no-long-action-in-progress (16, Action-Result)."""

    spec_name = "no-long-action-in-progress"
    hint = "an ACTION block was sent with no block transfer running"


class OtherReasonError(DlmsResultError):
    """other-reason (250)."""

    spec_name = "other-reason"
    hint = ""


class UnknownResultError(DlmsResultError):
    """A result code outside the tables of the standard (vendor specific)."""

    spec_name = ""
    hint = "the code is not in the standard; see the meter's documentation"


#: Data-Access-Result code -> exception class.
DATA_ACCESS_ERRORS: Final[dict[int, type[DlmsResultError]]] = {
    1: HardwareFaultError,
    2: TemporaryFailureError,
    3: ReadWriteDeniedError,
    4: ObjectUndefinedError,
    9: ObjectClassInconsistentError,
    11: ObjectUnavailableError,
    12: TypeUnmatchedError,
    13: ScopeOfAccessViolatedError,
    14: DataBlockUnavailableError,
    15: LongGetAbortedError,
    16: NoLongGetInProgressError,
    17: LongSetAbortedError,
    18: NoLongSetInProgressError,
    19: DataBlockNumberInvalidError,
    250: OtherReasonError,
}

#: Action-Result code -> exception class.
ACTION_ERRORS: Final[dict[int, type[DlmsResultError]]] = {
    1: HardwareFaultError,
    2: TemporaryFailureError,
    3: ReadWriteDeniedError,
    4: ObjectUndefinedError,
    9: ObjectClassInconsistentError,
    11: ObjectUnavailableError,
    12: TypeUnmatchedError,
    13: ScopeOfAccessViolatedError,
    14: DataBlockUnavailableError,
    15: LongActionAbortedError,
    16: NoLongActionInProgressError,
    250: OtherReasonError,
}


class Describable(Protocol):
    """Anything that can say what was asked (the attribute and method descriptors can)."""

    def describe(self) -> str: ...


def _context_text(context: Describable | str | None) -> str:
    if context is None:
        return ""
    if isinstance(context, str):
        return context
    return context.describe()


def error_for_result(
    result: DataAccessResult | ActionResult,
    context: Describable | str | None = None,
    *,
    service: str = "",
) -> DlmsResultError | None:
    """The exception for a non-success ``result`` (``None`` for success), not raised.

    ``context`` says what was asked (a descriptor or a text), ``service`` names the service
    (``"GET"``, ``"SET"``, ``"ACTION"``); both go into the message.
    """
    if isinstance(result, ActionResult):
        table = ACTION_ERRORS
        kind = "Action-Result"
    elif isinstance(result, DataAccessResult):
        table = DATA_ACCESS_ERRORS
        kind = "Data-Access-Result"
    else:
        raise LocalProtocolError(
            f"expected a DataAccessResult or ActionResult, got {type(result).__name__}", layer="xdlms"
        )
    code = int(result)
    if code == 0:
        return None
    cls = table.get(code, UnknownResultError)
    what = " ".join(part for part in (service, _context_text(context)) if part) or "request"
    message = f"{what}: the meter answered {result.spec_name} ({kind} {code})"
    if cls.hint:
        message += f"; {cls.hint}"
    return cls(message, result=result, context=what)


def raise_for_result(
    result: DataAccessResult | ActionResult,
    context: Describable | str | None = None,
    *,
    service: str = "",
) -> None:
    """Raise the :class:`DlmsResultError` subclass for ``result``; return if it is success.

    ``raise_for_result(DataAccessResult.READ_WRITE_DENIED, descriptor, service="GET")`` raises
    :class:`ReadWriteDeniedError` with the message ``"GET class 3 1-0:1.8.0*255 attribute 2: the
    meter answered read-write-denied (Data-Access-Result 3); this client association lacks the
    access right; use a client SAP with higher rights"``.
    """
    error = error_for_result(result, context, service=service)
    if error is not None:
        raise error


class ServiceRejectedError(DeviceRejectedError):
    """The meter refused a request with an ExceptionResponse (0xD8) or a ConfirmedServiceError
    (0x0E) instead of a result code. ``code`` is the spec text of the refusal, e.g.
    ``"service-not-allowed / operation-not-possible"``."""

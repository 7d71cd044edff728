"""ExceptionResponse (tag 0xD8) and the refusals that are not result codes (Green Book DLMS UA
1000-2 clause 9.5 ASN.1; IEC 62056-5-3).

Rule: a server that cannot even start on a request (wrong state, unknown service, APDU too
long, deciphering failed) answers with an ExceptionResponse instead of the service's response;
a ConfirmedServiceError (tag 0x0E, :class:`metercom.codec.dlms.initiate.ConfirmedServiceError`)
is the older form of the same. Both decode as values; :func:`rejection_error` turns either into
a :class:`~metercom.codec.dlms.results.ServiceRejectedError` when the caller decides to raise.

Theory of operation (A-XDR)::

    ExceptionResponse ::= SEQUENCE {
        state-error   [0] IMPLICIT ENUMERATED { service-not-allowed (1), service-unknown (2) },
        service-error [1] CHOICE {
            operation-not-possible [1] NULL, service-not-supported [2] NULL, other-reason [3] NULL,
            pdu-too-long [4] NULL, deciphering-error [5] NULL,
            invocation-counter-error [6] Unsigned32 } }

    D8  state-error(1)  service-error(1)  [invocation counter(4) when service-error is 6]

The invocation counter of invocation-counter-error is the lowest value the server will accept;
the session resumes its counter from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

from metercom.codec.dlms.initiate import ConfirmedServiceError
from metercom.codec.dlms.results import Describable, ServiceRejectedError
from metercom.errors import LocalProtocolError

from ._apdu import XdlmsApdu
from ._wire import LAYER, Reader, check_uint

__all__ = [
    "ExceptionResponse",
    "ExceptionServiceError",
    "ExceptionStateError",
    "rejection_error",
]


class ExceptionStateError(enum.IntEnum):
    """``state-error`` of an ExceptionResponse."""

    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(enum.IntEnum):
    """``service-error`` CHOICE of an ExceptionResponse."""

    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


def _spec(member: enum.IntEnum) -> str:
    return member.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class ExceptionResponse(XdlmsApdu):
    """exception-response (``D8``): the server refused to process the request at all.

    ``invocation_counter`` is present exactly when ``service_error`` is
    invocation-counter-error.
    """

    state_error: ExceptionStateError
    service_error: ExceptionServiceError
    invocation_counter: int | None = None

    TAG: ClassVar[int] = 0xD8
    CHOICE: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.state_error, ExceptionStateError):
            raise LocalProtocolError("state_error must be an ExceptionStateError", layer=LAYER)
        if not isinstance(self.service_error, ExceptionServiceError):
            raise LocalProtocolError("service_error must be an ExceptionServiceError", layer=LAYER)
        counter_error = self.service_error == ExceptionServiceError.INVOCATION_COUNTER_ERROR
        if counter_error:
            check_uint(self.invocation_counter, 32, "invocation counter")
        elif self.invocation_counter is not None:
            raise LocalProtocolError(
                "invocation_counter is only sent with invocation-counter-error", layer=LAYER
            )

    def to_bytes(self) -> bytes:
        out = bytes((self.TAG, self.state_error, self.service_error))
        if self.invocation_counter is not None:
            out += self.invocation_counter.to_bytes(4, "big")
        return out

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        at = r.pos
        raw_state = r.u8("state-error")
        try:
            state = ExceptionStateError(raw_state)
        except ValueError:
            raise r.error(f"state-error must be 1 or 2, got {raw_state}", at) from None
        at = r.pos
        raw_service = r.u8("service-error choice")
        try:
            service = ExceptionServiceError(raw_service)
        except ValueError:
            raise r.error(f"service-error choice must be 1..6, got {raw_service}", at) from None
        counter = None
        if service == ExceptionServiceError.INVOCATION_COUNTER_ERROR:
            counter = r.u32("invocation counter")
        return cls(state, service, counter)

    def describe(self) -> str:
        """``"service-not-allowed / operation-not-possible"``."""
        text = f"{_spec(self.state_error)} / {_spec(self.service_error)}"
        if self.invocation_counter is not None:
            text += f" (expected invocation counter >= {self.invocation_counter})"
        return text


def rejection_error(
    apdu: ExceptionResponse | ConfirmedServiceError,
    context: Describable | str | None = None,
    *,
    service: str = "",
) -> ServiceRejectedError:
    """The :class:`ServiceRejectedError` for an ExceptionResponse or ConfirmedServiceError that
    answered a request (``context``: what was asked; ``service``: ``"GET"``, ...)."""
    asked = context if isinstance(context, str) else "" if context is None else context.describe()
    what = " ".join(part for part in (service, asked) if part) or "request"
    code = apdu.describe()
    kind = "ExceptionResponse" if isinstance(apdu, ExceptionResponse) else "ConfirmedServiceError"
    return ServiceRejectedError(f"{what}: the meter refused the request: {kind} {code}", code=code)

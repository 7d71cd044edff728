"""Unconfirmed server-initiated APDUs: data-notification (tag 0x0F, push) and
event-notification-request (tag 0xC2) (Green Book DLMS UA 1000-2 clause 9.3 DataNotification and
EventNotification services, clause 9.5 ASN.1; IEC 62056-5-3).

Rule: see :mod:`metercom.codec.dlms.xdlms`. Neither APDU has a response.

Theory of operation (A-XDR)::

    Data-Notification ::= SEQUENCE {
        long-invoke-id-and-priority  Long-Invoke-Id-And-Priority,    -- Unsigned32
        date-time                    OCTET STRING,                   -- empty: no time
        notification-body            Data }

    0F  long-iid(4)  00 | len date-time  Data

    Event-Notification-Request ::= SEQUENCE {
        time                        OCTET STRING OPTIONAL,
        cosem-attribute-descriptor  Cosem-Attribute-Descriptor,
        attribute-value             Data }

    C2  00 | 01 len time  descriptor(9)  Data

The date-time is an OCTET STRING, normally 12 bytes (a COSEM date-time; gurux-dlms also reads
5-byte dates and 4-byte times); it is kept as the raw bytes and :attr:`cosem_date_time`
interprets it. Field quirk: Kaifa MA304 HAN-port meters send the date-time as a tagged ``Data``
octet-string, ``09 0C`` + 12 bytes, instead of ``0C`` + 12 bytes (published HAN captures such as
``0F 40000000 09 0C 07E4...``). A spec-conform date-time of 9 bytes starting with 0x0C cannot
be a COSEM date, date or time, so ``09 0C`` is read as that quirk; ``date_time_tagged`` records
it and the APDU re-encodes byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from metercom.codec.dlms.axdr import encode_data
from metercom.errors import LocalProtocolError
from metercom.model.dlms_data import CosemDateTime, Data

from ._apdu import XdlmsApdu, check_attribute
from ._wire import LAYER, Reader, check_bytes, octet_string
from .descriptors import CosemAttributeDescriptor, LongInvokeIdAndPriority

__all__ = ["DataNotification", "EventNotificationRequest"]


def _check_time(value: object, what: str) -> None:
    if value is None:
        return
    check_bytes(value, what)
    if not value:
        raise LocalProtocolError(f"{what} must not be empty; use None for no time", layer=LAYER)


def _cosem_date_time(value: bytes | None) -> CosemDateTime | None:
    if value is None or len(value) != 12:
        return None
    return CosemDateTime.from_bytes(value)


@dataclass(frozen=True, slots=True)
class DataNotification(XdlmsApdu):
    """data-notification (``0F``): pushed data, e.g. a HAN-port telegram or a push setup's list.

    ``date_time`` is the raw date-time octets (``None``: absent); ``date_time_tagged`` marks the
    Kaifa form (see the module docstring).
    """

    long_invoke_id_and_priority: LongInvokeIdAndPriority
    date_time: bytes | None
    body: Data
    date_time_tagged: bool = field(default=False, kw_only=True)

    TAG: ClassVar[int] = 0x0F
    CHOICE: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.long_invoke_id_and_priority, LongInvokeIdAndPriority):
            raise LocalProtocolError(
                "long_invoke_id_and_priority must be a LongInvokeIdAndPriority", layer=LAYER
            )
        _check_time(self.date_time, "date-time")
        if not isinstance(self.body, Data):
            raise LocalProtocolError(f"body must be Data, got {type(self.body).__name__}", layer=LAYER)
        if self.date_time_tagged and self.date_time is None:
            raise LocalProtocolError("date_time_tagged needs a date_time", layer=LAYER)

    @property
    def cosem_date_time(self) -> CosemDateTime | None:
        """The date-time as a :class:`CosemDateTime` when it has the 12-byte form."""
        return _cosem_date_time(self.date_time)

    def to_bytes(self) -> bytes:
        head = bytes((self.TAG,)) + self.long_invoke_id_and_priority.to_bytes()
        if self.date_time is None:
            head += b"\x00"
        elif self.date_time_tagged:
            head += b"\x09" + octet_string(self.date_time)
        else:
            head += octet_string(self.date_time)
        return head + encode_data(self.body)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = LongInvokeIdAndPriority.from_int(r.u32("long-invoke-id-and-priority"))
        buf = r.buf
        pos = r.pos
        tagged = pos + 1 < r.end and buf[pos] == 0x09 and buf[pos + 1] == 0x0C
        if tagged:
            r.pos += 1
        raw = r.octet_string("date-time")
        date_time = raw or None
        return cls(iid, date_time, r.data("notification-body"), date_time_tagged=tagged)


@dataclass(frozen=True, slots=True)
class EventNotificationRequest(XdlmsApdu):
    """event-notification-request (``C2``): the server reports an attribute value (an event)."""

    attribute: CosemAttributeDescriptor
    value: Data
    time: bytes | None = None

    TAG: ClassVar[int] = 0xC2
    CHOICE: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        check_attribute(self.attribute)
        if not isinstance(self.value, Data):
            raise LocalProtocolError(f"value must be Data, got {type(self.value).__name__}", layer=LAYER)
        if self.time is not None:
            check_bytes(self.time, "time")

    @property
    def cosem_date_time(self) -> CosemDateTime | None:
        """The time as a :class:`CosemDateTime` when it has the 12-byte form."""
        return _cosem_date_time(self.time)

    def to_bytes(self) -> bytes:
        time = b"\x00" if self.time is None else b"\x01" + octet_string(self.time)
        return bytes((self.TAG,)) + time + self.attribute.to_bytes() + encode_data(self.value)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        time = r.octet_string("time") if r.flag("time flag") else None
        attribute = CosemAttributeDescriptor.read(r)
        return cls(attribute, r.data("attribute-value"), time)

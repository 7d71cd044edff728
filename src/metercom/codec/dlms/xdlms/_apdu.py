"""The common shape of the xDLMS service APDU classes (internal).

Every APDU class has ``TAG`` (the XDLMS-APDU CHOICE tag, e.g. 0xC4 get-response) and, for the
services that are themselves a CHOICE, ``CHOICE`` (e.g. 2 get-response-with-datablock);
``CHOICE`` is ``None`` for APDUs without one (data-notification, exception-response, ...).
``from_bytes`` checks both, lets the class read its body with a :class:`Reader`, then checks
that nothing is left over; :func:`metercom.codec.dlms.xdlms.decode_xdlms_apdu` dispatches on
the same two bytes and calls the same body readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self, cast

from metercom.codec.dlms.axdr import encode_data
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.errors import LocalProtocolError
from metercom.model.dlms_data import Data

from ._wire import LAYER, Buffer, Reader, as_bytes, check_bytes, check_uint, octet_string, u32
from .descriptors import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    InvokeIdAndPriority,
    SelectiveAccessDescriptor,
)

__all__ = ["BlockNumberApdu", "DataBlockApdu", "XdlmsApdu"]


class XdlmsApdu:
    """Base of the xDLMS service APDU dataclasses."""

    __slots__ = ()

    TAG: ClassVar[int]
    CHOICE: ClassVar[int | None] = None

    @classmethod
    def from_bytes(cls, data: Buffer) -> Self:
        """Decode a complete APDU of exactly this type; trailing bytes are an error."""
        buf = as_bytes(data)
        r = Reader(buf, cls.__name__)
        tag = r.u8("tag")
        if tag != cls.TAG:
            raise r.error(f"expected tag 0x{cls.TAG:02x}, got 0x{tag:02x}", at=0)
        if cls.CHOICE is not None:
            choice = r.u8("choice")
            if choice != cls.CHOICE:
                raise r.error(f"expected choice {cls.CHOICE} after tag 0x{tag:02x}, got {choice}", at=1)
        value = cls.read_body(r)
        r.finish()
        return value

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        """Read the fields after the tag (and choice)."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Encode the complete APDU."""
        raise NotImplementedError

    def _head(self, iid: InvokeIdAndPriority) -> bytes:
        """Tag, choice and invoke-id-and-priority: the first three bytes of a service APDU."""
        return bytes((self.TAG, cast(int, self.CHOICE), iid.to_byte()))


@dataclass(frozen=True, slots=True)
class DataBlockApdu(XdlmsApdu):
    """Base of the APDUs whose body is the invoke-id and one DataBlock-SA and nothing else
    (``TAG CHOICE iid last-block block-number(4) raw-data``): action-request-with-pblock,
    action-response-with-pblock and set-request-with-datablock. A subclass only names its
    ``TAG`` and ``CHOICE``; fields, checks and both directions of the encoding live here."""

    last_block: bool
    block_number: int
    raw_data: bytes
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    def __post_init__(self) -> None:
        check_block(self.last_block, self.block_number, self.raw_data)
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + block_bytes(
            self.last_block, self.block_number, self.raw_data
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority"))
        last, number, raw = read_block(r)
        return cls(last, number, raw, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class BlockNumberApdu(XdlmsApdu):
    """Base of the APDUs whose body is the invoke-id and one block-number and nothing else
    (``TAG CHOICE iid block-number(4)``), the acknowledgement of a block: get-request-next,
    action-request-next-pblock, action-response-next-pblock and set-response-datablock. A
    subclass only names its ``TAG`` and ``CHOICE``."""

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    def __post_init__(self) -> None:
        check_uint(self.block_number, 32, "block-number")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + u32(self.block_number)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority"))
        return cls(r.u32("block-number"), invoke_id_and_priority=iid)


# ------------------------------------------------------------------------------------------------
# Shared field codecs
# ------------------------------------------------------------------------------------------------


def data_access_result(r: Reader, what: str) -> DataAccessResult:
    return DataAccessResult(r.u8(what))


def action_result(r: Reader, what: str) -> ActionResult:
    return ActionResult(r.u8(what))


def encode_data_access_result(value: object, what: str) -> bytes:
    if not isinstance(value, DataAccessResult):
        raise LocalProtocolError(
            f"{what} must be a DataAccessResult, got {type(value).__name__}", layer=LAYER
        )
    return bytes((value,))


def read_get_data_result(r: Reader, what: str) -> Data | DataAccessResult:
    """``Get-Data-Result ::= CHOICE {data [0] Data, data-access-result [1] IMPLICIT ...}``."""
    at = r.pos
    choice = r.u8(f"{what} choice")
    if choice == 0:
        return r.data(what)
    if choice == 1:
        return data_access_result(r, f"{what} data-access-result")
    raise r.error(
        f"{what}: Get-Data-Result choice must be 0 (data) or 1 (data-access-result), got {choice}", at
    )


def encode_get_data_result(value: object, what: str) -> bytes:
    if isinstance(value, Data):
        return b"\x00" + encode_data(value)
    if isinstance(value, DataAccessResult):
        return bytes((1, value))
    raise LocalProtocolError(
        f"{what} must be Data or a DataAccessResult, got {type(value).__name__}", layer=LAYER
    )


def check_iid(value: object) -> None:
    """Check an invoke_id_and_priority field when building."""
    if not isinstance(value, InvokeIdAndPriority):
        raise LocalProtocolError(
            f"invoke_id_and_priority must be an InvokeIdAndPriority, got {type(value).__name__}", layer=LAYER
        )


def check_block(last_block: object, block_number: object, raw_data: object) -> None:
    """Check the fields of a DataBlock-SA / DataBlock-G when building."""
    if not isinstance(last_block, bool):
        raise LocalProtocolError(f"last_block must be a bool, got {type(last_block).__name__}", layer=LAYER)
    check_uint(block_number, 32, "block-number")
    if raw_data is not None:
        check_bytes(raw_data, "raw-data")


def check_attribute(value: object) -> None:
    if not isinstance(value, CosemAttributeDescriptor):
        raise LocalProtocolError(
            f"attribute must be a CosemAttributeDescriptor, got {type(value).__name__}", layer=LAYER
        )


def selection_bytes(selection: SelectiveAccessDescriptor | None) -> bytes:
    return b"\x00" if selection is None else b"\x01" + selection.to_bytes()


def normalize_tuple(obj: object, name: str, kinds: type | tuple[type, ...], what: str) -> None:
    items = getattr(obj, name)
    if not isinstance(items, tuple):
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise LocalProtocolError(f"{what} must be a sequence, got {type(items).__name__}", layer=LAYER)
        items = tuple(items)
        object.__setattr__(obj, name, items)
    for item in items:
        if not isinstance(item, kinds):
            raise LocalProtocolError(f"{what} element has the wrong type: {type(item).__name__}", layer=LAYER)


def check_method(value: object) -> None:
    if not isinstance(value, CosemMethodDescriptor):
        raise LocalProtocolError(
            f"method must be a CosemMethodDescriptor, got {type(value).__name__}", layer=LAYER
        )


def encode_optional_data(value: Data | None) -> bytes:
    """``Data OPTIONAL``: 00, or 01 and the value."""
    return b"\x00" if value is None else b"\x01" + encode_data(value)


def block_bytes(last_block: bool, block_number: int, raw_data: bytes) -> bytes:
    """DataBlock-SA: last-block, block-number, raw-data."""
    return (b"\x01" if last_block else b"\x00") + u32(block_number) + octet_string(raw_data)


def read_block(r: Reader) -> tuple[bool, int, bytes]:
    """DataBlock-SA: ``(last_block, block_number, raw_data)``."""
    last = r.flag("last-block")
    number = r.u32("block-number")
    return last, number, r.octet_string("raw-data")

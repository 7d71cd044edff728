"""GET service APDUs: get-request (tag 0xC0) and get-response (tag 0xC4), LN referencing
(Green Book DLMS UA 1000-2 clause 9.3 GET service, clause 9.5 ASN.1; IEC 62056-5-3).

Rule: one frozen dataclass per CHOICE alternative, named as the ASN.1 type; see
:mod:`metercom.codec.dlms.xdlms` for the shared rules.

Theory of operation (A-XDR)::

    Get-Request  ::= CHOICE { get-request-normal [1], get-request-next [2], get-request-with-list [3] }
    Get-Response ::= CHOICE { get-response-normal [1], get-response-with-datablock [2],
                              get-response-with-list [3] }

    C0 01 iid  descriptor(9)  access-selection OPTIONAL           get-request-normal
    C0 02 iid  block-number(4)                                    get-request-next
    C0 03 iid  n  (descriptor access-selection OPTIONAL) * n      get-request-with-list
    C4 01 iid  Get-Data-Result                                    get-response-normal
    C4 02 iid  last-block  block-number(4)  00 raw-data | 01 dar  get-response-with-datablock
    C4 03 iid  n  Get-Data-Result * n                             get-response-with-list

    Get-Data-Result ::= CHOICE { data [0] Data, data-access-result [1] Data-Access-Result }

A long response is sent in blocks (get-response-with-datablock): the raw-data of all blocks
concatenated is the A-XDR encoding of the ``Data`` (or, for a with-list request, of the
``SEQUENCE OF Get-Data-Result``, see :func:`decode_get_data_result_list`). The client
acknowledges each block with get-request-next carrying the number of the block it received;
block numbers start at 1. :mod:`metercom.codec.dlms.blocks` runs that exchange for both roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from metercom.codec.dlms.axdr import encode_length
from metercom.codec.dlms.results import DataAccessResult
from metercom.errors import LocalProtocolError
from metercom.model.dlms_data import Data

from ._apdu import (
    BlockNumberApdu,
    XdlmsApdu,
    check_attribute,
    check_block,
    check_iid,
    data_access_result,
    encode_get_data_result,
    normalize_tuple,
    read_get_data_result,
    selection_bytes,
)
from ._wire import LAYER, Buffer, Reader, as_bytes, octet_string, u32
from .descriptors import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    InvokeIdAndPriority,
    SelectiveAccessDescriptor,
    as_selective_access,
)

__all__ = [
    "GetDataResult",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "decode_get_data_result_list",
    "encode_get_data_result_list",
]

#: ``Get-Data-Result``: the value, or why there is none.
GetDataResult = Data | DataAccessResult

_IID = InvokeIdAndPriority.from_byte


@dataclass(frozen=True, slots=True)
class GetRequestNormal(XdlmsApdu):
    """get-request-normal (``C0 01``): read one attribute, optionally with selective access."""

    attribute: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC0
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        check_attribute(self.attribute)
        object.__setattr__(self, "access_selection", as_selective_access(self.access_selection))
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + self.attribute.to_bytes()
            + selection_bytes(self.access_selection)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        attribute = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read(r) if r.flag("access-selection flag") else None
        return cls(attribute, selection, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class GetRequestNext(BlockNumberApdu):
    """get-request-next (``C0 02``): acknowledge datablock ``block_number``, ask for the next."""

    TAG: ClassVar[int] = 0xC0
    CHOICE: ClassVar[int | None] = 2


@dataclass(frozen=True, slots=True)
class GetRequestWithList(XdlmsApdu):
    """get-request-with-list (``C0 03``): read several attributes in one request.

    Needs the multiple-references conformance bit; the response may be long (see
    :func:`metercom.codec.dlms.blocks.split_get_requests`).
    """

    attributes: Sequence[CosemAttributeDescriptorWithSelection]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC0
    CHOICE: ClassVar[int | None] = 3

    def __post_init__(self) -> None:
        normalize_tuple(
            self, "attributes", CosemAttributeDescriptorWithSelection, "attribute-descriptor-list"
        )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + encode_length(len(self.attributes))
            + b"".join(a.to_bytes() for a in self.attributes)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        n = r.count("attribute-descriptor-list", 10)
        items = tuple(CosemAttributeDescriptorWithSelection.read(r) for _ in range(n))
        return cls(items, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class GetResponseNormal(XdlmsApdu):
    """get-response-normal (``C4 01``): the value read, or the Data-Access-Result why not."""

    result: GetDataResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC4
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        if not isinstance(self.result, Data | DataAccessResult):
            raise LocalProtocolError(
                f"result must be Data or a DataAccessResult, got {type(self.result).__name__}", layer=LAYER
            )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + encode_get_data_result(self.result, "result")

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        return cls(read_get_data_result(r, "result"), invoke_id_and_priority=iid)

    @classmethod
    def raw_result_from_bytes(cls, data: Buffer) -> tuple[InvokeIdAndPriority, bytes | DataAccessResult]:
        """Decode the header only: the invoke-id and either the *undecoded* A-XDR bytes of the
        value or the Data-Access-Result.

        For fast paths such as :class:`metercom.codec.dlms.axdr.ProfileDecoder`, which read
        the raw value themselves (and check it is exactly one value).
        """
        r = Reader(as_bytes(data), cls.__name__)
        if r.u8("tag") != cls.TAG or r.u8("choice") != cls.CHOICE:
            raise r.error("not a get-response-normal (C4 01)", at=0)
        iid = _IID(r.u8("invoke-id-and-priority"))
        at = r.pos
        choice = r.u8("result choice")
        if choice == 0:
            if not r.left:
                raise r.truncated("result data", 1)
            return iid, r.rest()
        if choice == 1:
            result = data_access_result(r, "result data-access-result")
            r.finish()
            return iid, result
        raise r.error(f"Get-Data-Result choice must be 0 or 1, got {choice}", at)


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock(XdlmsApdu):
    """get-response-with-datablock (``C4 02``): one block of a long response (DataBlock-G).

    ``result`` is the block's raw-data (bytes), or a Data-Access-Result when the server ends
    the transfer with an error (then ``last_block`` is normally true).
    """

    last_block: bool
    block_number: int
    result: bytes | DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC4
    CHOICE: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        check_block(self.last_block, self.block_number, None)
        if not isinstance(self.result, bytes | DataAccessResult):
            raise LocalProtocolError(
                f"result must be raw-data bytes or a DataAccessResult, got {type(self.result).__name__}",
                layer=LAYER,
            )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        head = (
            self._head(self.invoke_id_and_priority)
            + (b"\x01" if self.last_block else b"\x00")
            + u32(self.block_number)
        )
        result = self.result
        if isinstance(result, DataAccessResult):
            return head + bytes((1, result))
        return head + b"\x00" + octet_string(result)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        last = r.flag("last-block")
        number = r.u32("block-number")
        at = r.pos
        choice = r.u8("result choice")
        result: bytes | DataAccessResult
        if choice == 0:
            result = r.octet_string("raw-data")
        elif choice == 1:
            result = data_access_result(r, "data-access-result")
        else:
            raise r.error(
                f"DataBlock-G result choice must be 0 (raw-data) or 1 (data-access-result), got {choice}", at
            )
        return cls(last, number, result, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class GetResponseWithList(XdlmsApdu):
    """get-response-with-list (``C4 03``): one Get-Data-Result per requested attribute."""

    results: Sequence[GetDataResult]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC4
    CHOICE: ClassVar[int | None] = 3

    def __post_init__(self) -> None:
        normalize_tuple(self, "results", (Data, DataAccessResult), "result list")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + encode_get_data_result_list(self.results)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        return cls(_read_result_list(r), invoke_id_and_priority=iid)


def _read_result_list(r: Reader) -> tuple[GetDataResult, ...]:
    n = r.count("result list", 2)
    return tuple(read_get_data_result(r, f"result {i}") for i in range(n))


def encode_get_data_result_list(results: Sequence[GetDataResult]) -> bytes:
    """``SEQUENCE OF Get-Data-Result``: what the raw-data of a with-list response in blocks
    carries."""
    return encode_length(len(results)) + b"".join(
        encode_get_data_result(item, f"result {i}") for i, item in enumerate(results)
    )


def decode_get_data_result_list(data: Buffer) -> tuple[GetDataResult, ...]:
    """Decode the reassembled raw-data of a get-request-with-list answered in datablocks."""
    r = Reader(as_bytes(data), "Get-Response-With-List raw-data")
    results = _read_result_list(r)
    r.finish()
    return results

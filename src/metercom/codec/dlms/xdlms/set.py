"""SET service APDUs: set-request (tag 0xC1) and set-response (tag 0xC5), LN referencing
(Green Book DLMS UA 1000-2 clause 9.3 SET service, clause 9.5 ASN.1; IEC 62056-5-3).

Rule: one frozen dataclass per CHOICE alternative, named as the ASN.1 type; see
:mod:`metercom.codec.dlms.xdlms` for the shared rules.

Theory of operation (A-XDR)::

    C1 01 iid  descriptor  access-selection OPTIONAL  Data                   set-request-normal
    C1 02 iid  descriptor  access-selection OPTIONAL  DataBlock-SA           ...-with-first-datablock
    C1 03 iid  DataBlock-SA                                                  ...-with-datablock
    C1 04 iid  n (descriptor access-selection OPTIONAL)*n  m Data*m          ...-with-list
    C1 05 iid  n (descriptor access-selection OPTIONAL)*n  DataBlock-SA      ...-with-list-and-first-datablock
    C5 01 iid  Data-Access-Result                                            set-response-normal
    C5 02 iid  block-number(4)                                               set-response-datablock
    C5 03 iid  Data-Access-Result  block-number(4)                           set-response-last-datablock
    C5 04 iid  n Data-Access-Result*n  block-number(4)                       ...-last-datablock-with-list
    C5 05 iid  n Data-Access-Result*n                                        set-response-with-list

    DataBlock-SA ::= SEQUENCE { last-block BOOLEAN, block-number Unsigned32, raw-data OCTET STRING }

A value too long for one APDU is sent in blocks: the raw-data of all blocks concatenated is the
A-XDR encoding of the ``Data`` (for the with-list form: of the ``SEQUENCE OF Data`` value
list). The server acknowledges each block with set-response-datablock and answers the last one
with set-response-last-datablock (result and block number). Block numbers start at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from metercom.codec.dlms.axdr import encode_data, encode_length
from metercom.codec.dlms.results import DataAccessResult
from metercom.errors import LocalProtocolError
from metercom.model.dlms_data import Data

from ._apdu import (
    BlockNumberApdu,
    DataBlockApdu,
    XdlmsApdu,
    block_bytes,
    check_attribute,
    check_block,
    check_iid,
    data_access_result,
    encode_data_access_result,
    normalize_tuple,
    read_block,
    selection_bytes,
)
from ._wire import LAYER, Reader, check_uint, u32
from .descriptors import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    InvokeIdAndPriority,
    SelectiveAccessDescriptor,
    as_selective_access,
)

__all__ = [
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
]

_IID = InvokeIdAndPriority.from_byte


def _read_attributes(r: Reader) -> tuple[CosemAttributeDescriptorWithSelection, ...]:
    n = r.count("attribute-descriptor-list", 10)
    return tuple(CosemAttributeDescriptorWithSelection.read(r) for _ in range(n))


def _attributes_bytes(items: Sequence[CosemAttributeDescriptorWithSelection]) -> bytes:
    return encode_length(len(items)) + b"".join(a.to_bytes() for a in items)


def _read_results(r: Reader) -> tuple[DataAccessResult, ...]:
    n = r.count("result list", 1)
    return tuple(data_access_result(r, f"result {i}") for i in range(n))


def _results_bytes(items: Sequence[DataAccessResult]) -> bytes:
    return encode_length(len(items)) + bytes(items)


@dataclass(frozen=True, slots=True)
class SetRequestNormal(XdlmsApdu):
    """set-request-normal (``C1 01``): write one attribute."""

    attribute: CosemAttributeDescriptor
    value: Data
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC1
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        check_attribute(self.attribute)
        if not isinstance(self.value, Data):
            raise LocalProtocolError(f"value must be Data, got {type(self.value).__name__}", layer=LAYER)
        object.__setattr__(self, "access_selection", as_selective_access(self.access_selection))
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + self.attribute.to_bytes()
            + selection_bytes(self.access_selection)
            + encode_data(self.value)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        attribute = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read(r) if r.flag("access-selection flag") else None
        return cls(attribute, r.data("value"), selection, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDatablock(XdlmsApdu):
    """set-request-with-first-datablock (``C1 02``): the attribute and the first block of its value."""

    attribute: CosemAttributeDescriptor
    last_block: bool
    block_number: int
    raw_data: bytes
    access_selection: SelectiveAccessDescriptor | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC1
    CHOICE: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        check_attribute(self.attribute)
        check_block(self.last_block, self.block_number, self.raw_data)
        object.__setattr__(self, "access_selection", as_selective_access(self.access_selection))
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + self.attribute.to_bytes()
            + selection_bytes(self.access_selection)
            + block_bytes(self.last_block, self.block_number, self.raw_data)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        attribute = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read(r) if r.flag("access-selection flag") else None
        last, number, raw = read_block(r)
        return cls(attribute, last, number, raw, selection, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithDatablock(DataBlockApdu):
    """set-request-with-datablock (``C1 03``): a further block of the value (``last_block``,
    ``block_number``, ``raw_data``; see :class:`DataBlockApdu`)."""

    TAG: ClassVar[int] = 0xC1
    CHOICE: ClassVar[int | None] = 3


@dataclass(frozen=True, slots=True)
class SetRequestWithList(XdlmsApdu):
    """set-request-with-list (``C1 04``): write several attributes, one value each."""

    attributes: Sequence[CosemAttributeDescriptorWithSelection]
    values: Sequence[Data]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC1
    CHOICE: ClassVar[int | None] = 4

    def __post_init__(self) -> None:
        normalize_tuple(
            self, "attributes", CosemAttributeDescriptorWithSelection, "attribute-descriptor-list"
        )
        normalize_tuple(self, "values", Data, "value-list")
        if len(self.attributes) != len(self.values):
            raise LocalProtocolError(
                f"{len(self.attributes)} attributes but {len(self.values)} values", layer=LAYER
            )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + _attributes_bytes(self.attributes)
            + encode_length(len(self.values))
            + b"".join(encode_data(v) for v in self.values)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        attributes = _read_attributes(r)
        at = r.pos
        n = r.count("value-list", 1)
        if n != len(attributes):
            raise r.error(f"value-list has {n} values for {len(attributes)} attributes", at)
        values = tuple(r.data(f"value {i}") for i in range(n))
        return cls(attributes, values, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetRequestWithListAndFirstDatablock(XdlmsApdu):
    """set-request-with-list-and-first-datablock (``C1 05``): several attributes, and the first
    block of the encoded value list."""

    attributes: Sequence[CosemAttributeDescriptorWithSelection]
    last_block: bool
    block_number: int
    raw_data: bytes
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC1
    CHOICE: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        normalize_tuple(
            self, "attributes", CosemAttributeDescriptorWithSelection, "attribute-descriptor-list"
        )
        check_block(self.last_block, self.block_number, self.raw_data)
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + _attributes_bytes(self.attributes)
            + block_bytes(self.last_block, self.block_number, self.raw_data)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        attributes = _read_attributes(r)
        last, number, raw = read_block(r)
        return cls(attributes, last, number, raw, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetResponseNormal(XdlmsApdu):
    """set-response-normal (``C5 01``): the Data-Access-Result of a set-request-normal."""

    result: DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC5
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        encode_data_access_result(self.result, "result")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + bytes((self.result,))

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        return cls(data_access_result(r, "result"), invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetResponseDatablock(BlockNumberApdu):
    """set-response-datablock (``C5 02``): block ``block_number`` received, send the next."""

    TAG: ClassVar[int] = 0xC5
    CHOICE: ClassVar[int | None] = 2


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablock(XdlmsApdu):
    """set-response-last-datablock (``C5 03``): the result after the last block (or an abort)."""

    result: DataAccessResult
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC5
    CHOICE: ClassVar[int | None] = 3

    def __post_init__(self) -> None:
        encode_data_access_result(self.result, "result")
        check_uint(self.block_number, 32, "block-number")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + bytes((self.result,)) + u32(self.block_number)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        result = data_access_result(r, "result")
        return cls(result, r.u32("block-number"), invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablockWithList(XdlmsApdu):
    """set-response-last-datablock-with-list (``C5 04``): one result per attribute after the
    last block of a with-list SET."""

    results: Sequence[DataAccessResult]
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC5
    CHOICE: ClassVar[int | None] = 4

    def __post_init__(self) -> None:
        normalize_tuple(self, "results", DataAccessResult, "result list")
        check_uint(self.block_number, 32, "block-number")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + _results_bytes(self.results) + u32(self.block_number)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        results = _read_results(r)
        return cls(results, r.u32("block-number"), invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class SetResponseWithList(XdlmsApdu):
    """set-response-with-list (``C5 05``): one Data-Access-Result per attribute."""

    results: Sequence[DataAccessResult]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC5
    CHOICE: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        normalize_tuple(self, "results", DataAccessResult, "result list")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return self._head(self.invoke_id_and_priority) + _results_bytes(self.results)

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        return cls(_read_results(r), invoke_id_and_priority=iid)

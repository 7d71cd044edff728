"""ACTION service APDUs: action-request (tag 0xC3) and action-response (tag 0xC7), LN
referencing (Green Book DLMS UA 1000-2 clause 9.3 ACTION service, clause 9.5 ASN.1; IEC 62056-5-3).

Rule: one frozen dataclass per CHOICE alternative, named as the ASN.1 type; see
:mod:`metercom.codec.dlms.xdlms` for the shared rules.

Theory of operation (A-XDR)::

    C3 01 iid  method(9)  Data OPTIONAL                             action-request-normal
    C3 02 iid  block-number(4)                                      action-request-next-pblock
    C3 03 iid  n method(9)*n  m Data*m                              action-request-with-list
    C3 04 iid  method(9)  DataBlock-SA                              action-request-with-first-pblock
    C3 05 iid  n method(9)*n  DataBlock-SA                          ...-with-list-and-first-pblock
    C3 06 iid  DataBlock-SA                                         action-request-with-pblock
    C7 01 iid  Action-Response-With-Optional-Data                   action-response-normal
    C7 02 iid  DataBlock-SA                                         action-response-with-pblock
    C7 03 iid  n Action-Response-With-Optional-Data*n               action-response-with-list
    C7 04 iid  block-number(4)                                      action-response-next-pblock

    Action-Response-With-Optional-Data ::= SEQUENCE {
        result Action-Result, return-parameters Get-Data-Result OPTIONAL }

Long method-invocation-parameters travel in pblocks: the raw-data of all blocks concatenated is
the A-XDR encoding of the parameter ``Data`` (gurux-dlms builds it so: it drops the OPTIONAL
flag and sends the bare encoded value). The server acknowledges each pblock with
action-response-next-pblock and answers the last one with an ordinary action response. A long
response travels the same way in action-response-with-pblock blocks, each acknowledged by
action-request-next-pblock; its raw-data is the encoded return ``Data`` (the result is then
success). Block numbers start at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from metercom.codec.dlms.axdr import encode_data, encode_length
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.errors import LocalProtocolError
from metercom.model.dlms_data import Data

from ._apdu import (
    BlockNumberApdu,
    DataBlockApdu,
    XdlmsApdu,
    action_result,
    block_bytes,
    check_block,
    check_iid,
    check_method,
    encode_get_data_result,
    encode_optional_data,
    normalize_tuple,
    read_block,
    read_get_data_result,
)
from ._wire import LAYER, Reader
from .descriptors import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    CosemMethodDescriptor,
    InvokeIdAndPriority,
)

__all__ = [
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
]

_IID = InvokeIdAndPriority.from_byte


def _read_methods(r: Reader) -> tuple[CosemMethodDescriptor, ...]:
    n = r.count("cosem-method-descriptor-list", 9)
    return tuple(CosemMethodDescriptor.read(r) for _ in range(n))


def _methods_bytes(items: Sequence[CosemMethodDescriptor]) -> bytes:
    return encode_length(len(items)) + b"".join(m.to_bytes() for m in items)


def _check_return(value: object) -> None:
    if value is not None and not isinstance(value, Data | DataAccessResult):
        raise LocalProtocolError(
            f"return_parameters must be Data, a DataAccessResult or None, got {type(value).__name__}",
            layer=LAYER,
        )


def _check_action_result(value: object) -> None:
    if not isinstance(value, ActionResult):
        raise LocalProtocolError(f"result must be an ActionResult, got {type(value).__name__}", layer=LAYER)


@dataclass(frozen=True, slots=True)
class ActionRequestNormal(XdlmsApdu):
    """action-request-normal (``C3 01``): invoke one method, with optional parameters."""

    method: CosemMethodDescriptor
    parameters: Data | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.parameters is not None and not isinstance(self.parameters, Data):
            raise LocalProtocolError(
                f"parameters must be Data or None, got {type(self.parameters).__name__}", layer=LAYER
            )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + self.method.to_bytes()
            + encode_optional_data(self.parameters)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        method = CosemMethodDescriptor.read(r)
        parameters = r.data("method-invocation-parameters") if r.flag("parameters flag") else None
        return cls(method, parameters, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class ActionRequestNextPblock(BlockNumberApdu):
    """action-request-next-pblock (``C3 02``): response pblock ``block_number`` received, send
    the next."""

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 2


@dataclass(frozen=True, slots=True)
class ActionRequestWithList(XdlmsApdu):
    """action-request-with-list (``C3 03``): invoke several methods, one parameter each
    (null-data for methods without parameters)."""

    methods: Sequence[CosemMethodDescriptor]
    parameters: Sequence[Data]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 3

    def __post_init__(self) -> None:
        normalize_tuple(self, "methods", CosemMethodDescriptor, "cosem-method-descriptor-list")
        normalize_tuple(self, "parameters", Data, "method-invocation-parameters")
        if len(self.methods) != len(self.parameters):
            raise LocalProtocolError(
                f"{len(self.methods)} methods but {len(self.parameters)} parameters", layer=LAYER
            )
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + _methods_bytes(self.methods)
            + encode_length(len(self.parameters))
            + b"".join(encode_data(p) for p in self.parameters)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        methods = _read_methods(r)
        at = r.pos
        n = r.count("method-invocation-parameters", 1)
        if n != len(methods):
            raise r.error(f"{n} method-invocation-parameters for {len(methods)} methods", at)
        parameters = tuple(r.data(f"method-invocation-parameters {i}") for i in range(n))
        return cls(methods, parameters, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPblock(XdlmsApdu):
    """action-request-with-first-pblock (``C3 04``): the method and the first block of its
    encoded parameters."""

    method: CosemMethodDescriptor
    last_block: bool
    block_number: int
    raw_data: bytes
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 4

    def __post_init__(self) -> None:
        check_method(self.method)
        check_block(self.last_block, self.block_number, self.raw_data)
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + self.method.to_bytes()
            + block_bytes(self.last_block, self.block_number, self.raw_data)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        method = CosemMethodDescriptor.read(r)
        last, number, raw = read_block(r)
        return cls(method, last, number, raw, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPblock(XdlmsApdu):
    """action-request-with-list-and-first-pblock (``C3 05``): several methods and the first
    block of their encoded parameter list."""

    methods: Sequence[CosemMethodDescriptor]
    last_block: bool
    block_number: int
    raw_data: bytes
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        normalize_tuple(self, "methods", CosemMethodDescriptor, "cosem-method-descriptor-list")
        check_block(self.last_block, self.block_number, self.raw_data)
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + _methods_bytes(self.methods)
            + block_bytes(self.last_block, self.block_number, self.raw_data)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        methods = _read_methods(r)
        last, number, raw = read_block(r)
        return cls(methods, last, number, raw, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class ActionRequestWithPblock(DataBlockApdu):
    """action-request-with-pblock (``C3 06``): a further block of the parameters
    (``last_block``, ``block_number``, ``raw_data``; see :class:`DataBlockApdu`)."""

    TAG: ClassVar[int] = 0xC3
    CHOICE: ClassVar[int | None] = 6


@dataclass(frozen=True, slots=True)
class ActionResponseWithOptionalData:
    """``Action-Response-With-Optional-Data``: the Action-Result and, optionally, the return
    parameters (the returned Data, or a Data-Access-Result)."""

    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None

    def __post_init__(self) -> None:
        _check_action_result(self.result)
        _check_return(self.return_parameters)

    def to_bytes(self) -> bytes:
        head = bytes((self.result,))
        if self.return_parameters is None:
            return head + b"\x00"
        return head + b"\x01" + encode_get_data_result(self.return_parameters, "return-parameters")

    @classmethod
    def read(cls, r: Reader) -> ActionResponseWithOptionalData:
        result = action_result(r, "action-result")
        returned = read_get_data_result(r, "return-parameters") if r.flag("return-parameters flag") else None
        return cls(result, returned)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal(XdlmsApdu):
    """action-response-normal (``C7 01``): the Action-Result and optional return parameters."""

    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC7
    CHOICE: ClassVar[int | None] = 1

    def __post_init__(self) -> None:
        _check_action_result(self.result)
        _check_return(self.return_parameters)
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + ActionResponseWithOptionalData(self.result, self.return_parameters).to_bytes()
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        single = ActionResponseWithOptionalData.read(r)
        return cls(single.result, single.return_parameters, invoke_id_and_priority=iid)


@dataclass(frozen=True, slots=True)
class ActionResponseWithPblock(DataBlockApdu):
    """action-response-with-pblock (``C7 02``): one block of long return parameters
    (``last_block``, ``block_number``, ``raw_data``; see :class:`DataBlockApdu`)."""

    TAG: ClassVar[int] = 0xC7
    CHOICE: ClassVar[int | None] = 2


@dataclass(frozen=True, slots=True)
class ActionResponseWithList(XdlmsApdu):
    """action-response-with-list (``C7 03``): one result (and optional data) per method."""

    results: Sequence[ActionResponseWithOptionalData]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=DEFAULT_INVOKE_ID_AND_PRIORITY, kw_only=True)

    TAG: ClassVar[int] = 0xC7
    CHOICE: ClassVar[int | None] = 3

    def __post_init__(self) -> None:
        normalize_tuple(self, "results", ActionResponseWithOptionalData, "list-of-responses")
        check_iid(self.invoke_id_and_priority)

    def to_bytes(self) -> bytes:
        return (
            self._head(self.invoke_id_and_priority)
            + encode_length(len(self.results))
            + b"".join(item.to_bytes() for item in self.results)
        )

    @classmethod
    def read_body(cls, r: Reader) -> Self:
        iid = _IID(r.u8("invoke-id-and-priority"))
        n = r.count("list-of-responses", 2)
        return cls(
            tuple(ActionResponseWithOptionalData.read(r) for _ in range(n)), invoke_id_and_priority=iid
        )


@dataclass(frozen=True, slots=True)
class ActionResponseNextPblock(BlockNumberApdu):
    """action-response-next-pblock (``C7 04``): request pblock ``block_number`` received, send
    the next."""

    TAG: ClassVar[int] = 0xC7
    CHOICE: ClassVar[int | None] = 4

"""The building blocks of the xDLMS service APDUs (Green Book DLMS UA 1000-2 clause 9.5, IEC
62056-5-3 clause 8): invoke-id-and-priority, COSEM attribute and method descriptors, and
selective access (Blue Book DLMS UA 1000-1 clause 4.3.6, Profile Generic ``buffer``).

Rule: every type here is an immutable value built from typed arguments, checked when built
(:class:`~metercom.errors.LocalProtocolError` for values that do not fit their field), with a
fixed A-XDR form. Decoding what a peer sent raises only
:class:`~metercom.errors.RemoteProtocolError`.

Theory of operation:

* ``Invoke-Id-And-Priority ::= Unsigned8``: bits 0-3 invoke-id, bits 4-5 reserved, bit 6
  service-class (1 = confirmed), bit 7 priority (1 = high). 0xC1 is invoke-id 1, confirmed,
  high priority, the usual first request. The reserved bits are kept as received so a round
  trip is lossless; all 256 values are built once and shared.
* ``Long-Invoke-Id-And-Priority ::= Unsigned32`` (data-notification and other unconfirmed
  services): bits 0-23 long-invoke-id, 24-27 reserved, 28 self-descriptive, 29
  processing-option (1 = break on error), 30 service-class, 31 priority.
* ``Cosem-Attribute-Descriptor ::= SEQUENCE {class-id Unsigned16, instance-id OCTET STRING
  (SIZE(6)), attribute-id Integer8}``: nine bytes, no lengths. The method descriptor has the
  same shape with method-id. Attribute and method ids are Integer8 as in the ASN.1 (negative
  values are manufacturer specific).
* ``Selective-Access-Descriptor ::= SEQUENCE {access-selector Unsigned8, access-parameters
  Data}`` is kept raw (:class:`SelectiveAccessDescriptor`), so whatever a client sends
  round-trips. :class:`RangeDescriptor` (selector 1) and :class:`EntryDescriptor` (selector 2)
  are typed views of the Profile Generic selectors, built from typed arguments and converted
  to and from their ``Data`` form::

      range_descriptor ::= structure {
          restricting_object  capture_object_definition,
          from_value          (the restricting object's type, usually octet-string(12) date-time),
          to_value            (same),
          selected_values     array capture_object_definition   -- empty: all columns
      }
      capture_object_definition ::= structure {
          class_id long-unsigned, logical_name octet-string, attribute_index integer,
          data_index long-unsigned
      }
      entry_descriptor ::= structure {
          from_entry double-long-unsigned, to_entry double-long-unsigned (0 = last),
          from_selected_value long-unsigned, to_selected_value long-unsigned (0 = last)
      }

  The typed views insist on exactly these member types; a descriptor that uses other types
  still travels as a raw :class:`SelectiveAccessDescriptor`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final

from metercom.codec.dlms.axdr import encode_data
from metercom.errors import InputError, LocalProtocolError, RemoteProtocolError
from metercom.model.dlms_data import CosemDateTime, Data, DlmsType
from metercom.model.obis import Obis

from ._wire import LAYER, Reader, as_bytes, check_int8, check_uint

__all__ = [
    "CLOCK_TIME",
    "DEFAULT_INVOKE_ID_AND_PRIORITY",
    "CaptureObjectDefinition",
    "CosemAttributeDescriptor",
    "CosemAttributeDescriptorWithSelection",
    "CosemMethodDescriptor",
    "EntryDescriptor",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "RangeDescriptor",
    "SelectiveAccessDescriptor",
]

_new = object.__new__
_set = object.__setattr__


# ------------------------------------------------------------------------------------------------
# Invoke-Id-And-Priority
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """``Invoke-Id-And-Priority`` (one byte): invoke-id 0..15, confirmed, high priority.

    ``reserved`` holds bits 4-5 as received (0 when built). A response carries the byte of its
    request, which is how a client pairs them.
    """

    invoke_id: int = 1
    confirmed: bool = True
    high_priority: bool = True
    reserved: int = 0

    def __post_init__(self) -> None:
        check_uint(self.invoke_id, 4, "invoke-id")
        check_uint(self.reserved, 2, "reserved bits of invoke-id-and-priority")

    def to_byte(self) -> int:
        """The wire byte."""
        return (
            self.invoke_id
            | (self.reserved << 4)
            | (0x40 if self.confirmed else 0)
            | (0x80 if self.high_priority else 0)
        )

    @classmethod
    def from_byte(cls, value: int) -> InvokeIdAndPriority:
        """The value of a wire byte (shared instances)."""
        return _IID_BY_BYTE[value]

    def to_bytes(self) -> bytes:
        return bytes((self.to_byte(),))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> InvokeIdAndPriority:
        data = as_bytes(data)
        if len(data) != 1:
            raise RemoteProtocolError(f"invoke-id-and-priority is 1 byte, got {len(data)}", layer=LAYER)
        return _IID_BY_BYTE[data[0]]

    def next(self) -> InvokeIdAndPriority:
        """The same flags with the next invoke-id (15 wraps to 0)."""
        return _IID_BY_BYTE[(self.to_byte() & 0xF0) | ((self.invoke_id + 1) & 0x0F)]

    def __repr__(self) -> str:
        return (
            f"InvokeIdAndPriority(0x{self.to_byte():02x}: id={self.invoke_id}, "
            f"{'confirmed' if self.confirmed else 'unconfirmed'}, "
            f"{'high' if self.high_priority else 'normal'} priority)"
        )


def _iid(byte: int) -> InvokeIdAndPriority:
    value = _new(InvokeIdAndPriority)
    _set(value, "invoke_id", byte & 0x0F)
    _set(value, "confirmed", bool(byte & 0x40))
    _set(value, "high_priority", bool(byte & 0x80))
    _set(value, "reserved", (byte >> 4) & 0x03)
    return value


_IID_BY_BYTE: Final = tuple(_iid(b) for b in range(256))

#: 0xC1: invoke-id 1, confirmed, high priority (what most clients send first).
DEFAULT_INVOKE_ID_AND_PRIORITY: Final = _IID_BY_BYTE[0xC1]


@dataclass(frozen=True, slots=True)
class LongInvokeIdAndPriority:
    """``Long-Invoke-Id-And-Priority`` (Unsigned32) of data-notification and friends.

    ``reserved`` holds bits 24-27 as received (0 when built).
    """

    invoke_id: int = 0
    self_descriptive: bool = False
    break_on_error: bool = False
    confirmed: bool = False
    high_priority: bool = False
    reserved: int = 0

    def __post_init__(self) -> None:
        check_uint(self.invoke_id, 24, "long-invoke-id")
        check_uint(self.reserved, 4, "reserved bits of long-invoke-id-and-priority")

    def to_int(self) -> int:
        """The Unsigned32 wire value."""
        return (
            self.invoke_id
            | (self.reserved << 24)
            | (0x1000_0000 if self.self_descriptive else 0)
            | (0x2000_0000 if self.break_on_error else 0)
            | (0x4000_0000 if self.confirmed else 0)
            | (0x8000_0000 if self.high_priority else 0)
        )

    @classmethod
    def from_int(cls, value: int) -> LongInvokeIdAndPriority:
        check_uint(value, 32, "long-invoke-id-and-priority")
        return cls(
            value & 0xFF_FFFF,
            bool(value & 0x1000_0000),
            bool(value & 0x2000_0000),
            bool(value & 0x4000_0000),
            bool(value & 0x8000_0000),
            (value >> 24) & 0x0F,
        )

    def to_bytes(self) -> bytes:
        return self.to_int().to_bytes(4, "big")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> LongInvokeIdAndPriority:
        data = as_bytes(data)
        if len(data) != 4:
            raise RemoteProtocolError(f"long-invoke-id-and-priority is 4 bytes, got {len(data)}", layer=LAYER)
        return cls.from_int(int.from_bytes(data, "big"))


# ------------------------------------------------------------------------------------------------
# Attribute and method descriptors
# ------------------------------------------------------------------------------------------------


def _check_obis(value: object, what: str) -> Obis:
    if not isinstance(value, Obis):
        raise LocalProtocolError(f"{what} must be an Obis, got {type(value).__name__}", layer=LAYER)
    return value


def _obis(raw: bytes) -> Obis:
    # Six bytes are always a valid Obis; skip the per-group checks of the constructor.
    value = _new(Obis)
    a, b, c, d, e, f = raw
    _set(value, "a", a)
    _set(value, "b", b)
    _set(value, "c", c)
    _set(value, "d", d)
    _set(value, "e", e)
    _set(value, "f", f)
    return value


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptor:
    """``Cosem-Attribute-Descriptor``: class id, logical name (OBIS), attribute id (9 bytes)."""

    class_id: int
    instance_id: Obis
    attribute_id: int

    SIZE: ClassVar[int] = 9

    def __post_init__(self) -> None:
        check_uint(self.class_id, 16, "class-id")
        _check_obis(self.instance_id, "instance-id")
        check_int8(self.attribute_id, "attribute-id")

    @classmethod
    def parse(cls, class_id: int, obis: str, attribute_id: int) -> CosemAttributeDescriptor:
        """Build with the OBIS code as text (``"1-0:1.8.0*255"``, ``"1.0.1.8.0.255"``...)."""
        try:
            instance = Obis.parse(obis)
        except InputError as exc:
            raise LocalProtocolError(str(exc), layer=LAYER) from exc
        return cls(class_id, instance, attribute_id)

    def to_bytes(self) -> bytes:
        return (
            self.class_id.to_bytes(2, "big")
            + self.instance_id.to_bytes()
            + (self.attribute_id & 0xFF).to_bytes(1, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> CosemAttributeDescriptor:
        r = Reader(as_bytes(data), "Cosem-Attribute-Descriptor")
        value = cls.read(r)
        r.finish()
        return value

    @classmethod
    def read(cls, r: Reader) -> CosemAttributeDescriptor:
        """Read the nine bytes at the reader's position."""
        raw = r.fixed(9, "cosem-attribute-descriptor")
        value = _new(cls)
        _set(value, "class_id", (raw[0] << 8) | raw[1])
        _set(value, "instance_id", _obis(raw[2:8]))
        _set(value, "attribute_id", raw[8] - 256 if raw[8] > 127 else raw[8])
        return value

    def with_selection(
        self, access_selection: SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor | None
    ) -> CosemAttributeDescriptorWithSelection:
        """This attribute with a selective access (for the with-list requests)."""
        return CosemAttributeDescriptorWithSelection(self, as_selective_access(access_selection))

    def describe(self) -> str:
        """``"class 3 1-0:1.8.0*255 attribute 2"`` (for messages)."""
        return f"class {self.class_id} {self.instance_id} attribute {self.attribute_id}"


@dataclass(frozen=True, slots=True)
class CosemMethodDescriptor:
    """``Cosem-Method-Descriptor``: class id, logical name (OBIS), method id (9 bytes)."""

    class_id: int
    instance_id: Obis
    method_id: int

    SIZE: ClassVar[int] = 9

    def __post_init__(self) -> None:
        check_uint(self.class_id, 16, "class-id")
        _check_obis(self.instance_id, "instance-id")
        check_int8(self.method_id, "method-id")

    @classmethod
    def parse(cls, class_id: int, obis: str, method_id: int) -> CosemMethodDescriptor:
        """Build with the OBIS code as text."""
        try:
            instance = Obis.parse(obis)
        except InputError as exc:
            raise LocalProtocolError(str(exc), layer=LAYER) from exc
        return cls(class_id, instance, method_id)

    def to_bytes(self) -> bytes:
        return (
            self.class_id.to_bytes(2, "big")
            + self.instance_id.to_bytes()
            + (self.method_id & 0xFF).to_bytes(1, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> CosemMethodDescriptor:
        r = Reader(as_bytes(data), "Cosem-Method-Descriptor")
        value = cls.read(r)
        r.finish()
        return value

    @classmethod
    def read(cls, r: Reader) -> CosemMethodDescriptor:
        """Read the nine bytes at the reader's position."""
        raw = r.fixed(9, "cosem-method-descriptor")
        value = _new(cls)
        _set(value, "class_id", (raw[0] << 8) | raw[1])
        _set(value, "instance_id", _obis(raw[2:8]))
        _set(value, "method_id", raw[8] - 256 if raw[8] > 127 else raw[8])
        return value

    def describe(self) -> str:
        """``"class 15 0-0:40.0.0*255 method 1"`` (for messages)."""
        return f"class {self.class_id} {self.instance_id} method {self.method_id}"


# ------------------------------------------------------------------------------------------------
# Selective access
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SelectiveAccessDescriptor:
    """``Selective-Access-Descriptor``: access-selector (Unsigned8) and access-parameters (Data),
    kept raw. :meth:`typed` gives the Profile Generic view of selectors 1 and 2."""

    access_selector: int
    access_parameters: Data

    def __post_init__(self) -> None:
        check_uint(self.access_selector, 8, "access-selector")
        if not isinstance(self.access_parameters, Data):
            raise LocalProtocolError(
                f"access-parameters must be Data, got {type(self.access_parameters).__name__}", layer=LAYER
            )

    def to_bytes(self) -> bytes:
        return bytes((self.access_selector,)) + encode_data(self.access_parameters)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> SelectiveAccessDescriptor:
        r = Reader(as_bytes(data), "Selective-Access-Descriptor")
        value = cls.read(r)
        r.finish()
        return value

    @classmethod
    def read(cls, r: Reader) -> SelectiveAccessDescriptor:
        selector = r.u8("access-selector")
        value = _new(cls)
        _set(value, "access_selector", selector)
        _set(value, "access_parameters", r.data("access-parameters"))
        return value

    def typed(self) -> RangeDescriptor | EntryDescriptor | SelectiveAccessDescriptor:
        """The typed view for selector 1 (range) or 2 (entry); ``self`` for other selectors.

        Raises :class:`RemoteProtocolError` if selector 1 or 2 carries parameters of the wrong
        shape.
        """
        if self.access_selector == RangeDescriptor.SELECTOR:
            return RangeDescriptor.from_data(self.access_parameters)
        if self.access_selector == EntryDescriptor.SELECTOR:
            return EntryDescriptor.from_data(self.access_parameters)
        return self


def as_selective_access(
    value: SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor | None,
) -> SelectiveAccessDescriptor | None:
    """Accept a typed descriptor where a raw one is stored."""
    if value is None or isinstance(value, SelectiveAccessDescriptor):
        return value
    if isinstance(value, RangeDescriptor | EntryDescriptor):
        return value.to_selective_access()
    raise LocalProtocolError(
        f"access-selection must be a SelectiveAccessDescriptor, RangeDescriptor or EntryDescriptor, "
        f"got {type(value).__name__}",
        layer=LAYER,
    )


def _bad_parameters(what: str, expected: str, got: Data) -> RemoteProtocolError:
    tag: object = got.type  # a hand-built Data may hold anything in its type slot
    got_type = tag.name.lower().replace("_", "-") if isinstance(tag, DlmsType) else repr(tag)
    return RemoteProtocolError(f"{what}: expected {expected}, got {got_type}", layer=LAYER)


def _members(value: Data, count: int, what: str) -> tuple[Data, ...]:
    if value.type != DlmsType.STRUCTURE or not isinstance(value.value, tuple) or len(value.value) != count:
        raise _bad_parameters(what, f"structure of {count} members", value)
    return value.value


def _int_member(value: Data, dtype: DlmsType, what: str) -> int:
    v = value.value
    if value.type != dtype or isinstance(v, bool) or not isinstance(v, int):
        raise _bad_parameters(what, dtype.name.lower().replace("_", "-"), value)
    return v


@dataclass(frozen=True, slots=True)
class CaptureObjectDefinition:
    """``capture_object_definition`` of Profile Generic: which attribute (and element) a column
    holds. ``data_index`` 0 means the whole attribute."""

    class_id: int
    logical_name: Obis
    attribute_index: int
    data_index: int = 0

    def __post_init__(self) -> None:
        check_uint(self.class_id, 16, "class_id")
        _check_obis(self.logical_name, "logical_name")
        check_int8(self.attribute_index, "attribute_index")
        check_uint(self.data_index, 16, "data_index")

    def to_data(self) -> Data:
        return Data.structure(
            Data.long_unsigned(self.class_id),
            Data.octet_string(self.logical_name.to_bytes()),
            Data.integer(self.attribute_index),
            Data.long_unsigned(self.data_index),
        )

    @classmethod
    def from_data(cls, value: Data) -> CaptureObjectDefinition:
        """Read the structure; raises :class:`RemoteProtocolError` on a wrong shape."""
        what = "capture_object_definition"
        class_id, name, attribute, index = _members(value, 4, what)
        raw = name.value
        if name.type != DlmsType.OCTET_STRING or not isinstance(raw, bytes) or len(raw) != 6:
            raise _bad_parameters(f"{what} logical_name", "octet-string of 6 bytes", name)
        return cls(
            _int_member(class_id, DlmsType.LONG_UNSIGNED, f"{what} class_id"),
            _obis(raw),
            _int_member(attribute, DlmsType.INTEGER, f"{what} attribute_index"),
            _int_member(index, DlmsType.LONG_UNSIGNED, f"{what} data_index"),
        )


#: The clock's time attribute (class 8, 0.0.1.0.0.255, attribute 2): the usual restricting object.
CLOCK_TIME: Final = CaptureObjectDefinition(8, Obis(0, 0, 1, 0, 0, 255), 2, 0)


def _as_time_value(value: Data | CosemDateTime | _dt.datetime) -> Data:
    if isinstance(value, Data):
        return value
    if isinstance(value, CosemDateTime | _dt.datetime):
        try:
            return Data.octet_date_time(value)
        except ValueError as exc:
            raise LocalProtocolError(f"range_descriptor time value: {exc}", layer=LAYER) from exc
    raise LocalProtocolError(
        f"range_descriptor from/to value must be Data, CosemDateTime or datetime, got {type(value).__name__}",
        layer=LAYER,
    )


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Profile Generic selective access by range (access-selector 1).

    Rows whose ``restricting_object`` value lies within ``from_value`` .. ``to_value`` are
    returned, with the columns in ``selected_values`` (empty: all columns). Use
    :meth:`by_time` for the usual read of a time span.
    """

    restricting_object: CaptureObjectDefinition
    from_value: Data
    to_value: Data
    selected_values: tuple[CaptureObjectDefinition, ...] = ()

    SELECTOR: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not isinstance(self.restricting_object, CaptureObjectDefinition):
            raise LocalProtocolError("restricting_object must be a CaptureObjectDefinition", layer=LAYER)
        for name in ("from_value", "to_value"):
            if not isinstance(getattr(self, name), Data):
                raise LocalProtocolError(f"range_descriptor {name} must be Data", layer=LAYER)
        columns: object = self.selected_values
        if not isinstance(columns, tuple):
            if not isinstance(columns, Sequence):
                raise LocalProtocolError("selected_values must be a sequence", layer=LAYER)
            columns = tuple(columns)
            _set(self, "selected_values", columns)
        if not all(isinstance(c, CaptureObjectDefinition) for c in columns):
            raise LocalProtocolError("selected_values must be CaptureObjectDefinition values", layer=LAYER)

    @classmethod
    def by_time(
        cls,
        start: CosemDateTime | _dt.datetime | Data,
        end: CosemDateTime | _dt.datetime | Data,
        *,
        restricting_object: CaptureObjectDefinition = CLOCK_TIME,
        selected_values: Sequence[CaptureObjectDefinition] = (),
    ) -> RangeDescriptor:
        """Rows captured from ``start`` to ``end`` (aware datetimes or COSEM date-times, sent as
        octet-string(12) as the clock attribute is)."""
        return cls(restricting_object, _as_time_value(start), _as_time_value(end), tuple(selected_values))

    def to_data(self) -> Data:
        """The ``range_descriptor`` structure."""
        return Data.structure(
            self.restricting_object.to_data(),
            self.from_value,
            self.to_value,
            Data.array(c.to_data() for c in self.selected_values),
        )

    @classmethod
    def from_data(cls, value: Data) -> RangeDescriptor:
        """Read a ``range_descriptor``; raises :class:`RemoteProtocolError` on a wrong shape."""
        restricting, from_value, to_value, columns = _members(value, 4, "range_descriptor")
        if columns.type != DlmsType.ARRAY or not isinstance(columns.value, list):
            raise _bad_parameters("range_descriptor selected_values", "array", columns)
        return cls(
            CaptureObjectDefinition.from_data(restricting),
            from_value,
            to_value,
            tuple(CaptureObjectDefinition.from_data(c) for c in columns.value),
        )

    def to_selective_access(self) -> SelectiveAccessDescriptor:
        return SelectiveAccessDescriptor(self.SELECTOR, self.to_data())

    @classmethod
    def from_selective_access(cls, value: SelectiveAccessDescriptor) -> RangeDescriptor:
        if value.access_selector != cls.SELECTOR:
            raise RemoteProtocolError(
                f"access-selector {value.access_selector} is not a range_descriptor (1)", layer=LAYER
            )
        return cls.from_data(value.access_parameters)


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Profile Generic selective access by entry (access-selector 2).

    Entries (rows) ``from_entry`` .. ``to_entry`` (1-based; ``to_entry`` 0 = the last one),
    columns ``from_selected_value`` .. ``to_selected_value`` (1-based; 0 = the last one).
    """

    from_entry: int = 1
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0

    SELECTOR: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_uint(self.from_entry, 32, "from_entry")
        check_uint(self.to_entry, 32, "to_entry")
        check_uint(self.from_selected_value, 16, "from_selected_value")
        check_uint(self.to_selected_value, 16, "to_selected_value")

    def to_data(self) -> Data:
        return Data.structure(
            Data.double_long_unsigned(self.from_entry),
            Data.double_long_unsigned(self.to_entry),
            Data.long_unsigned(self.from_selected_value),
            Data.long_unsigned(self.to_selected_value),
        )

    @classmethod
    def from_data(cls, value: Data) -> EntryDescriptor:
        """Read an ``entry_descriptor``; raises :class:`RemoteProtocolError` on a wrong shape."""
        first, last, first_column, last_column = _members(value, 4, "entry_descriptor")
        return cls(
            _int_member(first, DlmsType.DOUBLE_LONG_UNSIGNED, "entry_descriptor from_entry"),
            _int_member(last, DlmsType.DOUBLE_LONG_UNSIGNED, "entry_descriptor to_entry"),
            _int_member(first_column, DlmsType.LONG_UNSIGNED, "entry_descriptor from_selected_value"),
            _int_member(last_column, DlmsType.LONG_UNSIGNED, "entry_descriptor to_selected_value"),
        )

    def to_selective_access(self) -> SelectiveAccessDescriptor:
        return SelectiveAccessDescriptor(self.SELECTOR, self.to_data())

    @classmethod
    def from_selective_access(cls, value: SelectiveAccessDescriptor) -> EntryDescriptor:
        if value.access_selector != cls.SELECTOR:
            raise RemoteProtocolError(
                f"access-selector {value.access_selector} is not an entry_descriptor (2)", layer=LAYER
            )
        return cls.from_data(value.access_parameters)


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptorWithSelection:
    """``Cosem-Attribute-Descriptor-With-Selection``: an attribute and its optional selective
    access (the element of the with-list GET and SET requests)."""

    attribute: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.attribute, CosemAttributeDescriptor):
            raise LocalProtocolError(
                f"attribute must be a CosemAttributeDescriptor, got {type(self.attribute).__name__}",
                layer=LAYER,
            )
        _set(self, "access_selection", as_selective_access(self.access_selection))

    def to_bytes(self) -> bytes:
        head = self.attribute.to_bytes()
        selection = self.access_selection
        if selection is None:
            return head + b"\x00"
        return head + b"\x01" + selection.to_bytes()

    @classmethod
    def read(cls, r: Reader) -> CosemAttributeDescriptorWithSelection:
        attribute = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read(r) if r.flag("access-selection flag") else None
        value = _new(cls)
        _set(value, "attribute", attribute)
        _set(value, "access_selection", selection)
        return value

    def describe(self) -> str:
        text = self.attribute.describe()
        if self.access_selection is not None:
            text += f" (selector {self.access_selection.access_selector})"
        return text

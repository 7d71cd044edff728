"""The vocabulary of COSEM interface-class tables: access modes, type descriptions, attribute and
method specifications (DLMS UA 1000-1 "Blue Book" clause 4.1 and 4.5; Green Book DLMS UA 1000-2
for the access-right encodings of the Association object list).

Rule: an interface class is *data*. :class:`InterfaceClass` lists its attributes
(:class:`AttributeSpec`) and methods (:class:`MethodSpec`) with the Blue Book index, name and type;
nothing here knows how to talk to a meter. Client code uses the tables to interpret what it
reads, the simulator to decide what it serves, the profile loader to validate device files.

Theory of operation:

* A type description (:data:`TypeSpec`) is one of five small frozen classes:
  :class:`Simple` (one value of one of a few :class:`DlmsType` tags, optionally with a fixed
  octet-string length and a meaning such as ``"logical-name"`` or ``"date-time"``),
  :class:`Struct` (named fields in order), :class:`ArrayOf` (one element description),
  :class:`Choice` (the Blue Book's instance-specific ``CHOICE``: any type, or any of a set) and
  :class:`OneOf` (alternative shapes seen in the field, e.g. ``application_context_name`` as a
  structure or as an octet-string).
* Every description has the same four verbs: ``check(data, where)`` raises
  :class:`~metercom.errors.InputError` naming the path at fault (``where``), ``describe()``
  renders the shape for messages, ``default()`` gives the value a simulator serves when a
  profile says nothing, and ``from_plain(value, where)`` builds a :class:`Data` from the plain
  TOML/JSON notation of device profiles (see :mod:`metercom.model.profiles`).
* Date and time attributes are ``octet-string`` of 12/5/4 bytes in the Blue Book; meters also
  send the dedicated ``date-time``/``date``/``time`` tags, so both are accepted.
* Array positions accept a ``compact-array`` too (profile buffers are sent that way when the
  association negotiated it).

Errors: :class:`~metercom.errors.InputError` stands in for a dedicated ``CosemTypeError``
until ``errors.py`` gains one (see the package docstring).
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from metercom.errors import InputError
from metercom.model.dlms_data import (
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DlmsType,
    DlmsValueError,
)
from metercom.model.obis import Obis

__all__ = [
    "AccessFlags",
    "AccessMode",
    "ArrayOf",
    "AttributeSpec",
    "Choice",
    "Field",
    "InterfaceClass",
    "MethodAccessFlags",
    "MethodAccessMode",
    "MethodSpec",
    "OneOf",
    "Simple",
    "Struct",
    "TypeSpec",
    "build_scalar",
    "type_name",
    "zero_of",
]


# --- access modes ------------------------------------------------------------------------------


class AccessMode(enum.IntEnum):
    """Attribute access of Association LN versions 0..2 and Association SN (Blue Book 4.4.4,
    ``attribute_access_item.access_mode``)."""

    NO_ACCESS = 0
    READ_ONLY = 1
    WRITE_ONLY = 2
    READ_AND_WRITE = 3
    AUTHENTICATED_READ_ONLY = 4
    AUTHENTICATED_WRITE_ONLY = 5
    AUTHENTICATED_READ_AND_WRITE = 6

    @property
    def readable(self) -> bool:
        """True if the mode allows GET (with or without authentication)."""
        return self in _READABLE

    @property
    def writable(self) -> bool:
        """True if the mode allows SET (with or without authentication)."""
        return self in _WRITABLE

    @property
    def authenticated(self) -> bool:
        """True for the ``authenticated_*`` modes (requests must be authenticated)."""
        return self >= AccessMode.AUTHENTICATED_READ_ONLY

    def to_flags(self) -> AccessFlags:
        """The equivalent Association LN version 3 bit map."""
        flags = AccessFlags(0)
        if self.readable:
            flags |= AccessFlags.READ
        if self.writable:
            flags |= AccessFlags.WRITE
        if self.authenticated:
            flags |= AccessFlags.AUTHENTICATED_REQUEST
        return flags

    @classmethod
    def from_flags(cls, flags: int) -> AccessMode:
        """The closest version 0..2 mode for a version 3 bit map (protection bits beyond
        "authenticated request" have no equivalent and are dropped)."""
        rw = flags & 0x03
        if rw == 0:
            return cls.NO_ACCESS
        if flags & AccessFlags.AUTHENTICATED_REQUEST:
            return cls(rw + 3)
        return cls(rw)


_READABLE = frozenset(
    {
        AccessMode.READ_ONLY,
        AccessMode.READ_AND_WRITE,
        AccessMode.AUTHENTICATED_READ_ONLY,
        AccessMode.AUTHENTICATED_READ_AND_WRITE,
    }
)
_WRITABLE = frozenset(
    {
        AccessMode.WRITE_ONLY,
        AccessMode.READ_AND_WRITE,
        AccessMode.AUTHENTICATED_WRITE_ONLY,
        AccessMode.AUTHENTICATED_READ_AND_WRITE,
    }
)


class MethodAccessMode(enum.IntEnum):
    """Method access of Association LN versions 1..2 (version 0 sends a boolean: 0/1)."""

    NO_ACCESS = 0
    ACCESS = 1
    AUTHENTICATED_ACCESS = 2

    def to_flags(self) -> MethodAccessFlags:
        """The equivalent Association LN version 3 bit map."""
        if self == MethodAccessMode.NO_ACCESS:
            return MethodAccessFlags(0)
        if self == MethodAccessMode.ACCESS:
            return MethodAccessFlags.ACCESS
        return MethodAccessFlags.ACCESS | MethodAccessFlags.AUTHENTICATED_REQUEST

    @classmethod
    def from_flags(cls, flags: int) -> MethodAccessMode:
        """The closest version 1..2 mode for a version 3 bit map."""
        if not flags & MethodAccessFlags.ACCESS:
            return cls.NO_ACCESS
        if flags & MethodAccessFlags.AUTHENTICATED_REQUEST:
            return cls.AUTHENTICATED_ACCESS
        return cls.ACCESS


class AccessFlags(enum.IntFlag):
    """Attribute access of Association LN version 3: a bit map of access and required protection."""

    READ = 0x01
    WRITE = 0x02
    AUTHENTICATED_REQUEST = 0x04
    ENCRYPTED_REQUEST = 0x08
    DIGITALLY_SIGNED_REQUEST = 0x10
    AUTHENTICATED_RESPONSE = 0x20
    ENCRYPTED_RESPONSE = 0x40
    DIGITALLY_SIGNED_RESPONSE = 0x80


class MethodAccessFlags(enum.IntFlag):
    """Method access of Association LN version 3 (bit 1 is unused)."""

    ACCESS = 0x01
    AUTHENTICATED_REQUEST = 0x04
    ENCRYPTED_REQUEST = 0x08
    DIGITALLY_SIGNED_REQUEST = 0x10
    AUTHENTICATED_RESPONSE = 0x20
    ENCRYPTED_RESPONSE = 0x40
    DIGITALLY_SIGNED_RESPONSE = 0x80


# --- type descriptions -------------------------------------------------------------------------


def type_name(type_: DlmsType | int) -> str:
    """The Blue Book spelling of a type tag: ``double-long-unsigned``."""
    try:
        return DlmsType(type_).name.lower().replace("_", "-")
    except ValueError:
        return f"type({int(type_)})"


def _fail(where: str, message: str) -> InputError:
    return InputError(message, where=where or None)


def _got(data: Data) -> str:
    tag: object = data.type
    return type_name(tag) if isinstance(tag, int) else repr(tag)


def _is_data(value: object) -> bool:
    return isinstance(value, Data) and isinstance(value.type, int)


_INT_BUILDERS: dict[DlmsType, Callable[[int], Data]] = {
    DlmsType.DOUBLE_LONG: Data.double_long,
    DlmsType.DOUBLE_LONG_UNSIGNED: Data.double_long_unsigned,
    DlmsType.BCD: Data.bcd,
    DlmsType.INTEGER: Data.integer,
    DlmsType.LONG: Data.long,
    DlmsType.UNSIGNED: Data.unsigned,
    DlmsType.LONG_UNSIGNED: Data.long_unsigned,
    DlmsType.LONG64: Data.long64,
    DlmsType.LONG64_UNSIGNED: Data.long64_unsigned,
    DlmsType.ENUM: Data.enum,
}

_OCTET_LENGTH = {"date-time": 12, "date": 5, "time": 4, "logical-name": 6}
_CALENDAR_CLASS: dict[str, type[CosemDateTime] | type[CosemDate] | type[CosemTime]] = {
    "date-time": CosemDateTime,
    "date": CosemDate,
    "time": CosemTime,
}
#: Keys of the explicit typed notation ``{type = "...", value = ...}`` in device profiles.
TYPED_KEYS = frozenset({"type", "value"})


def _tag_from_name(name: object, where: str) -> DlmsType:
    if isinstance(name, str):
        key = name.strip().upper().replace("-", "_").replace(" ", "_")
        member = DlmsType.__members__.get(key)
        if member is not None:
            return member
    raise _fail(
        where,
        f"unknown DLMS type {name!r}; use a Blue Book name such as 'double-long-unsigned', "
        "'long-unsigned', 'octet-string', 'visible-string', 'enum', 'structure'",
    )


def _int_value(value: object, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{what} needs an integer, got {value!r}")
    return value


def build_scalar(tag: DlmsType, value: object, where: str) -> Data:
    """Build a scalar :class:`Data` of type ``tag`` from a plain value (profile notation)."""
    try:
        builder = _INT_BUILDERS.get(tag)
        if builder is not None:
            return builder(_int_value(value, where, type_name(tag)))
        if tag == DlmsType.NULL_DATA:
            if value not in (None, "", 0):
                raise _fail(where, f"null-data takes no value, got {value!r}")
            return Data.null()
        if tag == DlmsType.BOOLEAN:
            if not isinstance(value, bool):
                raise _fail(where, f"boolean needs true or false, got {value!r}")
            return Data.boolean(value)
        if tag in (DlmsType.FLOAT32, DlmsType.FLOAT64):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(where, f"{type_name(tag)} needs a number, got {value!r}")
            return Data.float32(float(value)) if tag == DlmsType.FLOAT32 else Data.float64(float(value))
        if tag == DlmsType.OCTET_STRING:
            return Data.octet_string(_octets(value, where))
        if tag == DlmsType.VISIBLE_STRING:
            if not isinstance(value, str):
                raise _fail(where, f"visible-string needs text, got {value!r}")
            return Data.visible_string(value)
        if tag == DlmsType.UTF8_STRING:
            if not isinstance(value, str):
                raise _fail(where, f"utf8-string needs text, got {value!r}")
            return Data.utf8_string(value)
        if tag == DlmsType.BIT_STRING:
            if not isinstance(value, str):
                raise _fail(where, f"bit-string needs a text of 0 and 1, got {value!r}")
            return Data.bit_string(value)
        if tag == DlmsType.DATE_TIME:
            return Data.date_time(_calendar(CosemDateTime, value, where))
        if tag == DlmsType.DATE:
            return Data.date(_calendar(CosemDate, value, where))
        if tag == DlmsType.TIME:
            return Data.time(_calendar(CosemTime, value, where))
    except DlmsValueError as exc:
        raise _fail(where, str(exc)) from exc
    raise _fail(where, f"{type_name(tag)} cannot be written as a plain value here")


def _octets(value: object, where: str) -> bytes:
    if isinstance(value, Mapping) and set(value) == {"hex"}:
        text = value["hex"]
        if not isinstance(text, str):
            raise _fail(where, f"hex needs a text of hex digits, got {text!r}")
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise _fail(where, f"not hex digits: {text!r}") from exc
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise _fail(where, f"octet-string needs text or {{hex = '...'}}, got {value!r}")


_CalendarT = TypeVar("_CalendarT", CosemDateTime, CosemDate, CosemTime)


def _calendar(cls: type[_CalendarT], value: object, where: str) -> _CalendarT:
    """A COSEM date/time from a TOML datetime/date/time, ``"unspecified"`` or a field table."""
    made = _calendar_any(cls, value, where)
    if not isinstance(made, cls):  # pragma: no cover - _calendar_any builds cls
        raise _fail(where, f"cannot read {value!r} as a {cls.__name__}")
    return made


def _calendar_any(
    cls: type[CosemDateTime] | type[CosemDate] | type[CosemTime], value: object, where: str
) -> CosemDateTime | CosemDate | CosemTime:
    if value == "unspecified":
        return cls()
    if isinstance(value, str):
        # ISO 8601 text (JSON has no date types): 2024-03-31T02:00:00+01:00, 2024-03-31, 02:00:00.
        try:
            if cls is CosemDateTime:
                value = _dt.datetime.fromisoformat(value)
            elif cls is CosemDate:
                value = _dt.date.fromisoformat(value)
            else:
                value = _dt.time.fromisoformat(value)
        except ValueError as exc:
            raise _fail(where, f"not an ISO 8601 {cls.__name__[5:].lower()}: {value!r}") from exc
    if cls is CosemDateTime and isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise _fail(
                where,
                f"date-time {value.isoformat()} has no UTC offset; write it as "
                "2024-03-31T02:00:00+01:00, or as a field table for wildcard values",
            )
        return CosemDateTime.from_datetime(value)
    if cls is CosemDate and isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return CosemDate.from_date(value)
    if cls is CosemTime and isinstance(value, _dt.time):
        return CosemTime.from_time(value)
    if isinstance(value, Mapping):
        if set(value) == {"hex"}:
            try:
                return cls.from_bytes(_octets(value, where))
            except DlmsValueError as exc:
                raise _fail(where, str(exc)) from exc
        known = set(cls._fields)
        unknown = set(value) - known
        if unknown:
            raise _fail(
                where, f"unknown field(s) {sorted(unknown)}; a {cls.__name__} has {list(cls._fields)}"
            )
        kwargs = {str(k): _int_value(v, f"{where}.{k}", str(k)) for k, v in value.items()}
        made = cls(**kwargs)
        try:
            made.to_bytes()
        except DlmsValueError as exc:
            raise _fail(where, str(exc)) from exc
        return made
    raise _fail(where, f"cannot read {value!r} as a {cls.__name__}")


@dataclass(frozen=True, slots=True)
class Simple:
    """One value of one of ``types``.

    ``length`` fixes the size of an octet-string; ``meaning`` names what the bytes hold
    (``"logical-name"``, ``"date-time"``, ``"date"``, ``"time"``) and selects the plain notation
    of profiles (an OBIS text, a TOML datetime). ``values`` names the enumeration of an ``enum``
    or ``unsigned``; with ``closed`` other values are rejected. ``refers_to`` marks a logical
    name that must name an object of that class id (checked across a device profile).
    """

    types: tuple[DlmsType, ...]
    length: int | None = None
    meaning: str = ""
    values: type[enum.IntEnum] | None = None
    closed: bool = False
    refers_to: int | None = None

    def check(self, data: Data, where: str = "") -> None:
        if not _is_data(data):
            raise _fail(where, f"expected a Data value, got {type(data).__name__}")
        if data.type not in self.types:
            raise _fail(where, f"expected {self.describe()}, got {_got(data)}")
        if data.type == DlmsType.OCTET_STRING:
            length = self.length if self.length is not None else _OCTET_LENGTH.get(self.meaning)
            value = data.value
            if not isinstance(value, bytes):
                raise _fail(where, f"octet-string holds {type(value).__name__}, not bytes")
            if length is not None and len(value) != length:
                raise _fail(where, f"expected {self.describe()}, got {len(value)} bytes: {value.hex(' ')}")
        if self.closed and self.values is not None:
            value = data.value
            if isinstance(value, int) and value not in self.values._value2member_map_:
                allowed = ", ".join(f"{m.value} {m.name.lower()}" for m in self.values)
                raise _fail(where, f"{value} is not a {self.values.__name__} ({allowed})")

    def describe(self) -> str:
        names = [type_name(t) for t in self.types]
        if DlmsType.OCTET_STRING in self.types:
            length = self.length if self.length is not None else _OCTET_LENGTH.get(self.meaning)
            if length is not None:
                names[self.types.index(DlmsType.OCTET_STRING)] = f"octet-string({length})"
        text = " or ".join(names)
        if self.meaning:
            text += f" ({self.meaning})"
        if self.values is not None:
            text += f" [{self.values.__name__}]"
        return text

    def default(self) -> Data:
        tag = self.types[0]
        if tag == DlmsType.OCTET_STRING:
            if self.meaning in _CALENDAR_CLASS:
                return Data.octet_string(_CALENDAR_CLASS[self.meaning]().to_bytes())
            length = self.length if self.length is not None else _OCTET_LENGTH.get(self.meaning, 0)
            return Data.octet_string(bytes(length))
        if tag in _INT_BUILDERS:
            first = next(iter(self.values)).value if self.values is not None else 0
            return _INT_BUILDERS[tag](int(first))
        return {
            DlmsType.NULL_DATA: Data.null(),
            DlmsType.BOOLEAN: Data.boolean(False),
            DlmsType.FLOAT32: Data.float32(0.0),
            DlmsType.FLOAT64: Data.float64(0.0),
            DlmsType.VISIBLE_STRING: Data.visible_string(""),
            DlmsType.UTF8_STRING: Data.utf8_string(""),
            DlmsType.BIT_STRING: Data.bit_string(""),
            DlmsType.DATE_TIME: Data.date_time(CosemDateTime()),
            DlmsType.DATE: Data.date(CosemDate()),
            DlmsType.TIME: Data.time(CosemTime()),
        }.get(tag, Data.null())

    def from_plain(self, value: object, where: str = "") -> Data:
        if isinstance(value, Mapping) and "type" in value:
            data = _typed(value, where)
            self.check(data, where)
            return data
        tag = self.types[0]
        if tag == DlmsType.OCTET_STRING and self.meaning == "logical-name":
            if not isinstance(value, str):
                raise _fail(where, f"a logical name is an OBIS text such as '1.0.1.8.0.255', got {value!r}")
            try:
                return Data.octet_string(Obis.parse(value).to_bytes())
            except InputError as exc:
                raise _fail(where, str(exc)) from exc
        if tag == DlmsType.OCTET_STRING and self.meaning in _CALENDAR_CLASS:
            made = _calendar_any(_CALENDAR_CLASS[self.meaning], value, where)
            return Data.octet_string(made.to_bytes())
        if self.values is not None and isinstance(value, str) and tag in _INT_BUILDERS:
            key = value.strip().upper().replace("-", "_").replace(" ", "_")
            member = self.values.__members__.get(key)
            if member is None:
                names = ", ".join(m.name.lower() for m in self.values)
                raise _fail(where, f"{value!r} is not a {self.values.__name__} ({names})")
            value = int(member)
        data = build_scalar(tag, value, where)
        self.check(data, where)
        return data


@dataclass(frozen=True, slots=True)
class Field:
    """One member of a :class:`Struct`."""

    name: str
    type: TypeSpec


@dataclass(frozen=True, slots=True)
class Struct:
    """A ``structure`` with these members in this order. ``name`` is the Blue Book type name
    (``capture_object_definition``)."""

    fields: tuple[Field, ...]
    name: str = ""

    def check(self, data: Data, where: str = "") -> None:
        if not _is_data(data):
            raise _fail(where, f"expected a Data value, got {type(data).__name__}")
        if data.type != DlmsType.STRUCTURE or not isinstance(data.value, tuple):
            raise _fail(where, f"expected {self.describe()}, got {_got(data)}")
        items = data.value
        if len(items) != len(self.fields):
            names = ", ".join(f.name for f in self.fields)
            raise _fail(
                where, f"expected a structure of {len(self.fields)} ({names}), got {len(items)} members"
            )
        for member, item in zip(self.fields, items, strict=True):
            member.type.check(item, f"{where}.{member.name}")

    def describe(self) -> str:
        inner = ", ".join(f"{f.name}: {f.type.describe()}" for f in self.fields)
        return f"{self.name or 'structure'}{{{inner}}}"

    def default(self) -> Data:
        return Data.structure(*(f.type.default() for f in self.fields))

    def from_plain(self, value: object, where: str = "") -> Data:
        if isinstance(value, Mapping) and "type" in value:
            data = _typed(value, where)
            self.check(data, where)
            return data
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in self.fields}
            if unknown:
                names = ", ".join(f.name for f in self.fields)
                raise _fail(where, f"unknown member(s) {sorted(unknown)}; this structure has {names}")
            missing = [f.name for f in self.fields if f.name not in value]
            if missing:
                raise _fail(where, f"missing member(s) {missing}")
            return Data.structure(
                *(f.type.from_plain(value[f.name], f"{where}.{f.name}") for f in self.fields)
            )
        if isinstance(value, list | tuple):
            if len(value) != len(self.fields):
                names = ", ".join(f.name for f in self.fields)
                raise _fail(where, f"expected {len(self.fields)} members ({names}), got {len(value)}")
            return Data.structure(
                *(f.type.from_plain(v, f"{where}.{f.name}") for f, v in zip(self.fields, value, strict=True))
            )
        raise _fail(where, f"expected {self.describe()} as a list or a table, got {value!r}")

    def field(self, name: str) -> Field:
        """The member called ``name``."""
        for member in self.fields:
            if member.name == name:
                return member
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ArrayOf:
    """An ``array`` (or ``compact-array``) whose elements all follow ``element``."""

    element: TypeSpec
    name: str = ""

    def check(self, data: Data, where: str = "") -> None:
        if not _is_data(data):
            raise _fail(where, f"expected a Data value, got {type(data).__name__}")
        if data.type == DlmsType.ARRAY and isinstance(data.value, list):
            items: list[Data] = data.value
        elif data.type == DlmsType.COMPACT_ARRAY and isinstance(data.value, CompactArray):
            items = data.value.elements
        else:
            raise _fail(where, f"expected {self.describe()}, got {_got(data)}")
        for i, item in enumerate(items):
            self.element.check(item, f"{where}[{i}]")

    def describe(self) -> str:
        return f"{self.name or 'array'} of {self.element.describe()}"

    def default(self) -> Data:
        return Data.array([])

    def from_plain(self, value: object, where: str = "") -> Data:
        if isinstance(value, Mapping) and "type" in value:
            data = _typed(value, where)
            self.check(data, where)
            return data
        if not isinstance(value, list | tuple):
            raise _fail(where, f"expected a list for {self.describe()}, got {value!r}")
        return Data.array(self.element.from_plain(v, f"{where}[{i}]") for i, v in enumerate(value))


@dataclass(frozen=True, slots=True)
class Choice:
    """The Blue Book's instance-specific ``CHOICE``: any value whose type is in ``types``
    (``None``: any type at all). Containers inside are not checked further."""

    types: frozenset[DlmsType] | None = None
    note: str = ""

    def check(self, data: Data, where: str = "") -> None:
        if not _is_data(data):
            raise _fail(where, f"expected a Data value, got {type(data).__name__}")
        if self.types is not None and data.type not in self.types:
            raise _fail(where, f"expected {self.describe()}, got {_got(data)}")

    def describe(self) -> str:
        if self.types is None:
            text = "CHOICE (any type)"
        else:
            text = "CHOICE{" + ", ".join(type_name(t) for t in sorted(self.types)) + "}"
        return f"{text} ({self.note})" if self.note else text

    def default(self) -> Data:
        return Data.null()

    def from_plain(self, value: object, where: str = "") -> Data:
        if value is None:
            data = Data.null()
        elif isinstance(value, Mapping) and "type" in value:
            data = _typed(value, where)
        else:
            raise _fail(
                where,
                f"{self.describe()} needs an explicit type: write {{type = 'long-unsigned', value = ...}}, "
                f"got {value!r}",
            )
        self.check(data, where)
        return data


@dataclass(frozen=True, slots=True)
class OneOf:
    """One of several shapes (the first that fits wins); the first is the preferred one."""

    options: tuple[TypeSpec, ...]

    def check(self, data: Data, where: str = "") -> None:
        errors: list[str] = []
        for option in self.options:
            try:
                option.check(data, where)
            except InputError as exc:
                errors.append(str(exc))
            else:
                return
        raise _fail(where, f"expected {self.describe()}; " + " / ".join(errors))

    def describe(self) -> str:
        return " | ".join(o.describe() for o in self.options)

    def default(self) -> Data:
        return self.options[0].default()

    def from_plain(self, value: object, where: str = "") -> Data:
        errors: list[str] = []
        for option in self.options:
            try:
                return option.from_plain(value, where)
            except InputError as exc:
                errors.append(str(exc))
        raise _fail(where, "no form fits: " + " / ".join(errors))


#: A type description: what one attribute value, method parameter or member may hold.
TypeSpec: TypeAlias = Simple | Struct | ArrayOf | Choice | OneOf


def _typed(value: Mapping[object, object], where: str) -> Data:
    """``{type = "long-unsigned", value = 5}``: a value with an explicit type (any shape)."""
    unknown = set(value) - TYPED_KEYS
    if unknown:
        raise _fail(
            where, f"unknown key(s) {sorted(map(str, unknown))} next to 'type' (allowed: type, value)"
        )
    tag = _tag_from_name(value["type"], f"{where}.type")
    inner = value.get("value")
    if tag in (DlmsType.ARRAY, DlmsType.STRUCTURE):
        if not isinstance(inner, list):
            raise _fail(where, f"{type_name(tag)} needs a list of typed members")
        items = []
        for i, item in enumerate(inner):
            if not isinstance(item, Mapping):
                raise _fail(
                    f"{where}[{i}]", f"members of a typed {type_name(tag)} must be typed too, got {item!r}"
                )
            items.append(_typed(item, f"{where}[{i}]"))
        return Data.array(items) if tag == DlmsType.ARRAY else Data.structure(*items)
    if "value" not in value:
        return zero_of(tag)
    return build_scalar(tag, inner, where)


def zero_of(tag: DlmsType) -> Data:
    """The zero/empty value of a type (what a source-driven attribute starts with)."""
    if tag == DlmsType.ARRAY:
        return Data.array([])
    if tag == DlmsType.STRUCTURE:
        return Data.structure()
    return Simple((tag,)).default()


# --- attribute, method and class specifications ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute of an interface class (Blue Book index, name and type).

    ``static`` is the Blue Book's "static"/"dyn." marking. ``default_access`` is the access the
    simulator grants when a profile asks for the class defaults (not normative: the Blue Book
    leaves access to the association). ``scaled_by`` is the index of the ``scaler_unit``
    attribute that applies to this value; ``selectors`` the selective-access selectors the
    attribute supports (profile buffer: 1 range, 2 entry). ``default`` is a Blue Book default
    value in profile notation, when the standard gives one.
    """

    index: int
    name: str
    type: TypeSpec
    static: bool = True
    default_access: AccessMode = AccessMode.READ_ONLY
    scaled_by: int | None = None
    selectors: tuple[int, ...] = ()
    default: object = None
    description: str = ""

    def default_value(self) -> Data:
        """The value served when a profile gives none: the Blue Book default, else the type's zero."""
        if self.default is not None:
            return self.type.from_plain(self.default, self.name)
        return self.type.default()


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One specific method: Blue Book index, name, parameter type, mandatory ("m") or optional.

    ``reserved`` marks an index the Blue Book keeps "reserved from previous versions" (it
    exists so that indices stay contiguous; invoking it is an error).
    """

    index: int
    name: str
    parameter: TypeSpec
    mandatory: bool = False
    description: str = ""
    reserved: bool = False


@dataclass(frozen=True, slots=True)
class InterfaceClass:
    """A COSEM interface class at one version: attributes and methods indexed from 1."""

    class_id: int
    version: int
    name: str
    attributes: tuple[AttributeSpec, ...]
    methods: tuple[MethodSpec, ...] = ()
    description: str = ""
    _by_name: dict[str, AttributeSpec] = field(init=False, repr=False, compare=False)
    _methods_by_name: dict[str, MethodSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {a.name: a for a in self.attributes})
        object.__setattr__(self, "_methods_by_name", {m.name: m for m in self.methods})

    @property
    def key(self) -> tuple[int, int]:
        """``(class_id, version)``."""
        return (self.class_id, self.version)

    def attribute(self, which: int | str) -> AttributeSpec:
        """The attribute with this index or name; raises :class:`InputError` if there is none."""
        if isinstance(which, str):
            spec = self._by_name.get(which)
        else:
            spec = self.attributes[which - 1] if 1 <= which <= len(self.attributes) else None
        if spec is None:
            names = ", ".join(f"{a.index} {a.name}" for a in self.attributes)
            raise InputError(f"{self} has no attribute {which!r} (it has {names})")
        return spec

    def method(self, which: int | str) -> MethodSpec:
        """The method with this index or name; raises :class:`InputError` if there is none."""
        if isinstance(which, str):
            spec = self._methods_by_name.get(which)
        else:
            spec = self.methods[which - 1] if 1 <= which <= len(self.methods) else None
        if spec is None:
            names = ", ".join(f"{m.index} {m.name}" for m in self.methods) or "none"
            raise InputError(f"{self} has no method {which!r} (methods: {names})")
        return spec

    def has_attribute(self, which: int | str) -> bool:
        """True if the attribute exists."""
        if isinstance(which, str):
            return which in self._by_name
        return 1 <= which <= len(self.attributes)

    def has_method(self, which: int | str) -> bool:
        """True if the method exists."""
        if isinstance(which, str):
            return which in self._methods_by_name
        return 1 <= which <= len(self.methods)

    def __str__(self) -> str:
        return f"{self.name} (class {self.class_id} v{self.version})"

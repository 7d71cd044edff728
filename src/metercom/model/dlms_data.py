"""DLMS data values (IEC 62056-6-2 clause 4.1.5 "Common data types"; Green Book DLMS UA 1000-2
clause 9.5 ``Data ::= CHOICE``): how every value a meter sends or receives is held in Python.

Rule: a value keeps its wire type. ``Data(type, value)`` pairs the type tag (:class:`DlmsType`)
with a plain Python value, so decoding and re-encoding give back the same bytes (an ``unsigned 5``
and a ``long-unsigned 5`` stay different), while the payload stays an ordinary ``int``/``bytes``/
``str``/``list`` that needs no unwrapping. No scaling happens here: register values are raw
integers; :mod:`metercom.model.units` turns them into exact ``Decimal`` quantities.

Theory of operation:

* :class:`Data` is a ``NamedTuple`` because a tuple is the cheapest object CPython can build;
  the codec creates it with ``tuple.__new__`` and never runs Python-level constructors in the
  hot path. Build values with the typed helpers (``Data.unsigned(5)``, ``Data.structure(...)``),
  which check ranges; the codec re-checks when encoding.
* Value per type: null-data and don't-care -> ``None``; boolean -> ``bool``; every integer type
  (integer, long, unsigned, long-unsigned, double-long(-unsigned), long64(-unsigned), enum, bcd,
  the delta types) -> ``int`` (bcd is the raw byte 0..255); float32/float64 -> ``float``;
  octet-string -> ``bytes``; visible-string -> ``str`` (decoded as Latin-1, so every byte
  round-trips); utf8-string -> ``str``, or ``bytes`` when the meter sent invalid UTF-8 (kept, not
  rejected, so one bad label never loses a whole push; see :mod:`metercom.codec.dlms.axdr`);
  bit-string -> :class:`BitString`; date-time/date/time -> :class:`CosemDateTime`,
  :class:`CosemDate`, :class:`CosemTime`; array -> ``list[Data]``; structure ->
  ``tuple[Data, ...]``; compact-array -> :class:`CompactArray`.
* Date and time (IEC 62056-6-2 clause 4.1.6.1): COSEM clock values are mostly sent as
  ``octet-string(12)``, not as the ``date-time`` type. The octet string stays ``bytes`` in
  ``Data`` (lossless); :meth:`Data.as_date_time` and :meth:`CosemDateTime.from_bytes` interpret
  it. The classes keep the raw field values, including "not specified" (0xFF, 0xFFFF, deviation
  0x8000 held as ``-32768``) and the special month/day values (0xFD, 0xFE), so any value a meter
  sends survives a round trip; :meth:`CosemDateTime.to_datetime` converts to an aware
  ``datetime`` when the value is fully specified.
* Deviation sign: the Blue Book defines the deviation as minutes *from local time to UTC*
  (UTC = local + deviation), so CET (UTC+01:00) is sent as -60. A few companion standards use
  the opposite sign; :meth:`CosemDateTime.to_datetime` takes ``invert_deviation`` for them.
"""

from __future__ import annotations

import datetime as _dt
import enum
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias, cast

from metercom.errors import MetercomError

__all__ = [
    "DEVIATION_NOT_SPECIFIED",
    "NOT_SPECIFIED",
    "YEAR_NOT_SPECIFIED",
    "BitString",
    "ClockStatus",
    "CompactArray",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataValue",
    "DlmsType",
    "DlmsValueError",
    "TypeDescription",
]


class DlmsValueError(MetercomError, ValueError):
    """A DLMS value is out of range for its type, or cannot be converted as asked."""


class DlmsType(enum.IntEnum):
    """Type tags of the ``Data`` CHOICE (Green Book clause 9.5, IEC 62056-6-2 Table 2)."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    # Delta types (IEC 62056-6-2:2021), meaningful inside compact arrays; kept as raw ints.
    DELTA_INTEGER = 28
    DELTA_LONG = 29
    DELTA_DOUBLE_LONG = 30
    DELTA_UNSIGNED = 31
    DELTA_LONG_UNSIGNED = 32
    DELTA_DOUBLE_LONG_UNSIGNED = 33
    DONT_CARE = 255


#: Inclusive value range of every integer type, checked by the builders and by the encoder.
INT_RANGES: dict[DlmsType, tuple[int, int]] = {
    DlmsType.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DlmsType.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DlmsType.BCD: (0, 255),
    DlmsType.INTEGER: (-128, 127),
    DlmsType.LONG: (-(2**15), 2**15 - 1),
    DlmsType.UNSIGNED: (0, 255),
    DlmsType.LONG_UNSIGNED: (0, 2**16 - 1),
    DlmsType.LONG64: (-(2**63), 2**63 - 1),
    DlmsType.LONG64_UNSIGNED: (0, 2**64 - 1),
    DlmsType.ENUM: (0, 255),
    DlmsType.DELTA_INTEGER: (-128, 127),
    DlmsType.DELTA_LONG: (-(2**15), 2**15 - 1),
    DlmsType.DELTA_DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DlmsType.DELTA_UNSIGNED: (0, 255),
    DlmsType.DELTA_LONG_UNSIGNED: (0, 2**16 - 1),
    DlmsType.DELTA_DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
}

#: "Not specified" marker of the one-byte date and time fields (0xFF).
NOT_SPECIFIED = 0xFF
#: "Not specified" marker of the year (0xFFFF).
YEAR_NOT_SPECIFIED = 0xFFFF
#: "Not specified" deviation: 0x8000 on the wire, held as the signed value -32768.
DEVIATION_NOT_SPECIFIED = -0x8000
#: Special month values: daylight saving ends / begins (clause 4.1.6.1).
MONTH_DST_END = 0xFD
MONTH_DST_BEGIN = 0xFE
#: Special day-of-month values: second last / last day of the month.
DAY_SECOND_LAST = 0xFD
DAY_LAST = 0xFE

_new = tuple.__new__
# Fixed-offset zones by UTC offset in minutes, shared by all conversions (at most 2,879 of them).
_FIXED_ZONES: dict[int, _dt.timezone] = {}
_DATE_TIME = struct.Struct(">HBBBBBBBhB")
_DATE = struct.Struct(">HBBB")
_TIME = struct.Struct(">BBBB")
_FLOAT32 = struct.Struct(">f")


class ClockStatus(enum.IntFlag):
    """Bits of the clock status byte (IEC 62056-6-2 clause 4.1.6.1); 0xFF means not specified."""

    OK = 0
    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


def _spec(value: int, width: int = 2, unspecified: int = NOT_SPECIFIED) -> str:
    return "*" * width if value == unspecified else f"{value:0{width}d}"


class CosemDate(NamedTuple):
    """A COSEM ``date`` (5 bytes): raw fields, 0xFF/0xFFFF meaning "not specified"."""

    year: int = YEAR_NOT_SPECIFIED
    month: int = NOT_SPECIFIED
    day: int = NOT_SPECIFIED
    day_of_week: int = NOT_SPECIFIED

    @classmethod
    def from_bytes(cls, data: bytes) -> CosemDate:
        """Decode the 5-byte A-XDR form (no type tag)."""
        if len(data) != 5:
            raise DlmsValueError(f"date is 5 bytes, got {len(data)}")
        return _new(cls, _DATE.unpack(data))

    def to_bytes(self) -> bytes:
        """Encode the 5-byte A-XDR form (no type tag)."""
        try:
            return _DATE.pack(*self)
        except struct.error as exc:
            raise DlmsValueError(f"date field out of range: {self!r}") from exc

    @classmethod
    def from_date(cls, value: _dt.date, *, with_day_of_week: bool = True) -> CosemDate:
        """Build from a ``datetime.date`` (day of week 1 = Monday, as ISO and the Blue Book)."""
        dow = value.isoweekday() if with_day_of_week else NOT_SPECIFIED
        return cls(value.year, value.month, value.day, dow)

    @property
    def is_specified(self) -> bool:
        """True if year, month and day are all given as ordinary values."""
        return self.year != YEAR_NOT_SPECIFIED and 1 <= self.month <= 12 and 1 <= self.day <= 31

    def to_date(self) -> _dt.date:
        """Convert to ``datetime.date``; raises :class:`DlmsValueError` if not fully specified."""
        if not self.is_specified:
            raise DlmsValueError(f"date {self} is not fully specified")
        try:
            return _dt.date(self.year, self.month, self.day)
        except ValueError as exc:
            raise DlmsValueError(f"invalid date {self}: {exc}") from exc

    def __str__(self) -> str:
        return f"{_spec(self.year, 4, YEAR_NOT_SPECIFIED)}-{_spec(self.month)}-{_spec(self.day)}"


class CosemTime(NamedTuple):
    """A COSEM ``time`` (4 bytes): hour, minute, second, hundredths; 0xFF = not specified."""

    hour: int = NOT_SPECIFIED
    minute: int = NOT_SPECIFIED
    second: int = NOT_SPECIFIED
    hundredths: int = NOT_SPECIFIED

    @classmethod
    def from_bytes(cls, data: bytes) -> CosemTime:
        """Decode the 4-byte A-XDR form (no type tag)."""
        if len(data) != 4:
            raise DlmsValueError(f"time is 4 bytes, got {len(data)}")
        return _new(cls, _TIME.unpack(data))

    def to_bytes(self) -> bytes:
        """Encode the 4-byte A-XDR form (no type tag)."""
        try:
            return _TIME.pack(*self)
        except struct.error as exc:
            raise DlmsValueError(f"time field out of range: {self!r}") from exc

    @classmethod
    def from_time(cls, value: _dt.time) -> CosemTime:
        """Build from a ``datetime.time`` (microseconds truncated to hundredths)."""
        return cls(value.hour, value.minute, value.second, value.microsecond // 10_000)

    @property
    def is_specified(self) -> bool:
        """True if hour, minute and second are ordinary values (hundredths may be unspecified)."""
        return (
            0 <= self.hour <= 23
            and 0 <= self.minute <= 59
            and 0 <= self.second <= 59
            and (self.hundredths <= 99 or self.hundredths == NOT_SPECIFIED)
        )

    def to_time(self) -> _dt.time:
        """Convert to ``datetime.time`` (unspecified hundredths count as 0)."""
        if not self.is_specified:
            raise DlmsValueError(f"time {self} is not fully specified")
        hundredths = 0 if self.hundredths == NOT_SPECIFIED else self.hundredths
        return _dt.time(self.hour, self.minute, self.second, hundredths * 10_000)

    def __str__(self) -> str:
        return f"{_spec(self.hour)}:{_spec(self.minute)}:{_spec(self.second)}.{_spec(self.hundredths)}"


class CosemDateTime(NamedTuple):
    """A COSEM ``date-time`` (12 bytes, IEC 62056-6-2 clause 4.1.6.1), raw fields.

    ``deviation`` is signed minutes from local time to UTC (-60 for CET), or
    :data:`DEVIATION_NOT_SPECIFIED`; ``clock_status`` is the status byte (0xFF = not specified),
    see :attr:`status` for its bits.
    """

    year: int = YEAR_NOT_SPECIFIED
    month: int = NOT_SPECIFIED
    day: int = NOT_SPECIFIED
    day_of_week: int = NOT_SPECIFIED
    hour: int = NOT_SPECIFIED
    minute: int = NOT_SPECIFIED
    second: int = NOT_SPECIFIED
    hundredths: int = NOT_SPECIFIED
    deviation: int = DEVIATION_NOT_SPECIFIED
    clock_status: int = NOT_SPECIFIED

    @classmethod
    def from_bytes(cls, data: bytes) -> CosemDateTime:
        """Decode the 12-byte form (the content of ``date-time`` or of an ``octet-string(12)``)."""
        if len(data) != 12:
            raise DlmsValueError(f"date-time is 12 bytes, got {len(data)}")
        return _new(cls, _DATE_TIME.unpack(data))

    def to_bytes(self) -> bytes:
        """Encode the 12-byte form."""
        try:
            return _DATE_TIME.pack(*self)
        except struct.error as exc:
            raise DlmsValueError(f"date-time field out of range: {self!r}") from exc

    @classmethod
    def from_datetime(
        cls,
        value: _dt.datetime,
        *,
        with_day_of_week: bool = True,
        clock_status: int | None = None,
    ) -> CosemDateTime:
        """Build from an aware ``datetime`` (e.g. to set a meter's clock).

        The deviation comes from ``value.utcoffset()`` (sign as the Blue Book: UTC+01:00 -> -60);
        the clock status, unless given, is 0x80 when ``value.dst()`` is non-zero, else 0x00.
        """
        offset = value.utcoffset()
        if offset is None:
            raise DlmsValueError("a COSEM date-time needs an aware datetime (tzinfo set)")
        minutes, rest = divmod(offset, _dt.timedelta(minutes=1))
        if rest:
            raise DlmsValueError(f"UTC offset {offset} is not a whole number of minutes")
        if clock_status is None:
            dst = value.dst()
            clock_status = ClockStatus.DAYLIGHT_SAVING_ACTIVE if dst else ClockStatus.OK
        return cls(
            value.year,
            value.month,
            value.day,
            value.isoweekday() if with_day_of_week else NOT_SPECIFIED,
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 10_000,
            -minutes,
            int(clock_status),
        )

    @property
    def date(self) -> CosemDate:
        """The date part."""
        return CosemDate(self.year, self.month, self.day, self.day_of_week)

    @property
    def time(self) -> CosemTime:
        """The time part."""
        return CosemTime(self.hour, self.minute, self.second, self.hundredths)

    @property
    def status(self) -> ClockStatus | None:
        """The clock status bits, or ``None`` when the status byte is 0xFF (not specified)."""
        return None if self.clock_status == NOT_SPECIFIED else ClockStatus(self.clock_status)

    @property
    def is_fully_specified(self) -> bool:
        """True if date, time and deviation are all given (hundredths may be unspecified)."""
        return self.deviation != DEVIATION_NOT_SPECIFIED and self.date.is_specified and self.time.is_specified

    def to_datetime(
        self, *, default_tz: _dt.tzinfo | None = None, invert_deviation: bool = False
    ) -> _dt.datetime:
        """Convert to an aware ``datetime``.

        A specified deviation gives a fixed offset (``-deviation`` minutes, or ``+deviation`` with
        ``invert_deviation`` for companion standards that send the UTC offset). Without a
        deviation, ``default_tz`` (e.g. the meter's configured ``ZoneInfo``) is used, and the DST
        bit of the clock status picks the right hour when the local time is ambiguous.
        Raises :class:`DlmsValueError` if the date, time or time zone is not specified or invalid.
        """
        year, month, day, _, hour, minute, second, hundredths, deviation, clock_status = self
        if not (
            year != YEAR_NOT_SPECIFIED
            and 1 <= month <= 12
            and 1 <= day <= 31
            and 0 <= hour <= 23
            and 0 <= minute <= 59
            and 0 <= second <= 59
            and (0 <= hundredths <= 99 or hundredths == NOT_SPECIFIED)
        ):
            raise DlmsValueError(f"date-time {self} is not fully specified")
        if hundredths == NOT_SPECIFIED:
            hundredths = 0
        tz: _dt.tzinfo | None
        fold = 0
        if deviation != DEVIATION_NOT_SPECIFIED:
            minutes = deviation if invert_deviation else -deviation
            tz = _FIXED_ZONES.get(minutes)
            if tz is None:
                if not -1440 < minutes < 1440:
                    raise DlmsValueError(f"deviation {deviation} min is out of range")
                tz = _FIXED_ZONES[minutes] = _dt.timezone(_dt.timedelta(minutes=minutes))
        elif default_tz is not None:
            tz = default_tz
            # In the repeated hour after the DST change, "DST active" is the first occurrence.
            if clock_status != NOT_SPECIFIED and not clock_status & ClockStatus.DAYLIGHT_SAVING_ACTIVE:
                fold = 1
        else:
            raise DlmsValueError(f"date-time {self} has no deviation and no default time zone was given")
        try:
            return _dt.datetime(year, month, day, hour, minute, second, hundredths * 10_000, tz, fold=fold)
        except ValueError as exc:
            raise DlmsValueError(f"invalid date-time {self}: {exc}") from exc

    def __str__(self) -> str:
        dev = "*" if self.deviation == DEVIATION_NOT_SPECIFIED else str(self.deviation)
        status = "*" if self.clock_status == NOT_SPECIFIED else f"0x{self.clock_status:02x}"
        return f"{self.date} {self.time} dev={dev} status={status}"


@dataclass(frozen=True, slots=True)
class BitString:
    """A DLMS ``bit-string``: ``length`` bits packed MSB first into ``bits`` (as on the wire).

    Unused trailing bits of the last byte are kept as received, so decoding is lossless.
    """

    bits: bytes
    length: int

    def __post_init__(self) -> None:
        if self.length < 0 or len(self.bits) != (self.length + 7) // 8:
            raise DlmsValueError(
                f"bit-string of {self.length} bits needs {(max(self.length, 0) + 7) // 8} bytes, "
                f"got {len(self.bits)}"
            )

    @classmethod
    def from_str(cls, text: str) -> BitString:
        """Build from a string of ``0`` and ``1`` characters, first character = first bit."""
        if text.strip("01"):
            raise DlmsValueError(f"bit-string text may contain only 0 and 1, got {text!r}")
        return cls.from_bools(ch == "1" for ch in text)

    @classmethod
    def from_bools(cls, values: Iterable[bool]) -> BitString:
        """Build from booleans, first value = first (most significant) bit."""
        flags = list(values)
        out = bytearray((len(flags) + 7) // 8)
        for i, flag in enumerate(flags):
            if flag:
                out[i >> 3] |= 0x80 >> (i & 7)
        return cls(bytes(out), len(flags))

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bool]:
        bits = self.bits
        return (bool(bits[i >> 3] & (0x80 >> (i & 7))) for i in range(self.length))

    def bit(self, index: int) -> bool:
        """The bit at ``index`` (0 = first bit sent)."""
        if not 0 <= index < self.length:
            raise IndexError(f"bit {index} outside a {self.length}-bit string")
        return bool(self.bits[index >> 3] & (0x80 >> (index & 7)))

    def __str__(self) -> str:
        return "".join("1" if b else "0" for b in self)


class TypeDescription(NamedTuple):
    """A compact-array ``TypeDescription`` (Green Book clause 9.5, ``compact-array``).

    ``type`` is the tag. For ``ARRAY``, ``size`` is the fixed number of elements and
    ``elements`` holds the one element description; for ``STRUCTURE``, ``elements`` holds one
    description per member and ``size`` their number. Simple types have ``size == 0`` and no
    elements.
    """

    type: DlmsType
    size: int = 0
    elements: tuple[TypeDescription, ...] = ()

    @classmethod
    def simple(cls, type_: DlmsType) -> TypeDescription:
        """Description of a simple type."""
        if type_ in (DlmsType.ARRAY, DlmsType.STRUCTURE, DlmsType.COMPACT_ARRAY):
            raise DlmsValueError(f"{type_.name} is not a simple type")
        return cls(DlmsType(type_))

    @classmethod
    def array(cls, size: int, element: TypeDescription) -> TypeDescription:
        """Description of an array of ``size`` elements of type ``element``."""
        if not 0 <= size <= 0xFFFF:
            raise DlmsValueError(f"compact-array element array size must fit 16 bits, got {size}")
        return cls(DlmsType.ARRAY, size, (element,))

    @classmethod
    def structure(cls, *members: TypeDescription) -> TypeDescription:
        """Description of a structure of the given members."""
        return cls(DlmsType.STRUCTURE, len(members), tuple(members))

    def __str__(self) -> str:
        if self.type == DlmsType.ARRAY:
            return f"array[{self.size}]({self.elements[0]})"
        if self.type == DlmsType.STRUCTURE:
            return "structure(" + ", ".join(str(e) for e in self.elements) + ")"
        return self.type.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class CompactArray:
    """A DLMS ``compact-array``: one type description and elements that all follow it.

    The elements are ordinary :class:`Data` values; on the wire they are sent without type tags
    (the description gives the types), which the codec checks when encoding.
    """

    description: TypeDescription
    elements: list[Data]

    def to_python(self) -> list[object]:
        """The elements as plain Python values (see :meth:`Data.to_python`)."""
        return [e.to_python() for e in self.elements]


#: The Python value a :class:`Data` holds, by type (see the module docstring).
DataValue: TypeAlias = (
    bool
    | int
    | float
    | bytes
    | str
    | BitString
    | CosemDateTime
    | CosemDate
    | CosemTime
    | CompactArray
    | list["Data"]
    | tuple["Data", ...]
    | None
)


def _check_int(type_: DlmsType, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DlmsValueError(f"{type_.name} needs an int, got {type(value).__name__}")
    low, high = INT_RANGES[type_]
    if not low <= value <= high:
        raise DlmsValueError(f"{type_.name} must be in {low}..{high}, got {value}")
    return value


def _checked_data(type_: DlmsType, value: int) -> Data:
    return _new(Data, (type_, _check_int(type_, value)))


class Data(NamedTuple):
    """One DLMS value with its type tag: ``Data(DlmsType.UNSIGNED, 5)``.

    Prefer the builders (``Data.unsigned(5)``, ``Data.structure(a, b)``), which check ranges.
    ``to_python()`` drops the tags (arrays -> lists, structures -> tuples).
    """

    type: DlmsType
    value: DataValue

    # --- builders -----------------------------------------------------------------------------

    @classmethod
    def null(cls) -> Data:
        """``null-data``."""
        return _NULL

    @classmethod
    def dont_care(cls) -> Data:
        """``dont-care`` (tag 255), used in selective access and compact arrays."""
        return _new(cls, (DlmsType.DONT_CARE, None))

    @classmethod
    def array(cls, items: Iterable[Data]) -> Data:
        """``array`` of the given elements (all of one type, by convention)."""
        return _new(cls, (DlmsType.ARRAY, _data_list(items)))

    @classmethod
    def structure(cls, *items: Data) -> Data:
        """``structure`` of the given members."""
        return _new(cls, (DlmsType.STRUCTURE, tuple(_data_list(items))))

    @classmethod
    def boolean(cls, value: bool) -> Data:
        """``boolean``."""
        return _new(cls, (DlmsType.BOOLEAN, bool(value)))

    @classmethod
    def bit_string(cls, value: BitString | str) -> Data:
        """``bit-string`` from a :class:`BitString` or a text such as ``"1010"``."""
        if isinstance(value, str):
            value = BitString.from_str(value)
        return _new(cls, (DlmsType.BIT_STRING, value))

    @classmethod
    def double_long(cls, value: int) -> Data:
        """``double-long`` (Integer32)."""
        return _checked_data(DlmsType.DOUBLE_LONG, value)

    @classmethod
    def double_long_unsigned(cls, value: int) -> Data:
        """``double-long-unsigned`` (Unsigned32)."""
        return _checked_data(DlmsType.DOUBLE_LONG_UNSIGNED, value)

    @classmethod
    def octet_string(cls, value: bytes | bytearray | memoryview) -> Data:
        """``octet-string``."""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise DlmsValueError(f"octet-string needs bytes, got {type(value).__name__}")
        return _new(cls, (DlmsType.OCTET_STRING, bytes(value)))

    @classmethod
    def visible_string(cls, value: str) -> Data:
        """``visible-string`` (one byte per character, Latin-1 range)."""
        try:
            value.encode("latin-1")
        except (UnicodeEncodeError, AttributeError) as exc:
            raise DlmsValueError(f"visible-string needs characters U+0000..U+00FF: {value!r}") from exc
        return _new(cls, (DlmsType.VISIBLE_STRING, value))

    @classmethod
    def utf8_string(cls, value: str) -> Data:
        """``utf8-string``."""
        if not isinstance(value, str):
            raise DlmsValueError(f"utf8-string needs str, got {type(value).__name__}")
        return _new(cls, (DlmsType.UTF8_STRING, value))

    @classmethod
    def bcd(cls, value: int) -> Data:
        """``bcd``: the raw byte (two BCD digits), 0..255."""
        return _checked_data(DlmsType.BCD, value)

    @classmethod
    def integer(cls, value: int) -> Data:
        """``integer`` (Integer8)."""
        return _checked_data(DlmsType.INTEGER, value)

    @classmethod
    def long(cls, value: int) -> Data:
        """``long`` (Integer16)."""
        return _checked_data(DlmsType.LONG, value)

    @classmethod
    def unsigned(cls, value: int) -> Data:
        """``unsigned`` (Unsigned8)."""
        return _checked_data(DlmsType.UNSIGNED, value)

    @classmethod
    def long_unsigned(cls, value: int) -> Data:
        """``long-unsigned`` (Unsigned16)."""
        return _checked_data(DlmsType.LONG_UNSIGNED, value)

    @classmethod
    def compact_array(cls, value: CompactArray) -> Data:
        """``compact-array``."""
        return _new(cls, (DlmsType.COMPACT_ARRAY, value))

    @classmethod
    def long64(cls, value: int) -> Data:
        """``long64`` (Integer64)."""
        return _checked_data(DlmsType.LONG64, value)

    @classmethod
    def long64_unsigned(cls, value: int) -> Data:
        """``long64-unsigned`` (Unsigned64)."""
        return _checked_data(DlmsType.LONG64_UNSIGNED, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        """``enum`` (0..255)."""
        return _checked_data(DlmsType.ENUM, value)

    @classmethod
    def float32(cls, value: float) -> Data:
        """``float32``, rounded to single precision now (so the value equals what a decoder
        of the encoded bytes will see); inf and nan are allowed."""
        try:
            value = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
        except (struct.error, OverflowError, TypeError) as exc:
            raise DlmsValueError(f"not a float32 value: {value!r}") from exc
        return _new(cls, (DlmsType.FLOAT32, value))

    @classmethod
    def float64(cls, value: float) -> Data:
        """``float64``."""
        if isinstance(value, bool) or not isinstance(value, float | int):
            raise DlmsValueError(f"float64 needs a float, got {type(value).__name__}")
        return _new(cls, (DlmsType.FLOAT64, float(value)))

    @classmethod
    def date_time(cls, value: CosemDateTime | _dt.datetime) -> Data:
        """``date-time`` (tag 25). Clock attributes usually use :meth:`octet_date_time` instead."""
        if isinstance(value, _dt.datetime):
            value = CosemDateTime.from_datetime(value)
        return _new(cls, (DlmsType.DATE_TIME, value))

    @classmethod
    def octet_date_time(cls, value: CosemDateTime | _dt.datetime) -> Data:
        """A date-time as ``octet-string(12)``, the form COSEM clock attributes use."""
        if isinstance(value, _dt.datetime):
            value = CosemDateTime.from_datetime(value)
        return _new(cls, (DlmsType.OCTET_STRING, value.to_bytes()))

    @classmethod
    def date(cls, value: CosemDate | _dt.date) -> Data:
        """``date`` (tag 26)."""
        if isinstance(value, _dt.date):
            value = CosemDate.from_date(value)
        return _new(cls, (DlmsType.DATE, value))

    @classmethod
    def time(cls, value: CosemTime | _dt.time) -> Data:
        """``time`` (tag 27)."""
        if isinstance(value, _dt.time):
            value = CosemTime.from_time(value)
        return _new(cls, (DlmsType.TIME, value))

    # --- access -------------------------------------------------------------------------------

    def to_python(self) -> object:
        """The value without type tags: arrays -> lists, structures -> tuples, compact arrays ->
        lists of their elements; everything else unchanged."""
        return _to_python(self)

    def as_int(self) -> int:
        """The value of an integer-typed ``Data`` (raises :class:`DlmsValueError` otherwise)."""
        v = self.value
        if self.type not in INT_RANGES or isinstance(v, bool) or not isinstance(v, int):
            raise DlmsValueError(f"expected an integer type, got {self.type.name}")
        return v

    def as_bytes(self) -> bytes:
        """The value of an ``octet-string``."""
        if self.type != DlmsType.OCTET_STRING or not isinstance(self.value, bytes):
            raise DlmsValueError(f"expected octet-string, got {self.type.name}")
        return self.value

    def as_str(self) -> str:
        """The value of a ``visible-string`` or ``utf8-string`` (invalid UTF-8 is replaced)."""
        v = self.value
        if self.type not in (DlmsType.VISIBLE_STRING, DlmsType.UTF8_STRING):
            raise DlmsValueError(f"expected a string type, got {self.type.name}")
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        if not isinstance(v, str):
            raise DlmsValueError(f"{self.type.name} holds {type(v).__name__}, not str")
        return v

    def as_items(self) -> Sequence[Data]:
        """The elements of an ``array``, ``structure`` or ``compact-array``."""
        v = self.value
        if self.type in (DlmsType.ARRAY, DlmsType.STRUCTURE) and isinstance(v, list | tuple):
            return v
        if self.type == DlmsType.COMPACT_ARRAY and isinstance(v, CompactArray):
            return v.elements
        raise DlmsValueError(f"expected array, structure or compact-array, got {self.type.name}")

    def as_date_time(self) -> CosemDateTime:
        """A ``date-time``, or an ``octet-string(12)`` read as one (the usual clock encoding)."""
        v = self.value
        if self.type == DlmsType.DATE_TIME and isinstance(v, CosemDateTime):
            return v
        if self.type == DlmsType.OCTET_STRING and isinstance(v, bytes) and len(v) == 12:
            return CosemDateTime.from_bytes(v)
        raise DlmsValueError(f"expected date-time or octet-string(12), got {self.type.name}")

    def __repr__(self) -> str:
        tag: object = self.type  # anything may sit in the slot of a hand-built Data
        name = tag.name if isinstance(tag, DlmsType) else repr(tag)
        return f"Data({name}, {self.value!r})"


_CONTAINERS = frozenset((DlmsType.ARRAY, DlmsType.STRUCTURE, DlmsType.COMPACT_ARRAY))
_STRUCTURE = DlmsType.STRUCTURE
_ARRAY = DlmsType.ARRAY


def _to_python(data: Data) -> object:
    # Hot path of the generic profile decoder: scalars return at once, no casts or generators.
    t, v = data
    if t not in _CONTAINERS:
        return v
    if t == _STRUCTURE:
        return tuple([e.to_python() if e[0] in _CONTAINERS else e[1] for e in cast("tuple[Data, ...]", v)])
    if t == _ARRAY:
        return [e.to_python() if e[0] in _CONTAINERS else e[1] for e in cast("list[Data]", v)]
    return cast(CompactArray, v).to_python()


def _data_list(items: Iterable[Data]) -> list[Data]:
    out = list(items)
    for item in out:
        if not isinstance(item, Data):
            raise DlmsValueError(f"array/structure members must be Data, got {type(item).__name__}")
    return out


_NULL: Data = _new(Data, (DlmsType.NULL_DATA, None))

"""A-XDR encoding (IEC 61334-6) of DLMS data, with the BER-style length used throughout DLMS.

Covers the ``Data`` CHOICE of the Green Book (DLMS UA 1000-2 clause 9.5; IEC 62056-6-2 clause
4.1.5): every simple type, nested arrays and structures, compact-array (type description plus
tag-less contents), and the plain A-XDR building blocks the APDU codecs need (fixed-size
integers, OPTIONAL and DEFAULT fields, SEQUENCE OF, octet strings without a type tag). Values are
the :mod:`metercom.model.dlms_data` types; :func:`decode_data` followed by :func:`encode_data` gives
back the input bytes.

Rule: every decoder is bounded. A length is checked against the bytes actually available
before anything is allocated, and no input can decode into more elements than it has bytes: an
array or structure may not claim more elements than bytes remain (each element takes at least its
tag byte), a compact-array description may not contain zero-size parts, and nesting is limited to
:data:`MAX_DEPTH`. Truncated or corrupt input raises :class:`RemoteProtocolError` at once; no
other exception escapes a decoder (a fuzz test holds us to that). Encoders raise
:class:`LocalProtocolError` for values that do not fit their type.

Decisions where the standard leaves room:

* Lengths: the long form is accepted wherever a length appears, also where the short form would
  do (Kamstrup sends ``81 xx``). Encoding always uses the shortest form, so a non-canonical
  length is the one thing a round trip normalises. A non-zero boolean byte decodes as ``True``
  and re-encodes as ``01``.
* ``visible-string`` decodes as Latin-1 (every byte maps to one character, nothing can fail);
  ``utf8-string`` decodes to ``str``, and when the bytes are not valid UTF-8 the value stays
  ``bytes``: nothing is lost, no exception, and :meth:`Data.as_str` shows it with replacement
  characters. The encoder accepts ``str`` or ``bytes`` for both string types.
* ``float32``: CPython turns a signalling NaN into a quiet one when widening to ``float``, so
  that one bit pattern is not preserved.
* A compact-array description with a zero-size part (null-data, don't-care, an empty structure
  or array) is refused: it would let a few bytes decode into unbounded elements.

Profile buffers (Blue Book clause 4.3.6, Profile Generic attribute 2 ``buffer``) are
``array(n)`` of ``structure(k)`` rows that all have the same types. :class:`ProfileDecoder` reads
the first row generically, derives the row layout (tag bytes, string lengths, fixed value
sizes), compiles one :class:`struct.Struct` that covers many rows, checks all tag bytes of a
chunk of rows with one ``unpack_from`` and unpacks all their values with another. A chunk whose
tags differ is halved down to single rows; a row that fits no known layout (a null timestamp in
a compressed profile, a string of another length, a nested value) is decoded generically and
teaches the decoder its layout. The rows are the same tuples :meth:`Data.to_python` gives.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from itertools import repeat
from operator import methodcaller
from typing import Any, Final, NamedTuple, TypeVar, cast

from metercom.errors import LocalProtocolError, RemoteProtocolError
from metercom.model.dlms_data import (
    INT_RANGES,
    BitString,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DlmsType,
    TypeDescription,
)

__all__ = [
    "MAX_DEPTH",
    "Buffer",
    "ProfileDecoder",
    "decode_boolean",
    "decode_data",
    "decode_data_exact",
    "decode_default",
    "decode_fixed_octets",
    "decode_length",
    "decode_octet_string",
    "decode_optional",
    "decode_profile_buffer",
    "decode_sequence_of",
    "decode_signed",
    "decode_unsigned",
    "encode_boolean",
    "encode_data",
    "encode_default",
    "encode_length",
    "encode_octet_string",
    "encode_optional",
    "encode_sequence_of",
    "encode_signed",
    "encode_unsigned",
]

_LAYER = "a-xdr"

#: What the decoders read: ``bytes`` is used as is, anything else is copied once.
Buffer = bytes | bytearray | memoryview

#: Deepest nesting of arrays/structures/compact-array descriptions accepted or produced.
MAX_DEPTH: Final = 32

T = TypeVar("T")

_new = tuple.__new__


# ------------------------------------------------------------------------------------------------
# Lengths (IEC 61334-6 clause 5: BER-style definite length)
# ------------------------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    """Encode a length: one byte below 128, else ``0x80 | n`` followed by ``n`` big-endian bytes."""
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def decode_length(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a length at ``offset``; return ``(length, offset after it)``.

    Accepts the long form even where the short one would do (Kamstrup sends ``81 xx``) and up to
    four length bytes. Raises :class:`RemoteProtocolError` on truncation or an oversize form.
    """
    if offset >= len(data):
        raise RemoteProtocolError("length expected, input ended", layer=_LAYER, data=bytes(data[-16:]))
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise RemoteProtocolError(
            f"length form 0x{first:02x} not supported (1..4 length bytes allowed)",
            layer=_LAYER,
            data=bytes(data[offset : offset + 8]),
        )
    end = offset + 1 + n
    if end > len(data):
        raise RemoteProtocolError(
            f"length of {n} bytes announced, only {len(data) - offset - 1} left", layer=_LAYER
        )
    return int.from_bytes(data[offset + 1 : end], "big"), end


def _read_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """:func:`decode_length` bounded by ``end`` (used inside compact-array contents)."""
    if pos >= end:
        raise _truncated("length", buf, pos, 1, end)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise RemoteProtocolError(
            f"length form 0x{first:02x} at offset {pos} not supported (1..4 length bytes allowed)",
            layer=_LAYER,
            data=buf[pos : pos + 8],
        )
    stop = pos + 1 + n
    if stop > end:
        raise _truncated("length bytes", buf, pos + 1, n, end)
    return int.from_bytes(buf[pos + 1 : stop], "big"), stop


def _truncated(what: str, buf: Buffer, pos: int, need: int, end: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"truncated: {what} at offset {pos} needs {need} byte(s), {max(end - pos, 0)} left",
        layer=_LAYER,
        data=bytes(buf[max(pos - 8, 0) : pos + 8]),
    )


def _fixed_field(buf: Buffer, offset: int, size: int, what: str) -> int:
    """Check that ``size`` bytes are available at ``offset``; return the offset after them."""
    if offset < 0:
        raise LocalProtocolError(f"negative offset {offset}", layer=_LAYER)
    stop = offset + size
    if stop > len(buf):
        raise _truncated(what, buf, offset, size, len(buf))
    return stop


def _as_bytes(buf: Buffer) -> bytes:
    if type(buf) is bytes:
        return buf
    if isinstance(buf, bytes | bytearray | memoryview):
        return bytes(buf)
    raise LocalProtocolError(f"expected bytes, got {type(buf).__name__}", layer=_LAYER)


def _check_offset(buf: bytes, offset: int) -> None:
    if offset < 0 or offset > len(buf):
        raise LocalProtocolError(f"offset {offset} outside a {len(buf)}-byte buffer", layer=_LAYER)


# ------------------------------------------------------------------------------------------------
# Plain A-XDR building blocks for the APDU codecs (IEC 61334-6 clause 6)
# ------------------------------------------------------------------------------------------------


def encode_unsigned(value: int, size: int) -> bytes:
    """An unsigned integer in ``size`` bytes, big-endian (Unsigned8/16/32/64)."""
    try:
        return value.to_bytes(size, "big", signed=False)
    except (OverflowError, AttributeError) as exc:
        raise LocalProtocolError(
            f"{value!r} does not fit an unsigned {size}-byte field", layer=_LAYER
        ) from exc


def encode_signed(value: int, size: int) -> bytes:
    """A two's-complement integer in ``size`` bytes, big-endian (Integer8/16/32/64)."""
    try:
        return value.to_bytes(size, "big", signed=True)
    except (OverflowError, AttributeError) as exc:
        raise LocalProtocolError(f"{value!r} does not fit a signed {size}-byte field", layer=_LAYER) from exc


def decode_unsigned(buf: Buffer, offset: int, size: int) -> tuple[int, int]:
    """Read an unsigned ``size``-byte integer at ``offset``; return ``(value, next offset)``."""
    stop = _fixed_field(buf, offset, size, f"unsigned{size * 8}")
    return int.from_bytes(buf[offset:stop], "big"), stop


def decode_signed(buf: Buffer, offset: int, size: int) -> tuple[int, int]:
    """Read a signed ``size``-byte integer at ``offset``; return ``(value, next offset)``."""
    stop = _fixed_field(buf, offset, size, f"integer{size * 8}")
    return int.from_bytes(buf[offset:stop], "big", signed=True), stop


def encode_boolean(value: bool) -> bytes:
    """A-XDR BOOLEAN: ``01`` or ``00``."""
    return b"\x01" if value else b"\x00"


def decode_boolean(buf: Buffer, offset: int) -> tuple[bool, int]:
    """A-XDR BOOLEAN: any non-zero byte is TRUE."""
    stop = _fixed_field(buf, offset, 1, "boolean")
    return buf[offset] != 0, stop


def encode_octet_string(value: bytes) -> bytes:
    """OCTET STRING without a type tag: A-XDR length, then the bytes."""
    return encode_length(len(value)) + bytes(value)


def decode_octet_string(buf: Buffer, offset: int) -> tuple[bytes, int]:
    """OCTET STRING without a type tag; the length is checked against the bytes left."""
    data = _as_bytes(buf)
    _check_offset(data, offset)
    length, pos = _read_length(data, offset, len(data))
    stop = pos + length
    if stop > len(data):
        raise _truncated("octet-string", data, pos, length, len(data))
    return data[pos:stop], stop


def decode_fixed_octets(buf: Buffer, offset: int, size: int) -> tuple[bytes, int]:
    """A fixed-size OCTET STRING (SIZE(n)): exactly ``size`` bytes, no length."""
    stop = _fixed_field(buf, offset, size, f"octet-string({size})")
    return bytes(buf[offset:stop]), stop


def encode_optional(value: T | None, encoder: Callable[[T], bytes]) -> bytes:
    """OPTIONAL field: ``00`` when absent, else ``01`` and the encoded value."""
    return b"\x00" if value is None else b"\x01" + encoder(value)


def decode_optional(
    buf: Buffer, offset: int, decoder: Callable[[Buffer, int], tuple[T, int]]
) -> tuple[T | None, int]:
    """OPTIONAL field: a usage flag byte (0 = absent), then the value when present."""
    present, pos = decode_boolean(buf, offset)
    if not present:
        return None, pos
    return decoder(buf, pos)


def encode_default(value: T, default: T, encoder: Callable[[T], bytes]) -> bytes:
    """DEFAULT field: ``00`` when the value is the default, else ``01`` and the encoded value."""
    return b"\x00" if value == default else b"\x01" + encoder(value)


def decode_default(
    buf: Buffer, offset: int, decoder: Callable[[Buffer, int], tuple[T, int]], default: T
) -> tuple[T, int]:
    """DEFAULT field: a flag byte (0 = the default), then the value when present."""
    present, pos = decode_boolean(buf, offset)
    if not present:
        return default, pos
    return decoder(buf, pos)


def encode_sequence_of(items: Iterable[T], encoder: Callable[[T], bytes]) -> bytes:
    """SEQUENCE OF: A-XDR element count, then the elements."""
    parts = [encoder(item) for item in items]
    return encode_length(len(parts)) + b"".join(parts)


def decode_sequence_of(
    buf: Buffer, offset: int, decoder: Callable[[Buffer, int], tuple[T, int]]
) -> tuple[list[T], int]:
    """SEQUENCE OF: a count (never more than the bytes left), then that many elements.

    ``decoder`` must consume at least one byte per element (all A-XDR encodings do).
    """
    data = _as_bytes(buf)
    _check_offset(data, offset)
    count, pos = _read_length(data, offset, len(data))
    if count > len(data) - pos:
        raise RemoteProtocolError(
            f"SEQUENCE OF claims {count} elements, only {len(data) - pos} bytes left",
            layer=_LAYER,
            data=data[offset : offset + 8],
        )
    items: list[T] = []
    for _ in range(count):
        item, new_pos = decoder(data, pos)
        if new_pos <= pos:
            raise LocalProtocolError("SEQUENCE OF element decoder consumed no bytes", layer=_LAYER)
        items.append(item)
        pos = new_pos
    return items, pos


# ------------------------------------------------------------------------------------------------
# Data: type tables
# ------------------------------------------------------------------------------------------------

# Fixed-size scalar types: tag -> struct format of the value.
_SCALAR_FORMATS: dict[DlmsType, str] = {
    DlmsType.BOOLEAN: "?",
    DlmsType.DOUBLE_LONG: "i",
    DlmsType.DOUBLE_LONG_UNSIGNED: "I",
    DlmsType.BCD: "B",
    DlmsType.INTEGER: "b",
    DlmsType.LONG: "h",
    DlmsType.UNSIGNED: "B",
    DlmsType.LONG_UNSIGNED: "H",
    DlmsType.LONG64: "q",
    DlmsType.LONG64_UNSIGNED: "Q",
    DlmsType.ENUM: "B",
    DlmsType.FLOAT32: "f",
    DlmsType.FLOAT64: "d",
    DlmsType.DELTA_INTEGER: "b",
    DlmsType.DELTA_LONG: "h",
    DlmsType.DELTA_DOUBLE_LONG: "i",
    DlmsType.DELTA_UNSIGNED: "B",
    DlmsType.DELTA_LONG_UNSIGNED: "H",
    DlmsType.DELTA_DOUBLE_LONG_UNSIGNED: "I",
}

# Date and time types: tag -> (struct format of the fields, model class).
_CALENDAR_FORMATS: dict[DlmsType, tuple[str, type[tuple[int, ...]]]] = {
    DlmsType.DATE_TIME: ("HBBBBBBBhB", CosemDateTime),
    DlmsType.DATE: ("HBBB", CosemDate),
    DlmsType.TIME: ("BBBB", CosemTime),
}


class _Scalar(NamedTuple):
    dtype: DlmsType
    size: int
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    pack: Callable[..., bytes]


class _Calendar(NamedTuple):
    dtype: DlmsType
    size: int
    unpack: Callable[[bytes, int], tuple[int, ...]]
    cls: type[tuple[int, ...]]
    pack: Callable[..., bytes]


_SCALAR: list[_Scalar | None] = [None] * 256
for _t, _f in _SCALAR_FORMATS.items():
    _s = struct.Struct(">" + _f)
    _SCALAR[_t] = _Scalar(_t, _s.size, _s.unpack_from, _s.pack)

_CALENDAR: list[_Calendar | None] = [None] * 256
for _t, (_f, _cls) in _CALENDAR_FORMATS.items():
    _s = struct.Struct(">" + _f)
    _CALENDAR[_t] = _Calendar(_t, _s.size, _s.unpack_from, _cls, _s.pack)

_TYPE_OF: list[DlmsType | None] = [None] * 256
for _member in DlmsType:
    _TYPE_OF[_member] = _member

_T_NULL = DlmsType.NULL_DATA
_T_ARRAY = DlmsType.ARRAY
_T_STRUCTURE = DlmsType.STRUCTURE
_T_BIT_STRING = DlmsType.BIT_STRING
_T_OCTET_STRING = DlmsType.OCTET_STRING
_T_VISIBLE_STRING = DlmsType.VISIBLE_STRING
_T_UTF8_STRING = DlmsType.UTF8_STRING
_T_COMPACT_ARRAY = DlmsType.COMPACT_ARRAY
_T_DONT_CARE = DlmsType.DONT_CARE
_STRING_TAGS = frozenset((_T_OCTET_STRING, _T_VISIBLE_STRING, _T_UTF8_STRING))
_CONTAINER_TAGS = frozenset((_T_STRUCTURE, _T_ARRAY))
_EMPTY_TAGS = frozenset((_T_NULL, _T_DONT_CARE))
_NULL_DATA: Data = _new(Data, (_T_NULL, None))
_DONT_CARE_DATA: Data = _new(Data, (_T_DONT_CARE, None))
_FLOAT_TYPES = frozenset((DlmsType.FLOAT32, DlmsType.FLOAT64))


def _utf8(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # kept as received: see the module docstring


def _make_bit_string(raw: bytes, length: int) -> BitString:
    value = object.__new__(BitString)
    object.__setattr__(value, "bits", raw)
    object.__setattr__(value, "length", length)
    return value


def _string_value(tag: int, raw: bytes) -> str | bytes:
    if tag == _T_OCTET_STRING:
        return raw
    if tag == _T_VISIBLE_STRING:
        return raw.decode("latin-1")
    return _utf8(raw)


# ------------------------------------------------------------------------------------------------
# Data: decoding
# ------------------------------------------------------------------------------------------------


def decode_data(buf: Buffer, offset: int = 0) -> tuple[Data, int]:
    """Decode one tagged ``Data`` value at ``offset``; return ``(value, offset after it)``.

    Raises :class:`RemoteProtocolError` for truncated, oversized, unknown or too deeply nested
    input; nothing else escapes.
    """
    data = _as_bytes(buf)
    _check_offset(data, offset)
    return _decode(data, offset, len(data), 0)


def decode_data_exact(buf: Buffer) -> Data:
    """Decode a buffer that holds exactly one ``Data`` value (trailing bytes are an error)."""
    data = _as_bytes(buf)
    value, pos = _decode(data, 0, len(data), 0)
    if pos != len(data):
        raise RemoteProtocolError(
            f"{len(data) - pos} unexpected byte(s) after the data value at offset {pos}",
            layer=_LAYER,
            data=data[pos : pos + 16],
        )
    return value


def _decode(buf: bytes, pos: int, end: int, depth: int) -> tuple[Data, int]:
    """Decode the tagged value at ``pos``; ``end`` bounds the input, ``depth`` the nesting."""
    if pos >= end:
        raise _truncated("type tag", buf, pos, 1, end)
    start = pos
    tag = buf[pos]
    pos += 1
    scalar = _SCALAR[tag]
    if scalar is not None:
        stop = pos + scalar[1]
        if stop > end:
            raise _truncated(scalar[0].name, buf, pos, scalar[1], end)
        return _new(Data, (scalar[0], scalar[2](buf, pos)[0])), stop
    if tag in _CONTAINER_TAGS:
        if pos >= end:
            raise _truncated("element count", buf, pos, 1, end)
        count = buf[pos]
        if count < 0x80:
            pos += 1
        else:
            count, pos = _read_length(buf, pos, end)
        if count > end - pos:
            raise RemoteProtocolError(
                f"{'structure' if tag == _T_STRUCTURE else 'array'} at offset {start} claims "
                f"{count} elements, only {end - pos} bytes left",
                layer=_LAYER,
                data=buf[start : start + 16],
            )
        if depth >= MAX_DEPTH:
            raise RemoteProtocolError(f"data nested deeper than {MAX_DEPTH} levels", layer=_LAYER)
        depth += 1
        items: list[Data] = []
        append = items.append
        for _ in range(count):
            # Fixed-size scalars (most elements) are decoded inline: no call per element.
            if pos >= end:
                raise _truncated("element", buf, pos, 1, end)
            element = _SCALAR[buf[pos]]
            if element is not None:
                stop = pos + 1 + element[1]
                if stop <= end:
                    append(_new(Data, (element[0], element[2](buf, pos + 1)[0])))
                    pos = stop
                    continue
            item, pos = _decode(buf, pos, end, depth)
            append(item)
        if tag == _T_STRUCTURE:
            return _new(Data, (_T_STRUCTURE, tuple(items))), pos
        return _new(Data, (_T_ARRAY, items)), pos
    if tag in _STRING_TAGS:
        if pos >= end:
            raise _truncated("string length", buf, pos, 1, end)
        length = buf[pos]
        if length < 0x80:
            pos += 1
        else:
            length, pos = _read_length(buf, pos, end)
        stop = pos + length
        if stop > end:
            raise _truncated(_TYPE_NAMES[tag], buf, pos, length, end)
        raw = buf[pos:stop]
        if tag == _T_OCTET_STRING:
            return _new(Data, (_T_OCTET_STRING, raw)), stop
        return _new(Data, (_TYPE_OF[tag], _string_value(tag, raw))), stop
    if tag == _T_NULL:
        return _NULL_DATA, pos
    calendar = _CALENDAR[tag]
    if calendar is not None:
        stop = pos + calendar[1]
        if stop > end:
            raise _truncated(calendar[0].name, buf, pos, calendar[1], end)
        return _new(Data, (calendar[0], _new(calendar[3], calendar[2](buf, pos)))), stop
    if tag == _T_BIT_STRING:
        return _decode_bit_string(buf, pos, end)
    if tag == _T_DONT_CARE:
        return _DONT_CARE_DATA, pos
    if tag == _T_COMPACT_ARRAY:
        return _decode_compact_array(buf, pos, end, depth)
    raise RemoteProtocolError(
        f"unknown data type tag 0x{tag:02x} at offset {start}",
        layer=_LAYER,
        data=buf[max(start - 8, 0) : start + 8],
    )


_TYPE_NAMES: dict[int, str] = {int(t): t.name.lower().replace("_", "-") for t in DlmsType}


def _decode_bit_string(buf: bytes, pos: int, end: int) -> tuple[Data, int]:
    bit_count, pos = _read_length(buf, pos, end)
    size = (bit_count + 7) // 8
    stop = pos + size
    if stop > end:
        raise _truncated("bit-string", buf, pos, size, end)
    return _new(Data, (_T_BIT_STRING, _make_bit_string(buf[pos:stop], bit_count))), stop


def _decode_type_description(buf: bytes, pos: int, end: int, depth: int) -> tuple[TypeDescription, int]:
    if depth >= MAX_DEPTH:
        raise RemoteProtocolError(f"type description nested deeper than {MAX_DEPTH} levels", layer=_LAYER)
    if pos >= end:
        raise _truncated("type description", buf, pos, 1, end)
    tag = buf[pos]
    pos += 1
    if tag == _T_ARRAY:
        if pos + 2 > end:
            raise _truncated("array size in type description", buf, pos, 2, end)
        size = (buf[pos] << 8) | buf[pos + 1]
        element, pos = _decode_type_description(buf, pos + 2, end, depth + 1)
        return _new(TypeDescription, (_T_ARRAY, size, (element,))), pos
    if tag == _T_STRUCTURE:
        count, pos = _read_length(buf, pos, end)
        if count > end - pos:
            raise RemoteProtocolError(
                f"type description claims {count} structure members, only {end - pos} bytes left",
                layer=_LAYER,
            )
        members = []
        for _ in range(count):
            member, pos = _decode_type_description(buf, pos, end, depth + 1)
            members.append(member)
        return _new(TypeDescription, (_T_STRUCTURE, count, tuple(members))), pos
    dtype = _TYPE_OF[tag]
    if dtype is None or dtype == _T_COMPACT_ARRAY:
        raise RemoteProtocolError(
            f"invalid type 0x{tag:02x} in compact-array description at offset {pos - 1}",
            layer=_LAYER,
            data=buf[max(pos - 9, 0) : pos + 8],
        )
    return _new(TypeDescription, (dtype, 0, ())), pos


def _min_size(td: TypeDescription) -> int:
    """Fewest content bytes one value of ``td`` takes (strings: their length byte)."""
    t = td.type
    if t == _T_ARRAY:
        return td.size * _min_size(td.elements[0])
    if t == _T_STRUCTURE:
        return sum(_min_size(e) for e in td.elements)
    scalar = _SCALAR[t]
    if scalar is not None:
        return scalar.size
    calendar = _CALENDAR[t]
    if calendar is not None:
        return calendar.size
    if t in _STRING_TAGS or t == _T_BIT_STRING:
        return 1
    return 0  # null-data, don't-care


def _zero_size_part(td: TypeDescription) -> bool:
    if _min_size(td) == 0:
        return True
    return any(_zero_size_part(e) for e in td.elements)


def _decode_compact_array(buf: bytes, pos: int, end: int, depth: int) -> tuple[Data, int]:
    if depth >= MAX_DEPTH:
        raise RemoteProtocolError(f"data nested deeper than {MAX_DEPTH} levels", layer=_LAYER)
    td, pos = _decode_type_description(buf, pos, end, depth + 1)
    if _zero_size_part(td):
        raise RemoteProtocolError(
            f"compact-array description {td} has a zero-size part; refused (unbounded elements)",
            layer=_LAYER,
        )
    length, pos = _read_length(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise _truncated("compact-array contents", buf, pos, length, end)
    # Every element takes at least element_size bytes (>= 1), so the element count and the
    # work per element are bounded by the contents length before anything is built.
    element_size = _min_size(td)
    elements: list[Data] = []
    while pos < stop:
        if stop - pos < element_size:
            raise _truncated("compact-array element", buf, pos, element_size, stop)
        element, pos = _decode_untagged(td, buf, pos, stop, depth + 1)
        elements.append(element)
    return _new(Data, (_T_COMPACT_ARRAY, CompactArray(td, elements))), stop


def _decode_untagged(td: TypeDescription, buf: bytes, pos: int, end: int, depth: int) -> tuple[Data, int]:
    """Decode a compact-array element: the value of ``td`` without type tags."""
    t = td.type
    scalar = _SCALAR[t]
    if scalar is not None:
        stop = pos + scalar.size
        if stop > end:
            raise _truncated(f"compact-array {scalar.dtype.name}", buf, pos, scalar.size, end)
        return _new(Data, (scalar.dtype, scalar.unpack(buf, pos)[0])), stop
    if t in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise RemoteProtocolError(f"data nested deeper than {MAX_DEPTH} levels", layer=_LAYER)
        members = td.elements if t == _T_STRUCTURE else td.elements * td.size
        items = []
        for member in members:
            item, pos = _decode_untagged(member, buf, pos, end, depth + 1)
            items.append(item)
        if t == _T_STRUCTURE:
            return _new(Data, (_T_STRUCTURE, tuple(items))), pos
        return _new(Data, (_T_ARRAY, items)), pos
    if t in _STRING_TAGS:
        length, pos = _read_length(buf, pos, end)
        stop = pos + length
        if stop > end:
            raise _truncated(f"compact-array {_TYPE_NAMES[t]}", buf, pos, length, end)
        return _new(Data, (t, _string_value(t, buf[pos:stop]))), stop
    calendar = _CALENDAR[t]
    if calendar is not None:
        stop = pos + calendar.size
        if stop > end:
            raise _truncated(f"compact-array {calendar.dtype.name}", buf, pos, calendar.size, end)
        return _new(Data, (t, _new(calendar.cls, calendar.unpack(buf, pos)))), stop
    if t == _T_BIT_STRING:
        return _decode_bit_string(buf, pos, end)
    # null-data / don't-care never get here: zero-size descriptions are refused up front.
    raise RemoteProtocolError(f"type {t.name} cannot appear in compact-array contents", layer=_LAYER)


# ------------------------------------------------------------------------------------------------
# Data: encoding
# ------------------------------------------------------------------------------------------------


def encode_data(value: Data) -> bytes:
    """Encode a tagged ``Data`` value. Raises :class:`LocalProtocolError` for values that do not
    fit their type (out-of-range integers, wrong Python types, nesting beyond :data:`MAX_DEPTH`)."""
    out = bytearray()
    _encode(out, value, 0)
    return bytes(out)


def _bad(value: object, what: str) -> LocalProtocolError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return LocalProtocolError(f"cannot encode {text}: {what}", layer=_LAYER)


def _check_int_value(dtype: DlmsType, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(v, f"{dtype.name} needs an int")
    low, high = INT_RANGES[dtype]
    if not low <= v <= high:
        raise _bad(v, f"{dtype.name} must be in {low}..{high}")
    return v


def _encode_scalar_value(out: bytearray, scalar: _Scalar, v: object) -> None:
    dtype = scalar.dtype
    if dtype == DlmsType.BOOLEAN:
        if not isinstance(v, bool | int):
            raise _bad(v, "boolean needs a bool")
        out += b"\x01" if v else b"\x00"
    elif dtype in _FLOAT_TYPES:
        if isinstance(v, bool) or not isinstance(v, float | int):
            raise _bad(v, f"{dtype.name} needs a float")
        try:
            out += scalar.pack(v)
        except (struct.error, OverflowError) as exc:
            raise _bad(v, f"out of range for {dtype.name}") from exc
    else:
        out += scalar.pack(_check_int_value(dtype, v))


def _string_bytes(dtype: DlmsType, v: object) -> bytes:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if dtype == _T_OCTET_STRING or not isinstance(v, str):
        raise _bad(v, f"{dtype.name} needs bytes")
    try:
        return v.encode("latin-1" if dtype == _T_VISIBLE_STRING else "utf-8")
    except UnicodeEncodeError as exc:
        raise _bad(v, f"{dtype.name} cannot hold these characters") from exc


def _items(v: object, dtype: DlmsType) -> Sequence[Data]:
    if not isinstance(v, list | tuple):
        raise _bad(v, f"{dtype.name} needs a list or tuple of Data")
    return v


def _encode(out: bytearray, d: object, depth: int) -> None:
    if not isinstance(d, Data):
        raise _bad(d, "not a Data value")
    dtype, v = d
    raw_tag: object = dtype  # callers may build Data(...) with anything in the type slot
    if not isinstance(raw_tag, int) or not 0 <= raw_tag <= 255 or _TYPE_OF[raw_tag] is None:
        raise _bad(d, f"unknown type tag {dtype!r}")
    tag = int(raw_tag)
    out.append(tag)
    scalar = _SCALAR[tag]
    if scalar is not None:
        _encode_scalar_value(out, scalar, v)
    elif tag in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise _bad(type(d), f"nested deeper than {MAX_DEPTH} levels")
        items = _items(v, dtype)
        out += encode_length(len(items))
        for item in items:
            _encode(out, item, depth + 1)
    elif tag in _STRING_TAGS:
        raw = _string_bytes(dtype, v)
        out += encode_length(len(raw))
        out += raw
    elif tag in _EMPTY_TAGS:
        if v is not None:
            raise _bad(v, f"{dtype.name} carries no value")
    elif _CALENDAR[tag] is not None:
        calendar = cast(_Calendar, _CALENDAR[tag])
        _encode_calendar(out, calendar, v)
    elif tag == _T_BIT_STRING:
        _encode_bit_string(out, v)
    else:  # compact-array
        _encode_compact_array(out, v, depth)


def _encode_calendar(out: bytearray, calendar: _Calendar, v: object) -> None:
    if not isinstance(v, calendar.cls):
        raise _bad(v, f"{calendar.dtype.name} needs a {calendar.cls.__name__}")
    try:
        out += calendar.pack(*v)
    except struct.error as exc:
        raise _bad(v, f"{calendar.dtype.name} field out of range") from exc


def _encode_bit_string(out: bytearray, v: object) -> None:
    if not isinstance(v, BitString):
        raise _bad(v, "bit-string needs a BitString")
    if len(v.bits) != (v.length + 7) // 8:
        raise _bad(v, "bit-string byte count does not match its bit length")
    out += encode_length(v.length)
    out += v.bits


def _encode_type_description(out: bytearray, td: TypeDescription, depth: int) -> None:
    """Encode ``td``, validating its shape (which the decoders and ``_min_size`` rely on)."""
    if depth >= MAX_DEPTH:
        raise _bad(td, f"type description nested deeper than {MAX_DEPTH} levels")
    if not isinstance(td, TypeDescription):
        raise _bad(td, "not a TypeDescription")
    t: object = td.type
    size: object = td.size
    if t == _T_ARRAY:
        if len(td.elements) != 1 or not isinstance(size, int) or not 0 <= size <= 0xFFFF:
            raise _bad(td, "array description needs one element type and a 16-bit size")
        out.append(_T_ARRAY)
        out += size.to_bytes(2, "big")
        _encode_type_description(out, td.elements[0], depth + 1)
    elif t == _T_STRUCTURE:
        if size != len(td.elements):
            raise _bad(td, "structure description size must equal its number of members")
        out.append(_T_STRUCTURE)
        out += encode_length(len(td.elements))
        for member in td.elements:
            _encode_type_description(out, member, depth + 1)
    elif (
        not isinstance(t, int)
        or not 0 <= t <= 255
        or _TYPE_OF[t] is None
        or t == _T_COMPACT_ARRAY
        or td.elements
        or size != 0
    ):
        raise _bad(td, "invalid compact-array type description")
    else:
        out.append(t)


def _encode_compact_array(out: bytearray, v: object, depth: int) -> None:
    if not isinstance(v, CompactArray):
        raise _bad(v, "compact-array needs a CompactArray")
    if depth >= MAX_DEPTH:
        raise _bad(type(v), f"nested deeper than {MAX_DEPTH} levels")
    _encode_type_description(out, v.description, depth + 1)  # validates the shape first
    if _zero_size_part(v.description):
        raise _bad(v.description, "compact-array description has a zero-size part")
    contents = bytearray()
    for element in v.elements:
        _encode_untagged(contents, v.description, element, depth + 1)
    out += encode_length(len(contents))
    out += contents


def _encode_untagged(out: bytearray, td: TypeDescription, d: object, depth: int) -> None:
    if not isinstance(d, Data) or d.type != td.type:
        raise _bad(d, f"compact-array element does not match its description {td}")
    t = td.type
    v = d.value
    scalar = _SCALAR[t]
    if scalar is not None:
        _encode_scalar_value(out, scalar, v)
    elif t in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise _bad(type(d), f"nested deeper than {MAX_DEPTH} levels")
        items = _items(v, t)
        members = td.elements if t == _T_STRUCTURE else td.elements * td.size
        if len(items) != len(members):
            raise _bad(d, f"{len(items)} members where the description {td} has {len(members)}")
        for member, item in zip(members, items, strict=True):
            _encode_untagged(out, member, item, depth + 1)
    elif t in _STRING_TAGS:
        raw = _string_bytes(t, v)
        out += encode_length(len(raw))
        out += raw
    elif _CALENDAR[t] is not None:
        _encode_calendar(out, cast(_Calendar, _CALENDAR[t]), v)
    elif t == _T_BIT_STRING:
        _encode_bit_string(out, v)
    else:
        raise _bad(d, f"{t.name} cannot appear in compact-array contents")


# ------------------------------------------------------------------------------------------------
# Profile Generic buffers: the fast row decoder
# ------------------------------------------------------------------------------------------------

_PLAIN, _NONE, _DATE_TIME, _DATE, _TIME, _LATIN1, _UTF8, _BITS = range(8)
_CALENDAR_KIND = {DlmsType.DATE_TIME: _DATE_TIME, DlmsType.DATE: _DATE, DlmsType.TIME: _TIME}
_MAKERS: dict[int, Callable[[Iterable[int]], Any]] = {
    _DATE_TIME: partial(_new, CosemDateTime),
    _DATE: partial(_new, CosemDate),
    _TIME: partial(_new, CosemTime),
}
_FIELDS = {_DATE_TIME: 10, _DATE: 4, _TIME: 4}
_LATIN1_DECODE = methodcaller("decode", "latin-1")
#: Rows unpacked by one struct call at most (bounds the size of the compiled structs).
_MAX_CHUNK: Final = 256
#: Compiled chunk plans kept per layout, and layouts kept per decoder.
_MAX_PLANS: Final = 24
_MAX_LAYOUTS: Final = 32


class _ColumnLayout(NamedTuple):
    check: str  # struct format over the column's bytes: tag/length bytes as B, value bytes padded
    expected: tuple[int, ...]  # the tag/length byte values
    value: str  # struct format over the same bytes: tag/length padded, value fields unpacked
    fields: int  # number of value fields the column produces
    kind: int  # how the fields become the row value
    arg: int  # bit length for bit-strings


class _Plan(NamedTuple):
    rows: int
    size: int
    check: Callable[[bytes, int], tuple[Any, ...]]
    expected: tuple[int, ...]
    values: Callable[[bytes, int], tuple[Any, ...]]


class _RowLayout:
    """A compiled row shape: ``structure(k)`` with fixed-size members."""

    __slots__ = ("check_format", "columns", "expected", "fields", "plain", "plans", "size", "value_format")

    def __init__(self, columns: Sequence[_ColumnLayout]) -> None:
        self.columns = tuple(columns)
        self.check_format = "BB" + "".join(c.check for c in columns)
        self.value_format = "2x" + "".join(c.value for c in columns)
        self.expected = (int(_T_STRUCTURE), len(columns), *(b for c in columns for b in c.expected))
        self.size = struct.calcsize(">" + self.check_format)
        self.fields = sum(c.fields for c in columns)
        self.plain = all(c.kind == _PLAIN for c in columns)
        self.plans: dict[int, _Plan] = {}

    def plan(self, rows: int) -> _Plan:
        plan = self.plans.get(rows)
        if plan is None:
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()
            plan = _Plan(
                rows,
                self.size * rows,
                struct.Struct(">" + self.check_format * rows).unpack_from,
                self.expected * rows,
                struct.Struct(">" + self.value_format * rows).unpack_from,
            )
            self.plans[rows] = plan
        return plan

    def decode(self, plan: _Plan, buf: bytes, pos: int) -> list[tuple[Any, ...]]:
        """Unpack ``plan.rows`` rows whose tag bytes have been checked."""
        flat = plan.values(buf, pos)
        m = self.fields
        n = plan.rows
        if self.plain:
            if m == 0:
                return [()] * n
            return list(zip(*[flat[j::m] for j in range(m)], strict=True))
        columns: list[Iterable[Any]] = []
        j = 0
        for column in self.columns:
            kind = column.kind
            if kind == _PLAIN:
                columns.append(flat[j::m])
            elif kind == _NONE:
                columns.append(repeat(None, n))
            elif kind == _LATIN1:
                columns.append(map(_LATIN1_DECODE, flat[j::m]))
            elif kind == _UTF8:
                columns.append(map(_utf8, flat[j::m]))
            elif kind == _BITS:
                columns.append(map(_make_bit_string, flat[j::m], repeat(column.arg, n)))
            else:
                parts = [flat[j + i :: m] for i in range(column.fields)]
                columns.append(map(_MAKERS[kind], zip(*parts, strict=True)))
            j += column.fields
        return list(zip(*columns, strict=False))


def _column_layout(index: int, item: Data, date_time_columns: Collection[int]) -> _ColumnLayout | None:
    t = item.type
    scalar = _SCALAR[t]
    if scalar is not None:
        return _ColumnLayout("B" + f"{scalar.size}x", (int(t),), "x" + _SCALAR_FORMATS[t], 1, _PLAIN, 0)
    if t in _EMPTY_TAGS:
        return _ColumnLayout("B", (int(t),), "x", 0, _NONE, 0)
    calendar = _CALENDAR[t]
    if calendar is not None:
        kind = _CALENDAR_KIND[t]
        fmt = _CALENDAR_FORMATS[t][0]
        return _ColumnLayout(f"B{calendar.size}x", (int(t),), "x" + fmt, _FIELDS[kind], kind, 0)
    if t in _STRING_TAGS:
        v = item.value
        length = len(v) if isinstance(v, bytes) else len(_string_bytes(t, v))
        if length >= 0x80:
            return None
        pad = f"{length}x" if length else ""
        if t == _T_OCTET_STRING and length == 12 and index in date_time_columns:
            return _ColumnLayout("BB" + pad, (int(t), length), "2x" + "HBBBBBBBhB", 10, _DATE_TIME, 0)
        kind = _PLAIN if t == _T_OCTET_STRING else _LATIN1 if t == _T_VISIBLE_STRING else _UTF8
        return _ColumnLayout("BB" + pad, (int(t), length), f"2x{length}s", 1, kind, 0)
    bits = item.value
    if t == _T_BIT_STRING and isinstance(bits, BitString) and bits.length < 0x80:
        size = len(bits.bits)
        pad = f"{size}x" if size else ""
        return _ColumnLayout("BB" + pad, (int(t), bits.length), f"2x{size}s", 1, _BITS, bits.length)
    return None  # arrays, structures, compact arrays, long strings: generic decoding


class ProfileDecoder:
    """Decodes Profile Generic ``buffer`` values (array of structure rows) into tuples, fast.

    ``date_time_columns`` names the columns (0-based) whose ``octet-string(12)`` values are
    clock readings (from the capture objects: class 8 attribute 2); they come out as
    :class:`CosemDateTime` instead of ``bytes``. Every other value comes out as
    :meth:`Data.to_python` gives it: raw ``int`` register values ready for scaling, ``bytes``,
    ``str``, ``None`` for null-data (compressed timestamps).

    A decoder keeps the row layouts it has learnt (bounded), so reuse one per profile. Sharing
    one between threads is safe: the caches only ever hold complete, immutable plans.
    """

    def __init__(self, *, date_time_columns: Iterable[int] = ()) -> None:
        self.date_time_columns = frozenset(date_time_columns)
        self._layouts: dict[tuple[Any, ...], _RowLayout] = {}
        self._recent: _RowLayout | None = None

    def decode(self, buf: Buffer) -> list[tuple[Any, ...]]:
        """Decode a buffer holding exactly one profile buffer value."""
        data = _as_bytes(buf)
        rows, pos = self.decode_from(data, 0)
        if pos != len(data):
            raise RemoteProtocolError(
                f"{len(data) - pos} unexpected byte(s) after the profile buffer at offset {pos}",
                layer=_LAYER,
                data=data[pos : pos + 16],
            )
        return rows

    def decode_from(self, buf: Buffer, offset: int = 0) -> tuple[list[tuple[Any, ...]], int]:
        """Decode the profile buffer at ``offset``; return ``(rows, offset after it)``.

        ``null-data`` (an empty buffer, as some meters send) gives no rows; a compact-array of
        structures is accepted too (decoded generically).
        """
        data = _as_bytes(buf)
        _check_offset(data, offset)
        end = len(data)
        pos = offset
        if pos >= end:
            raise _truncated("profile buffer", data, pos, 1, end)
        tag = data[pos]
        if tag == _T_NULL:
            return [], pos + 1
        if tag == _T_COMPACT_ARRAY:
            value, pos = _decode(data, pos, end, 0)
            return [self._row(e) for e in cast(CompactArray, value.value).elements], pos
        if tag != _T_ARRAY:
            raise RemoteProtocolError(
                f"profile buffer must be an array, got type tag 0x{tag:02x}",
                layer=_LAYER,
                data=data[pos : pos + 16],
            )
        count, pos = _read_length(data, pos + 1, end)
        if count > end - pos:
            raise RemoteProtocolError(
                f"profile buffer claims {count} rows, only {end - pos} bytes left",
                layer=_LAYER,
                data=data[offset : offset + 16],
            )
        rows: list[tuple[Any, ...]] = []
        # Start with the layout the previous buffer began with: in steady state (the same profile
        # read every day) the whole buffer is checked and unpacked without any generic decoding.
        layout = self._recent
        known: list[_RowLayout] = [] if layout is None else [layout]
        remaining = count
        chunk = _MAX_CHUNK
        while remaining:
            if layout is not None:
                n = min(chunk, remaining)
                plan = layout.plan(n)
                stop = pos + plan.size
                if stop <= end and plan.check(data, pos) == plan.expected:
                    rows += layout.decode(plan, data, pos)
                    pos = stop
                    remaining -= n
                    chunk = min(chunk * 2, _MAX_CHUNK)
                    continue
                if n > 1 and rows:
                    # Some row in the chunk differs: narrow down (powers of two keep the number
                    # of compiled plans small).
                    chunk = 1 << ((n - 1).bit_length() - 1)
                    continue
                switched = False
                for other in known:
                    if other is layout:
                        continue
                    plan = other.plan(1)
                    stop = pos + plan.size
                    if stop <= end and plan.check(data, pos) == plan.expected:
                        layout = other
                        rows += other.decode(plan, data, pos)
                        pos = stop
                        remaining -= 1
                        switched = True
                        break
                if switched:
                    continue
            item, pos = _decode(data, pos, end, 1)
            learnt = self._layout(item)
            if not rows:
                self._recent = learnt
            rows.append(self._row(item))
            remaining -= 1
            if learnt is not None:
                layout = learnt
                if learnt not in known and len(known) < 8:
                    known.append(learnt)
            chunk = 1
        return rows, pos

    def _row(self, item: Data) -> tuple[Any, ...]:
        if item.type != _T_STRUCTURE:
            raise RemoteProtocolError(
                f"profile buffer rows must be structures, got {item.type.name}", layer=_LAYER
            )
        row = cast("tuple[Data, ...]", item.value)
        out = [member.to_python() for member in row]
        for index in self.date_time_columns:
            if index < len(row):
                v = out[index]
                if row[index].type == _T_OCTET_STRING and isinstance(v, bytes) and len(v) == 12:
                    out[index] = _new(CosemDateTime, _CALENDAR_UNPACK_DT(v, 0))
        return tuple(out)

    def _layout(self, item: Data) -> _RowLayout | None:
        if item.type != _T_STRUCTURE:
            return None
        members = cast("tuple[Data, ...]", item.value)
        if len(members) >= 0x80:
            return None
        columns = []
        for index, member in enumerate(members):
            column = _column_layout(index, member, self.date_time_columns)
            if column is None:
                return None
            columns.append(column)
        key = tuple(columns)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            layout = _RowLayout(columns)
            self._layouts[key] = layout
        return layout


_CALENDAR_UNPACK_DT = struct.Struct(">HBBBBBBBhB").unpack_from
_DEFAULT_DECODERS: dict[frozenset[int], ProfileDecoder] = {}


def decode_profile_buffer(buf: Buffer, *, date_time_columns: Iterable[int] = ()) -> list[tuple[Any, ...]]:
    """Decode a Profile Generic buffer into row tuples (see :class:`ProfileDecoder`).

    Uses a shared decoder per ``date_time_columns`` set, so layouts are compiled once.
    """
    key = frozenset(date_time_columns)
    decoder = _DEFAULT_DECODERS.get(key)
    if decoder is None:
        if len(_DEFAULT_DECODERS) >= 16:
            _DEFAULT_DECODERS.clear()
        decoder = _DEFAULT_DECODERS[key] = ProfileDecoder(date_time_columns=key)
    return decoder.decode(buf)

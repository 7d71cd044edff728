"""IEC 62056-21 data sets: ``address(value*unit)`` lines parsed into typed readings.

Rule: a line is either parsed completely or kept raw; nothing is dropped and nothing is
half-parsed into a number. Values become :class:`~decimal.Decimal`, never ``float``.

Syntax (protocols.md 1.9): a data block is a sequence of lines ending in CR LF; a line holds
one or more data sets; a data set is an address followed by one or more bracketed values
``(value[*unit])``. The address is OBIS text or a manufacturer code (at most 16 characters);
a value has at most 32 characters (128 in programming mode of protocol mode C), a unit at
most 16.

Theory of operation, and the field deviations it absorbs (protocols.md 1.12):

* Lines are split on CR LF (a bare CR or LF also ends a line). Blank lines carry nothing and
  are skipped; any other line that does not fit the syntax becomes one :class:`DataSet` with
  no values and the line in ``raw`` (``parsed`` is False).
* Each ``(...)`` after an address is one :class:`Value`, so ``1.6.0(18014*kW)(10-02-01 00:15)``
  keeps the maximum demand and its time stamp; text between ``)`` and the next ``(`` starts a
  new data set (several data sets per line). Only spaces/NULs between groups continue the
  same data set.
* Inside a value, the first ``*`` separates the unit; an empty unit (``013925.5*``) gives
  ``unit=None``. Without ``*``, a number followed by spaces and a unit (``0000000 kWh``, Iskra
  MT171) is split the same way. NUL and space padding around value and unit is stripped.
* A value is a number when it is entirely an optional sign, digits and at most one decimal
  point or decimal comma (``000007,4``, Kamstrup); anything else (time stamps, meter numbers,
  hex words) keeps ``number=None`` and its text. :func:`parse_timestamp`, :func:`parse_date`
  and :func:`parse_time` read the common time formats from that text.
* The address keeps ``*`` and ``&`` as the billing-period separator and the letter codes
  (``1.8.1&12``, ``C.1.0``, ``F.F``); :meth:`metercom.model.obis.Obis.parse` gives ``obis``,
  or ``None`` for manufacturer codes it does not know (``FF``), with the text still in
  ``address``. ``/`` is allowed in an address (Siemens TD-3511).

Work is linear in the input; limits are checked on the text found, never by allocating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

from metercom.codec.iec62056_21.constants import (
    MAX_ADDRESS_LENGTH,
    MAX_UNIT_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_VALUE_LENGTH_PROGRAMMING,
)
from metercom.model.obis import Obis

__all__ = [
    "DataSet",
    "Value",
    "parse_data_block",
    "parse_data_line",
    "parse_date",
    "parse_time",
    "parse_timestamp",
]

_PAD: Final = " \x00"
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")
_NUMBER_UNIT: Final = re.compile(r"([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)) +([A-Za-z%][!-~]*)")
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
# Characters a value, unit or address may hold once padding is stripped: printable ASCII.
_TEXT: Final = re.compile(r"[ -~]*")


def _strip(text: str) -> str:
    return text.strip(_PAD)


@dataclass(frozen=True, slots=True)
class Value:
    """One bracketed value: its ``text`` (padding and unit removed), the ``number`` if the text
    is numeric (decimal comma accepted) and the ``unit`` if one was given."""

    text: str
    number: Decimal | None = None
    unit: str | None = None

    @classmethod
    def of(cls, value: Decimal | int | str, unit: str | None = None) -> Value:
        """A value from a number or text, for building readouts (simulator, tests)."""
        text = str(value)
        return cls(text, _to_number(text), unit or None)

    @classmethod
    def parse(cls, content: str, *, max_length: int = MAX_VALUE_LENGTH) -> Value | None:
        """Parse the text between ``(`` and ``)``; ``None`` if it breaks the syntax or limits."""
        unit: str | None
        if "*" in content:
            text, _, unit_text = content.partition("*")
            if "*" in unit_text:
                return None
            text = _strip(text)
            unit = _strip(unit_text) or None
        else:
            text = _strip(content)
            unit = None
            if (m := _NUMBER_UNIT.fullmatch(text)) is not None:
                text, unit = m[1], m[2]
        if len(text) > max_length or (unit is not None and len(unit) > MAX_UNIT_LENGTH):
            return None
        if not _TEXT.fullmatch(text) or (unit is not None and not _TEXT.fullmatch(unit)):
            return None
        return cls(text, _to_number(text), unit)

    def to_text(self) -> str:
        """The value as written inside the brackets: ``343642.9*kWh``."""
        return f"{self.text}*{self.unit}" if self.unit else self.text


def _to_number(text: str) -> Decimal | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        return None


@dataclass(frozen=True, slots=True)
class DataSet:
    """One data set: ``address``, its ``obis`` code if it is one, the ``values`` and the ``raw`` text.

    A line that could not be parsed is kept as a data set with ``values == ()`` and
    ``address == ""``; :attr:`parsed` tells the two apart.
    """

    address: str
    obis: Obis | None
    values: tuple[Value, ...]
    raw: str

    @classmethod
    def of(cls, address: str, *values: Value) -> DataSet:
        """Build a data set (for the simulator): ``DataSet.of("1.8.0", Value.of("12.5", "kWh"))``."""
        raw = address + "".join(f"({v.to_text()})" for v in values)
        return cls(address, _obis(address), values, raw)

    @property
    def parsed(self) -> bool:
        """False for a line kept raw because it did not fit the data-set syntax."""
        return bool(self.values)

    @property
    def value(self) -> Value | None:
        """The first value (most data sets have one)."""
        return self.values[0] if self.values else None

    def to_text(self) -> str:
        """The data set as sent: the raw text for parsed and unparsed data sets alike."""
        return self.raw


def _obis(address: str) -> Obis | None:
    if not address:
        return None
    try:
        return Obis.parse(address)
    except ValueError:  # InputError: a manufacturer code, not OBIS
        return None


def _address_ok(address: str) -> bool:
    return len(address) <= MAX_ADDRESS_LENGTH and _TEXT.fullmatch(address) is not None and "!" not in address


def parse_data_line(line: str, *, programming: bool = False) -> tuple[DataSet, ...]:
    """Parse one line (without CR LF) into its data sets; see the module docstring.

    ``programming`` raises the value limit from 32 to 128 characters. Returns ``()`` for a
    blank line and a single unparsed :class:`DataSet` for a line that breaks the syntax.
    """
    if not _strip(line):
        return ()
    max_length = MAX_VALUE_LENGTH_PROGRAMMING if programming else MAX_VALUE_LENGTH
    unparsed = (DataSet("", None, (), line),)
    found: list[DataSet] = []
    address: str | None = None
    values: list[Value] = []
    start = 0
    position = 0
    end = 0
    while position < len(line):
        opening = line.find("(", position)
        if opening < 0:
            if _strip(line[position:]):
                return unparsed
            break
        between = line[position:opening]
        closing = line.find(")", opening + 1)
        if closing < 0 or ")" in between:
            return unparsed
        content = line[opening + 1 : closing]
        if "(" in content:
            return unparsed
        value = Value.parse(content, max_length=max_length)
        if value is None:
            return unparsed
        text = _strip(between)
        if address is None or text:
            if address is not None:
                found.append(DataSet(address, _obis(address), tuple(values), line[start:end]))
            if not _address_ok(text):
                return unparsed
            address, values = text, []
            start = position + (len(between) - len(between.lstrip(_PAD)))
        values.append(value)
        end = closing + 1
        position = closing + 1
    if address is None:
        return unparsed
    found.append(DataSet(address, _obis(address), tuple(values), line[start:end]))
    return tuple(found)


def parse_data_block(text: str, *, programming: bool = False) -> tuple[DataSet, ...]:
    """Parse a data block (lines separated by CR LF, end mark ``!`` already removed)."""
    result: list[DataSet] = []
    for line in _LINE_BREAK.split(text):
        result.extend(parse_data_line(line, programming=programming))
    return tuple(result)


# -- time stamps -------------------------------------------------------------------------------

_TIMESTAMP: Final = re.compile(
    r"(?P<y>\d{2}|\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[ T](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"|(?P<cy>\d{2})(?P<cmo>\d{2})(?P<cd>\d{2})(?P<ch>\d{2})(?P<cmi>\d{2})(?P<cs>\d{2})?[SW]?"
)
_DATE: Final = re.compile(
    r"(?P<y>\d{2}|\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})|(?P<cy>\d{2})(?P<cmo>\d{2})(?P<cd>\d{2})"
)
_TIME: Final = re.compile(r"(?P<h>\d{2}):?(?P<mi>\d{2})(?::?(?P<s>\d{2}))?")


def _year(text: str) -> int:
    """Two-digit years are 2000-2079, 80-99 mean 1980-1999 (meters keep YY only)."""
    value = int(text)
    if len(text) == 4:
        return value
    return value + (1900 if value >= 80 else 2000)


def parse_timestamp(text: str, tz: tzinfo) -> datetime | None:
    """A meter time stamp as a timezone-aware datetime in ``tz``; ``None`` if it is none.

    Accepts ``YY-MM-DD hh:mm[:ss]``, ``YYYY-MM-DD hh:mm[:ss]`` and the compact
    ``YYMMDDhhmm[ss]`` with an optional DST flag ``S``/``W`` (ignored: ``tz`` decides the
    offset). The meter's local zone is not in the data, so the caller passes it.
    """
    m = _TIMESTAMP.fullmatch(_strip(text))
    if m is None:
        return None
    parts = m.groupdict()
    if parts["y"] is not None:
        fields = (parts["y"], parts["mo"], parts["d"], parts["h"], parts["mi"], parts["s"])
    else:
        fields = (parts["cy"], parts["cmo"], parts["cd"], parts["ch"], parts["cmi"], parts["cs"])
    year, month, day, hour, minute, second = fields
    try:
        return datetime(
            _year(year or "0"),
            int(month or "0"),
            int(day or "0"),
            int(hour or "0"),
            int(minute or "0"),
            int(second or "0"),
            tzinfo=tz,
        )
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    """A date from ``YYMMDD``, ``YY-MM-DD`` or ``YYYY-MM-DD`` (OBIS 0.9.2); ``None`` if invalid."""
    m = _DATE.fullmatch(_strip(text))
    if m is None:
        return None
    year, month, day = (m["y"], m["mo"], m["d"]) if m["y"] is not None else (m["cy"], m["cmo"], m["cd"])
    try:
        return date(_year(year), int(month), int(day))
    except ValueError:
        return None


def parse_time(text: str) -> time | None:
    """A time of day from ``hhmmss``, ``hh:mm:ss`` or ``hh:mm`` (OBIS 0.9.1); ``None`` if invalid."""
    m = _TIME.fullmatch(_strip(text))
    if m is None:
        return None
    try:
        return time(int(m["h"]), int(m["mi"]), int(m["s"] or "0"))
    except ValueError:
        return None

"""Clock (class 8) attributes as Python values (Blue Book 4.5.1; IEC 62056-6-2 4.1.6.1).

Rule: :func:`decode_clock` checks every given attribute against the Clock table and turns it
into a typed field of :class:`ClockAttributes`; :meth:`ClockAttributes.to_data` is the exact
inverse the simulator uses to serve the same values. Nothing here reads a real clock.

Theory of operation:

* ``time`` (2), ``daylight_savings_begin`` (5) and ``daylight_savings_end`` (6) are
  ``octet-string(12)`` (or the ``date-time`` tag) and become :class:`CosemDateTime` with raw
  fields, wildcards included: DST begin/end are usually patterns such as "last Sunday of
  March, 02:00" (month 3, day 0xFE, day of week 7).
* ``time_zone`` (3) is kept as sent: minutes of deviation of local normal time from UTC with
  the Blue Book sign (UTC = local + deviation, so CET is -60). Some companion standards and
  many meters use the opposite sign; :meth:`ClockAttributes.utc_offset` takes
  ``invert_sign`` for them, as :meth:`CosemDateTime.to_datetime` takes ``invert_deviation``.
* ``status`` (4) is the clock status byte; 0xFF ("not specified") becomes ``None``.
* ``clock_base`` (9) becomes :class:`~.enums.ClockBase`, or stays an ``int`` outside it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields

from metercom.errors import InputError
from metercom.model.cosem.classes import CLOCK
from metercom.model.cosem.enums import ClockBase
from metercom.model.cosem.validate import AttributeValues, check_attributes
from metercom.model.dlms_data import NOT_SPECIFIED, ClockStatus, CosemDateTime, Data, DlmsValueError

__all__ = ["ClockAttributes", "decode_clock"]


@dataclass(frozen=True, slots=True)
class ClockAttributes:
    """The attributes of a Clock object that were read (``None`` = not read or not specified)."""

    time: CosemDateTime | None = None
    time_zone: int | None = None
    status: ClockStatus | None = None
    daylight_savings_begin: CosemDateTime | None = None
    daylight_savings_end: CosemDateTime | None = None
    daylight_savings_deviation: int | None = None
    daylight_savings_enabled: bool | None = None
    clock_base: ClockBase | int | None = None

    def utc_offset(self, *, invert_sign: bool = False) -> _dt.timedelta | None:
        """The UTC offset of local *normal* time from ``time_zone`` (CET -60 -> +01:00)."""
        if self.time_zone is None or self.time_zone == -0x8000:
            return None
        minutes = self.time_zone if invert_sign else -self.time_zone
        return _dt.timedelta(minutes=minutes)

    def to_datetime(
        self, *, default_tz: _dt.tzinfo | None = None, invert_deviation: bool = False
    ) -> _dt.datetime:
        """The ``time`` attribute as an aware datetime (see :meth:`CosemDateTime.to_datetime`)."""
        if self.time is None:
            raise InputError("the clock time (attribute 2) was not read")
        try:
            return self.time.to_datetime(default_tz=default_tz, invert_deviation=invert_deviation)
        except DlmsValueError as exc:
            raise InputError(str(exc), where="Clock attribute 2 time") from exc

    def to_data(self) -> dict[int, Data]:
        """The attribute values as ``Data`` by index (only the fields that are set)."""
        out: dict[int, Data] = {}
        for index, f in enumerate(fields(self), start=2):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, CosemDateTime):
                out[index] = Data.octet_string(value.to_bytes())
            elif f.name == "time_zone":
                out[index] = Data.long(value)
            elif f.name == "status":
                out[index] = Data.unsigned(int(value))
            elif f.name == "daylight_savings_deviation":
                out[index] = Data.integer(value)
            elif f.name == "daylight_savings_enabled":
                out[index] = Data.boolean(value)
            else:
                out[index] = Data.enum(int(value))
        return out


def decode_clock(values: AttributeValues) -> ClockAttributes:
    """Decode Clock attribute values, keyed by index or name (``{2: time_data, "time_zone": tz}``).

    Every value is checked against the Clock table first; raises :class:`InputError` naming the
    attribute at fault. Attribute 1 (logical_name) is accepted and ignored.
    """
    checked = check_attributes(CLOCK, values)

    def date_time(index: int) -> CosemDateTime | None:
        data = checked.get(index)
        return None if data is None else data.as_date_time()

    def integer(index: int) -> int | None:
        data = checked.get(index)
        return None if data is None else data.as_int()

    status = integer(4)
    base = integer(9)
    enabled = checked.get(8)
    try:
        return ClockAttributes(
            time=date_time(2),
            time_zone=integer(3),
            status=None if status is None or status == NOT_SPECIFIED else ClockStatus(status),
            daylight_savings_begin=date_time(5),
            daylight_savings_end=date_time(6),
            daylight_savings_deviation=integer(7),
            daylight_savings_enabled=None if enabled is None else bool(enabled.value),
            clock_base=None if base is None else _clock_base(base),
        )
    except DlmsValueError as exc:  # pragma: no cover - the table checks make this unreachable
        raise InputError(str(exc), where="Clock") from exc


def _clock_base(value: int) -> ClockBase | int:
    try:
        return ClockBase(value)
    except ValueError:
        return value

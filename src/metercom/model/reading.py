"""Readings: what any protocol session returns for one quantity of one meter.

A :class:`Reading` is protocol-neutral so the head-end stores IEC 62056-21, DLMS and Modbus
values the same way. Numbers are :class:`~decimal.Decimal` with scaling already applied (the
model applies scalers once; codecs never do). Timestamps are timezone-aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from metercom.model.obis import Obis

__all__ = ["Reading", "ReadingValue"]

#: A reading's value: a scaled number, text (IDs, firmware versions), raw bytes, a flag or a time.
ReadingValue = Decimal | str | bytes | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value read from a meter.

    ``obis`` names the quantity (``None`` where the meter used a code that is not OBIS, which
    then stands in ``address``). ``captured_at`` is the meter's own time stamp when the meter
    gave one (a maximum demand's time, a profile row's capture time). ``extra`` holds further
    values the meter sent with it, and ``raw`` the text or hex as received, so nothing the
    meter said is lost.
    """

    obis: Obis | None
    value: ReadingValue
    unit: str | None = None
    captured_at: datetime | None = None
    address: str = ""
    extra: tuple[ReadingValue, ...] = field(default=())
    raw: str = ""

    @property
    def label(self) -> str:
        """Short display code: the reduced OBIS form, else the meter's own address."""
        return self.obis.short if self.obis is not None else self.address

    @property
    def name(self) -> str | None:
        return self.obis.name if self.obis is not None else None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; Decimals as strings so no digit is lost."""

        def plain(value: ReadingValue) -> object:
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, bytes):
                return value.hex()
            return value

        return {
            "obis": str(self.obis) if self.obis is not None else None,
            "code": self.label,
            "name": self.name,
            "value": plain(self.value),
            "unit": self.unit,
            "captured_at": self.captured_at.isoformat() if self.captured_at else None,
            "extra": [plain(v) for v in self.extra],
            "raw": self.raw,
        }

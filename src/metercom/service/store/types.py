"""Column types and value encodings shared by the tables, the store and the migrations.

Rule: every time in the store is UTC. :class:`UtcDateTime` refuses naive datetimes, writes
UTC (a ``timestamptz`` on PostgreSQL; on SQLite, fixed-width ISO text without offset, so text
order is time order) and always reads back timezone-aware UTC datetimes.

A reading value is stored three ways: its kind (``decimal``, ``text``, ``bytes``, ``bool``,
``datetime``, ``none``), an exact text form (``Decimal`` digits as the meter gave them, hex for
bytes, ISO 8601 UTC for times) from which :func:`decode_value` rebuilds the value, and a
floating-point form for queries and aggregation (``NULL`` where the value is not a finite
number). Idempotency compares kind and exact text, never the float.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from metercom.errors import InputError
from metercom.model.reading import ReadingValue

__all__ = [
    "BigId",
    "UtcDateTime",
    "canonical_json",
    "decode_value",
    "encode_value",
    "utc",
]

#: An auto-incrementing 64-bit id (SQLite needs INTEGER PRIMARY KEY to alias the rowid).
BigId: Final = BigInteger().with_variant(Integer(), "sqlite")


def utc(value: datetime, what: str = "time") -> datetime:
    """``value`` in UTC; a naive datetime raises :class:`~metercom.errors.InputError`."""
    if not isinstance(value, datetime):
        raise InputError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} must be timezone-aware, got the naive {value.isoformat()}")
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC (see the module docstring)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def encode_value(value: object) -> tuple[str, str | None, float | None]:
    """``(kind, exact text, float)`` of a reading value; see the module docstring."""
    if type(value) is Decimal:  # what meters' values mostly are
        number = float(value) if value.is_finite() else math.nan
        return "decimal", str(value), number if math.isfinite(number) else None
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", "true" if value else "false", 1.0 if value else 0.0
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        number = float(value) if value.is_finite() else math.nan
        return "decimal", str(value), number if math.isfinite(number) else None
    if isinstance(value, str):
        return "text", value, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value).hex(), None
    if isinstance(value, datetime):
        return "datetime", utc(value, "a datetime value").isoformat(), None
    if isinstance(value, float):
        raise InputError(f"reading values are Decimal, not float ({value!r}); convert with Decimal(str(x))")
    raise InputError(f"cannot store a reading value of type {type(value).__name__}")


def decode_value(kind: str, text: str | None) -> ReadingValue:
    """The value :func:`encode_value` encoded as ``(kind, text)``."""
    if kind == "none" or text is None:
        return None
    if kind == "decimal":
        return Decimal(text)
    if kind == "bool":
        return text == "true"
    if kind == "bytes":
        return bytes.fromhex(text)
    if kind == "datetime":
        return datetime.fromisoformat(text)
    return text


#: One encoder for :func:`canonical_json` (``json.dumps`` with options builds one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Mapping[str, Any] | list[Any] | None) -> str | None:
    """Deterministic JSON (sorted keys, no spaces) so equal content compares equal as text."""
    if value is None:
        return None
    try:
        return _CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"value is not JSON-serialisable: {exc}") from None

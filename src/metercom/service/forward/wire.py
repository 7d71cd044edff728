"""The batch format every sink sends and the central receiver reads (``metercom-batch/1``).

Rule: values travel in the store's exact encoding (kind + text: ``Decimal`` digits as the meter
gave them, hex for bytes, ISO 8601 UTC for times), never as floats, so the receiver stores
exactly what the collector stored. A batch carries its stable id; the receiver's confirmation
echoes it::

    {"format": "metercom-batch/1", "batch_id": "5f0c...", "source": "substation-7",
     "readings": [{"meter": "m1", "obis": "1-0:1.8.0*255", "time": "2026-01-01T00:15:00+00:00",
                   "kind": "decimal", "value": "1234.5", "unit": "kWh", "status": "ok",
                   "revision": 0}]}

    confirmation: {"batch_id": "5f0c...", "duplicate": false, "readings": 1}

Profile rows and events (optional arrays, absent when empty) travel in the same batch::

    "profile_rows": [{"meter": "m1", "profile": "1-0:99.1.0*255", "time": "...",
                      "values": {"1-0:1.8.0*255": ["decimal", "12.5"]}, "units": {"1-0:1.8.0*255": "kWh"},
                      "status": "ok", "revision": 0}],
    "events": [{"meter": "m1", "log": "0-0:99.98.0*255", "time": "...", "code": 7,
                "description": "power down", "data": null, "revision": 0}]

"readings" in the confirmation counts every record of the batch.

Decoding is strict and bounded: anything malformed raises :class:`~metercom.errors.InputError`
with what was wrong, before anything is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from metercom.errors import InputError
from metercom.service.store import (
    MeterEvent,
    OutboxBatch,
    OutboxItem,
    ProfileRow,
    ReceivedReading,
    ReceiveResult,
)
from metercom.service.store.outbox import EVENT, PROFILE_ROW
from metercom.service.store.types import decode_value

__all__ = [
    "FORMAT",
    "DecodedBatch",
    "decode_batch",
    "decode_confirmation",
    "encode_batch",
    "encode_confirmation",
    "is_reading",
]

FORMAT: Final = "metercom-batch/1"
_KINDS: Final = frozenset({"decimal", "text", "bytes", "bool", "datetime", "none"})
#: Bound on readings per batch the receiver accepts (a sender's batch_size must stay below).
MAX_READINGS: Final = 100_000


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    batch_id: str
    source: str
    readings: tuple[ReceivedReading, ...]
    #: (meter, profile, row)
    profile_rows: tuple[tuple[str, str, ProfileRow], ...] = ()
    #: (meter, event)
    events: tuple[tuple[str, MeterEvent], ...] = ()

    def __len__(self) -> int:
        return len(self.readings) + len(self.profile_rows) + len(self.events)


def is_reading(item: OutboxItem) -> bool:
    """Whether an outbox item is a reading (not a profile row or an event)."""
    return item.value_kind not in (PROFILE_ROW, EVENT)


def _item(item: OutboxItem) -> dict[str, Any]:
    if item.value_kind == PROFILE_ROW:
        body = json.loads(item.value_text or "{}")
        return {
            "meter": item.meter_id,
            "profile": item.obis,
            "time": item.capture_time.isoformat(),
            "values": body.get("values", {}),
            "units": body.get("units", {}),
            "status": item.status,
            "revision": item.revision,
        }
    if item.value_kind == EVENT:
        body = json.loads(item.value_text or "{}")
        return {
            "meter": item.meter_id,
            "log": item.obis,
            "time": item.capture_time.isoformat(),
            "code": body.get("code"),
            "description": body.get("description", ""),
            "data": body.get("data"),
            "revision": item.revision,
        }
    return {
        "meter": item.meter_id,
        "obis": item.obis,
        "time": item.capture_time.isoformat(),
        "kind": item.value_kind,
        "value": item.value_text,
        "unit": item.unit,
        "status": item.status,
        "revision": item.revision,
    }


def encode_batch(batch: OutboxBatch, *, source: str, items: Iterable[OutboxItem] | None = None) -> bytes:
    """The JSON body of ``batch`` sent by ``source`` (the collector's node name)."""
    readings: list[dict[str, Any]] = []
    profile_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item in batch.items if items is None else items:
        into = (
            profile_rows
            if item.value_kind == PROFILE_ROW
            else events
            if item.value_kind == EVENT
            else readings
        )
        into.append(_item(item))
    body: dict[str, Any] = {
        "format": FORMAT,
        "batch_id": batch.batch_id,
        "source": source,
        "readings": readings,
    }
    if profile_rows:
        body["profile_rows"] = profile_rows
    if events:
        body["events"] = events
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _text(obj: dict[str, Any], key: str, where: str, *, limit: int = 64, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InputError(f"{where}: {key!r} must be text of 1..{limit} characters, got {value!r:.80}")
    return value


def _value(kind: str, text: object, where: str) -> Any:
    if kind not in _KINDS:
        raise InputError(f"{where}: unknown value kind {kind!r}")
    if kind == "none":
        return None
    if not isinstance(text, str):
        raise InputError(f"{where}: a {kind} value is sent as text, got {text!r:.80}")
    try:
        if kind == "decimal":
            Decimal(text)
        elif kind == "bytes":
            bytes.fromhex(text)
        elif kind == "datetime":
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                raise ValueError("naive time")
        elif kind == "bool" and text not in ("true", "false"):
            raise ValueError("not true/false")
    except (InvalidOperation, ValueError):
        raise InputError(f"{where}: {text!r:.80} is not a valid {kind} value") from None
    return decode_value(kind, text)


def decode_batch(body: bytes) -> DecodedBatch:
    """The batch in ``body``; raises :class:`InputError` when it is not a valid batch."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"batch is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("batch must be a JSON object")
    if data.get("format") != FORMAT:
        raise InputError(f"unknown batch format {data.get('format')!r:.40}; expected {FORMAT!r}")
    batch_id = _text(data, "batch_id", "batch")
    source = _text(data, "source", "batch", limit=128)
    raw: Any = data.get("readings")
    raw_rows = data.get("profile_rows", [])
    raw_events = data.get("events", [])
    for key, value in (("readings", raw), ("profile_rows", raw_rows), ("events", raw_events)):
        if not isinstance(value, list):
            raise InputError(f"batch {batch_id}: {key!r} must be a list")
    if len(raw) + len(raw_rows) + len(raw_events) > MAX_READINGS:
        raise InputError(f"batch {batch_id}: more than {MAX_READINGS} records")
    out: list[ReceivedReading] = []
    for n, r in enumerate(raw):
        where = f"batch {batch_id} reading {n}"
        when = _when(r, where)
        kind = r.get("kind")
        if not isinstance(kind, str):
            raise InputError(f"{where}: 'kind' is missing")
        out.append(
            ReceivedReading(
                meter_id=_text(r, "meter", where),
                obis=_text(r, "obis", where),
                capture_time=when,
                value=_value(kind, r.get("value"), where),
                unit=_text(r, "unit", where, limit=32, optional=True),
                status=_text(r, "status", where),
            )
        )
    rows = tuple(_profile_row(r, f"batch {batch_id} profile row {n}") for n, r in enumerate(raw_rows))
    events = tuple(_event(r, f"batch {batch_id} event {n}") for n, r in enumerate(raw_events))
    return DecodedBatch(batch_id, source, tuple(out), rows, events)


def _when(r: object, where: str) -> datetime:
    if not isinstance(r, dict):
        raise InputError(f"{where}: must be an object")
    try:
        when = datetime.fromisoformat(_text(r, "time", where))
    except ValueError:
        raise InputError(f"{where}: 'time' is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InputError(f"{where}: 'time' has no UTC offset")
    return when


def _profile_row(r: Any, where: str) -> tuple[str, str, ProfileRow]:
    when = _when(r, where)
    values, units = r.get("values"), r.get("units", {})
    if not isinstance(values, dict) or not isinstance(units, dict):
        raise InputError(f"{where}: 'values' and 'units' must be objects")
    decoded: dict[str, Any] = {}
    for column, pair in values.items():
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise InputError(f"{where}: column {column!r:.80} must be [kind, value]")
        decoded[column] = _value(pair[0], pair[1], f"{where} column {column!r:.80}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
        raise InputError(f"{where}: 'units' maps columns to unit text")
    row = ProfileRow(when, decoded, status=_text(r, "status", where), units=units)
    return _text(r, "meter", where), _text(r, "profile", where), row


def _event(r: Any, where: str) -> tuple[str, MeterEvent]:
    when = _when(r, where)
    code, description, extra = r.get("code"), r.get("description", ""), r.get("data")
    if not isinstance(code, int) or isinstance(code, bool):
        raise InputError(f"{where}: 'code' must be an integer, got {code!r:.40}")
    if not isinstance(description, str) or len(description) > 10_000:
        raise InputError(f"{where}: 'description' must be text")
    if extra is not None and not isinstance(extra, dict):
        raise InputError(f"{where}: 'data' must be an object or null")
    event = MeterEvent(when, code, _text(r, "log", where), description, extra or {})
    return _text(r, "meter", where), event


def encode_confirmation(result: ReceiveResult) -> bytes:
    """The receiver's answer: the stored batch id echoed back."""
    body = {"batch_id": result.batch_id, "duplicate": result.duplicate, "readings": result.result.total}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_confirmation(body: bytes) -> str:
    """The batch id a confirmation echoes; raises :class:`InputError` when there is none."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"confirmation is not JSON: {body[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("batch_id"), str):
        raise InputError(f"confirmation carries no batch id: {body[:80]!r}")
    batch_id: str = data["batch_id"]
    return batch_id

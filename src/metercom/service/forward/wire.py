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
from metercom.service.store import OutboxBatch, OutboxItem, ReceivedReading, ReceiveResult
from metercom.service.store.types import decode_value

__all__ = [
    "FORMAT",
    "DecodedBatch",
    "decode_batch",
    "decode_confirmation",
    "encode_batch",
    "encode_confirmation",
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


def _item(item: OutboxItem) -> dict[str, Any]:
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
    body = {
        "format": FORMAT,
        "batch_id": batch.batch_id,
        "source": source,
        "readings": [_item(i) for i in (batch.items if items is None else items)],
    }
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
    raw = data.get("readings")
    if not isinstance(raw, list) or len(raw) > MAX_READINGS:
        raise InputError(f"batch {batch_id}: 'readings' must be a list of at most {MAX_READINGS}")
    out: list[ReceivedReading] = []
    for n, r in enumerate(raw):
        where = f"batch {batch_id} reading {n}"
        if not isinstance(r, dict):
            raise InputError(f"{where}: must be an object")
        try:
            when = datetime.fromisoformat(_text(r, "time", where))
        except ValueError:
            raise InputError(f"{where}: 'time' is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise InputError(f"{where}: 'time' has no UTC offset")
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
    return DecodedBatch(batch_id, source, tuple(out))


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

"""The outbox: what the store still has to forward, per sink, in transactions of the store.

Rule: a reading leaves the outbox of a sink only when that sink confirmed the batch holding
it (:func:`confirm`); nothing here decides what a confirmation is (the sinks of
:mod:`metercom.service.forward` do). Every function runs inside a store job (one transaction).

Layout (chosen over a per-sink cursor on an append-only sequence, see below):

* ``outbox``: one row per inserted or revised reading, a snapshot of its value, appended by
  :func:`enqueue` in the transaction that stores the reading. ``seq`` gives the order (every new
  entry is above every stored one; SQLite may number from 1 again once the outbox was empty).
* ``outbox_pending``: one row per (sink, outbox entry) still to confirm. ``batch_id`` is NULL
  until :func:`claim` puts the entry into a batch; the batch id (random, 32 hex digits) is
  committed before anything is sent, so a resend after a lost confirmation or a restart carries
  the same id and the same items, and the receiver can drop the repeat.
* ``outbox_sinks``: registered sinks and their counters. Readings stored while no sink is
  registered are not enqueued.

Why pending rows and not a cursor per sink: on PostgreSQL two transactions may take sequence
numbers 5 and 6 and commit 6 first; a cursor that had moved past 6 would skip 5 forever. A set
of pending rows has no such gap: a late commit is simply picked up by the next claim.

Order and live data: :func:`claim` fills a batch from the oldest pending entries, except a
``live_share`` of it taken from the newest, so after an outage the backlog drains oldest first
while fresh readings still get through. Two values of one reading (a revision) can then not
overtake each other, because :func:`enqueue` drops the older value's pending entries that are
not yet in a batch (superseded), and an open batch is always resent before a new one is made.

An outbox row is deleted once no sink has it pending. Pending entries older than the retention
of unsent data (default 90 days) are dropped by :func:`expire` and counted per sink.

Profile rows and events travel through the same outbox (no table of their own, so one order
and one confirmation cover everything a meter gave): ``value_kind`` is :data:`PROFILE_ROW`
(``obis`` holds the profile, ``value_text`` canonical JSON ``{"values": {column: [kind,
text]}, "units": {...}}``) or :data:`EVENT` (``obis`` holds the log, ``capture_time`` the
event's time, ``value_text`` canonical JSON ``{"code", "description", "data"}``); any other
kind is a reading. A revised profile row or event supersedes its older pending value like a
reading (an event's key includes its code).

The central receiver's de-duplication table ``received_batches`` is trimmed by
:func:`expire_received` (its retention must exceed the senders' retention of unsent data).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from metercom.errors import InputError
from metercom.service.store.records import OutboxBacklog, OutboxBatch, OutboxItem
from metercom.service.store.tables import outbox, outbox_pending, outbox_sinks, received_batches
from metercom.service.store.types import canonical_json, decode_value

__all__ = [
    "EVENT",
    "PROFILE_ROW",
    "check_sink_name",
    "claim",
    "confirm",
    "enqueue",
    "expire",
    "expire_received",
    "register_sinks",
    "stats",
    "unregister_sink",
]

#: ``value_kind`` of an outbox entry holding a profile row / an event (see the module docstring).
PROFILE_ROW: Final = "profile_row"
EVENT: Final = "event"
#: Keys per ``IN (...)`` list, well under SQLite's and psycopg's parameter limits.
_CHUNK: Final = 5000
_MAX_NAME: Final = 64


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def check_sink_name(name: object) -> str:
    """``name`` if it is a usable sink name (1..64 characters of text)."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or name != name.strip():
        raise InputError(f"a sink name is 1..{_MAX_NAME} characters without edge spaces, got {name!r}")
    return name


def register_sinks(conn: Connection, names: Iterable[str], now: datetime) -> list[str]:
    """Register the sinks not yet known; returns those added (new sinks see new readings only)."""
    wanted = [check_sink_name(n) for n in names]
    known = set(conn.execute(select(outbox_sinks.c.name)).scalars())
    fresh = [n for n in dict.fromkeys(wanted) if n not in known]
    if fresh:
        conn.execute(
            insert(outbox_sinks),
            [{"name": n, "registered_at": now, "confirmed_total": 0, "expired_total": 0} for n in fresh],
        )
    return fresh


def unregister_sink(conn: Connection, name: str) -> int:
    """Forget a sink and everything it had pending; returns the pending entries dropped."""
    dropped = conn.execute(delete(outbox_pending).where(outbox_pending.c.sink == name)).rowcount
    conn.execute(delete(outbox_sinks).where(outbox_sinks.c.name == name))
    _delete_orphans(conn, None)
    return int(dropped)


def _snapshot(meter_id: str, row: dict[str, Any], record: str, now: datetime) -> dict[str, Any]:
    if record == "reading":
        obis, kind, text, unit, status = (
            row["obis"],
            row["value_kind"],
            row["value_text"],
            row["unit"],
            row["status"],
        )
    elif record == "profile row":
        obis, kind, unit, status = row["profile"], PROFILE_ROW, None, row["status"]
        # row_values and units are canonical JSON already: splice them, do not re-encode.
        text = f'{{"units":{row["units"]},"values":{row["row_values"]}}}'
    elif record == "event":
        obis, kind, unit, status = row["log"], EVENT, None, "ok"
        data = json.loads(row["data"]) if row["data"] else None
        text = canonical_json({"code": row["code"], "description": row["description"], "data": data})
    else:
        raise InputError(f"unknown outbox record {record!r}")
    return {
        "meter_id": meter_id,
        "obis": obis,
        "capture_time": row["event_time"] if record == "event" else row["capture_time"],
        "value_kind": kind,
        "value_text": text,
        "unit": unit,
        "status": status,
        "revision": row["revision"],
        "enqueued_at": now,
    }


def enqueue(
    conn: Connection, meter_id: str, rows: Sequence[dict[str, Any]], now: datetime, *, record: str = "reading"
) -> int:
    """Append snapshots of store rows with their ``revision`` (``record``: ``reading``,
    ``profile row`` or ``event``, the store's nouns) and make them pending for every registered
    sink; returns the entries appended (0 without sinks)."""
    if not rows:
        return 0
    sinks = list(conn.execute(select(outbox_sinks.c.name)).scalars())
    if not sinks:
        return 0
    values = [_snapshot(meter_id, row, record, now) for row in rows]
    # Only the new keys come back (no value is converted back); superseding takes what it needs
    # from ``values`` and skips the entries just made.
    seqs = list(conn.execute(insert(outbox).returning(outbox.c.seq), values).scalars())
    revised = [v for v in values if v["revision"] > 0]
    if revised:
        _supersede(conn, meter_id, revised, set(seqs))
    conn.execute(insert(outbox_pending), [{"sink": sink, "seq": seq} for sink in sinks for seq in seqs])
    return len(seqs)


def _event_code(text: str | None) -> object:
    try:
        return json.loads(text or "null").get("code")
    except (ValueError, AttributeError):
        return None


def _supersede(conn: Connection, meter_id: str, revised: Sequence[dict[str, Any]], new: set[int]) -> None:
    older: list[int] = []
    for row in revised:
        kind = row["value_kind"]
        query = select(outbox.c.seq, outbox.c.value_text).where(
            outbox.c.meter_id == meter_id,
            outbox.c.obis == row["obis"],
            outbox.c.capture_time == row["capture_time"],
        )
        if kind in (PROFILE_ROW, EVENT):
            query = query.where(outbox.c.value_kind == kind)
        else:
            query = query.where(outbox.c.value_kind.not_in((PROFILE_ROW, EVENT)))
        for seq, text in conn.execute(query):
            if seq in new:
                continue
            # Events share (log, time) across codes: only the same code is superseded.
            if kind == EVENT and _event_code(text) != _event_code(row["value_text"]):
                continue
            older.append(seq)
    if not older:
        return
    for part in _chunks(older):
        conn.execute(
            delete(outbox_pending).where(outbox_pending.c.seq.in_(part), outbox_pending.c.batch_id.is_(None))
        )
    _delete_orphans(conn, older)


def _delete_orphans(conn: Connection, seqs: Sequence[int] | None) -> None:
    unreferenced = ~exists().where(outbox_pending.c.seq == outbox.c.seq)
    if seqs is None:
        conn.execute(delete(outbox).where(unreferenced))
        return
    for part in _chunks(sorted(seqs)):
        conn.execute(delete(outbox).where(outbox.c.seq.in_(part), unreferenced))


def _items(conn: Connection, sink: str, batch_id: str) -> tuple[OutboxItem, ...]:
    query = (
        select(outbox)
        .join(outbox_pending, outbox_pending.c.seq == outbox.c.seq)
        .where(outbox_pending.c.sink == sink, outbox_pending.c.batch_id == batch_id)
        .order_by(outbox.c.seq)
    )
    return tuple(
        OutboxItem(
            seq=row.seq,
            meter_id=row.meter_id,
            obis=row.obis,
            capture_time=row.capture_time,
            value=None
            if row.value_kind in (PROFILE_ROW, EVENT)
            else decode_value(row.value_kind, row.value_text),
            value_kind=row.value_kind,
            value_text=row.value_text,
            unit=row.unit,
            status=row.status,
            revision=row.revision,
            enqueued_at=row.enqueued_at,
        )
        for row in conn.execute(query)
    )


def claim(conn: Connection, sink: str, *, limit: int, live_share: float) -> OutboxBatch | None:
    """The open batch of ``sink`` if there is one (a resend), else a new batch of at most
    ``limit`` pending entries (see the module docstring); ``None`` when nothing is pending."""
    if limit < 1:
        raise InputError("a batch holds at least one reading")
    if not 0.0 <= live_share < 1.0:
        raise InputError("live_share is a fraction in [0, 1)")
    p = outbox_pending.c
    # At most one batch per sink is open (a new one is made only when none is): no ORDER BY, so
    # the (sink, batch_id) index answers at once instead of a walk over the whole backlog.
    open_id = conn.execute(
        select(p.batch_id).where(p.sink == sink, p.batch_id.is_not(None)).limit(1)
    ).scalar()
    if open_id is not None:
        return OutboxBatch(sink, open_id, _items(conn, sink, open_id), resend=True)
    live = int(limit * live_share)
    unclaimed = (p.sink == sink, p.batch_id.is_(None))
    seqs = set(conn.execute(select(p.seq).where(*unclaimed).order_by(p.seq).limit(limit - live)).scalars())
    if live:
        seqs.update(
            conn.execute(select(p.seq).where(*unclaimed).order_by(p.seq.desc()).limit(live)).scalars()
        )
    if not seqs:
        return None
    batch_id = uuid.uuid4().hex
    for part in _chunks(sorted(seqs)):
        conn.execute(update(outbox_pending).where(p.sink == sink, p.seq.in_(part)).values(batch_id=batch_id))
    return OutboxBatch(sink, batch_id, _items(conn, sink, batch_id))


def confirm(conn: Connection, sink: str, batch_id: str, now: datetime) -> int:
    """Mark the batch confirmed by ``sink``: its entries leave that sink's outbox. Returns how
    many (0 when the batch is unknown or was confirmed before: confirming is idempotent)."""
    p = outbox_pending.c
    seqs = list(conn.execute(select(p.seq).where(p.sink == sink, p.batch_id == batch_id)).scalars())
    if not seqs:
        return 0
    conn.execute(delete(outbox_pending).where(p.sink == sink, p.batch_id == batch_id))
    _delete_orphans(conn, seqs)
    conn.execute(
        update(outbox_sinks)
        .where(outbox_sinks.c.name == sink)
        .values(confirmed_total=outbox_sinks.c.confirmed_total + len(seqs), last_confirmed_at=now)
    )
    return len(seqs)


def stats(conn: Connection, sink: str | None) -> list[OutboxBacklog]:
    """Backlog size and age per registered sink (one sink, or all by name)."""
    p = outbox_pending.c
    query = (
        select(
            p.sink,
            func.count(),
            func.count(p.batch_id),
            func.min(outbox.c.enqueued_at),
        )
        .join(outbox, outbox.c.seq == p.seq)
        .group_by(p.sink)
    )
    sinks = select(outbox_sinks).order_by(outbox_sinks.c.name)
    if sink is not None:
        query = query.where(p.sink == sink)
        sinks = sinks.where(outbox_sinks.c.name == sink)
    counts = {row[0]: row for row in conn.execute(query)}
    out: list[OutboxBacklog] = []
    for s in conn.execute(sinks):
        c = counts.get(s.name)
        oldest = c[3] if c is not None else None
        out.append(
            OutboxBacklog(
                sink=s.name,
                pending=int(c[1]) if c is not None else 0,
                in_flight=int(c[2]) if c is not None else 0,
                oldest_enqueued_at=_as_time(oldest),
                confirmed_total=int(s.confirmed_total),
                expired_total=int(s.expired_total),
                last_confirmed_at=s.last_confirmed_at,
            )
        )
    return out


def _as_time(value: datetime | str | None) -> datetime | None:
    # An aggregate of a UtcDateTime column may come back as SQLite's raw text or naive.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def expire(
    conn: Connection, cutoff: datetime, batch_size: int, sinks: Sequence[str] | None = None
) -> dict[str, int]:
    """Drop up to ``batch_size`` pending entries stored before ``cutoff`` that are not in an
    open batch (of ``sinks``, or of every sink); returns the number dropped per sink (and counts
    them on the sink)."""
    p = outbox_pending.c
    query = (
        select(p.sink, p.seq)
        .join(outbox, outbox.c.seq == p.seq)
        .where(outbox.c.enqueued_at < cutoff, p.batch_id.is_(None))
        .order_by(p.seq)
        .limit(batch_size)
    )
    if sinks is not None:
        query = query.where(p.sink.in_(list(sinks)))
    victims = list(conn.execute(query))
    counts: dict[str, int] = {}
    by_sink: dict[str, list[int]] = {}
    for sink, seq in victims:
        by_sink.setdefault(sink, []).append(seq)
    for sink, seqs in by_sink.items():
        for part in _chunks(seqs):
            conn.execute(delete(outbox_pending).where(p.sink == sink, p.seq.in_(part)))
        counts[sink] = len(seqs)
        conn.execute(
            update(outbox_sinks)
            .where(outbox_sinks.c.name == sink)
            .values(expired_total=outbox_sinks.c.expired_total + len(seqs))
        )
    _delete_orphans(conn, [seq for _, seq in victims])
    return counts


def expire_received(conn: Connection, cutoff: datetime, batch_size: int) -> int:
    """Forget up to ``batch_size`` received batch ids stored before ``cutoff``; returns how many.

    A batch resent after its id was forgotten is stored again: its readings are upserts of the
    same values (unchanged), so this bounds the table, not correctness of the readings; the
    retention must still exceed the senders' retention of unsent data so that counts stay exact.
    """
    ids = list(
        conn.execute(
            select(received_batches.c.batch_id)
            .where(received_batches.c.received_at < cutoff)
            .order_by(received_batches.c.received_at)
            .limit(batch_size)
        ).scalars()
    )
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            delete(received_batches).where(received_batches.c.batch_id.in_(ids[start : start + _CHUNK]))
        )
    return len(ids)

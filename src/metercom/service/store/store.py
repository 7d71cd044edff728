"""The head-end store: readings, profiles, events, markers, commands, audit, config versions.

Rule: every method is one transaction, so what it writes lands entirely or not at all. Writes
are idempotent upserts on natural keys: writing the same row again changes nothing, a
different value under the same key is an update that is audited (old and new value) and counts
a ``revision``. A collection marker is written in the same transaction as the rows it covers,
and may never point past the newest stored row of its object.

Concurrency: on SQLite a write transaction holds the file's write lock from its first
statement (``BEGIN IMMEDIATE``), so read-compare-write upserts cannot race. On PostgreSQL (read
committed, several store threads) two writers inserting the same *new* key at the same moment
both find it missing, and the second insert fails with a unique violation once the first
commits. That happens within one head-end too: the collector lets the next read of a meter
start while the previous one is still being saved, and both carry the rows and marker past the
old marker. The store runs such a losing transaction again (a few times, see
:func:`~metercom.service.store.engine.is_write_conflict`); the second run sees the winner's rows,
so the write is a no-op or an audited update, exactly as on SQLite.

Forwarding: every reading inserted or revised by :meth:`Store.save_readings` is appended to the
outbox for each registered sink in the same transaction (:mod:`.outbox` explains the layout);
:meth:`Store.save_received_batch` is the central receiver's side (batch id and readings in one
transaction).

Why a worker thread and not SQLAlchemy's asyncio extension. The store runs plain synchronous
SQLAlchemy Core on a dedicated :class:`~concurrent.futures.ThreadPoolExecutor` owned by the
store (one thread for SQLite, so its writes are serialised in-process exactly as the file
lock serialises them across processes; a few threads for PostgreSQL). Each public method
awaits one job that runs a whole transaction in that thread:

* a transaction never spans an ``await``, so a cancelled task can never leave a transaction
  open or half-applied (the job finishes or rolls back on its own; a caller that was cancelled
  while waiting must assume the write may have committed, which is harmless because writes
  are idempotent);
* the mature synchronous drivers (``sqlite3``, psycopg 3) and Alembic (synchronous) are used
  directly, with no extra async drivers (aiosqlite would itself use a thread per connection,
  asyncpg another type system);
* the event loop is woken by the executor's completion callback through the loop's self-pipe,
  which also works on the :class:`~metercom.clock.VirtualClock`.

Group commit: the collector's saves (readings, profile rows, events, each with its marker) and
marker reads queue for the writer; the jobs queued while it worked run together in one
transaction (at most ``_GROUP_MAX``), and each caller hears of its own result after that commit.
Each save still lands entirely or not at all and its marker with its rows; one job's error rolls
the shared transaction back and each job is run again alone. Under load this saves a BEGIN,
a COMMIT and a thread hand-over per job; alone, a job runs exactly as before.

No store call uses an asyncio timeout. SQLite waits for a busy lock in the worker thread (busy
timeout), never in the event loop. Under a :class:`~metercom.clock.VirtualClock` every call
holds the clock (:meth:`~metercom.clock.VirtualClock.hold`) until its job is done, so virtual
time stands still while the thread works in real time: a store call takes no virtual time, on
SQLite as on PostgreSQL, and the loop never jumps past its timers meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar

from sqlalchemy import (
    Engine,
    Row,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from metercom.clock import Clock, VirtualClock, current_clock
from metercom.errors import InputError, MetercomError, StoreError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.config_model import RetentionPolicy
from metercom.service.store import migrate, outbox
from metercom.service.store.engine import (
    WRITE,
    create_store_engine,
    display_url,
    is_write_conflict,
    resolve_url,
    translate_error,
)
from metercom.service.store.records import (
    AuditEntry,
    CommandNotFoundError,
    CommandRecord,
    CommandState,
    CommandStateError,
    ConfigVersion,
    ConfigVersionConflict,
    IntegrityReport,
    Marker,
    MeterEvent,
    MeterRecord,
    OutboxBacklog,
    OutboxBatch,
    ProfileRow,
    ReceivedReading,
    ReceiveResult,
    RetentionResult,
    StoredEvent,
    StoredMeter,
    StoredProfileRow,
    StoredReading,
    WriteResult,
    obis_key,
    object_key,
)
from metercom.service.store.tables import (
    audit_log,
    collection_markers,
    commands,
    config_versions,
    events,
    meters,
    profile_rows,
    readings,
    received_batches,
)
from metercom.service.store.types import canonical_json, decode_value, encode_value, utc

__all__ = ["Store"]


T = TypeVar("T")

_DEFAULT_BUSY_TIMEOUT_S: Final = 30.0
_MAX_TEXT_KEY: Final = 64
#: How often a PostgreSQL transaction that lost a write race is run (see ``is_write_conflict``).
_CONFLICT_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class _Keyed:
    """How one table's natural key and compared columns are laid out, for the shared upsert."""

    table: Table
    #: The key columns after ``meter_id``; the last is the time column.
    key: tuple[str, ...]
    #: Columns whose difference makes an update.
    compare: tuple[str, ...]
    noun: str
    has_revision: bool = True

    @property
    def time_column(self) -> str:
        return self.key[-1]


_READINGS = _Keyed(
    readings, ("obis", "capture_time"), ("value_kind", "value_text", "unit", "status"), "reading"
)
_PROFILE_ROWS = _Keyed(
    profile_rows, ("profile", "capture_time"), ("row_values", "units", "status"), "profile row"
)
_EVENTS = _Keyed(events, ("log", "code", "event_time"), ("description", "data"), "event", has_revision=False)


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, (SQLAlchemyError, sqlite3.Error, OSError)):
        return True
    module = type(exc).__module__
    return module.startswith(("psycopg", "alembic"))


def _text_key(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT_KEY:
        raise InputError(f"{what} must be text of 1..{_MAX_TEXT_KEY} characters, got {value!r}")
    return value


class Store:
    """The head-end store. Open with ``await Store.open(location)``; close with :meth:`close`
    (or use ``async with``). See the module docstring for the threading model."""

    def __init__(self, engine: Engine, url: URL, *, clock: Clock | None, workers: int) -> None:
        self._engine = engine
        self._url = url
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metercom-store")
        self._closed = False
        # Group commit (see _run): jobs waiting for the next shared transaction.
        self._queued: list[_Queued] = []
        self._queued_lock = threading.Lock()
        self._drain_scheduled = False
        self._drain_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        #: Meters a save found in the store (they are never deleted, so once is enough).
        self._known_meters: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        location: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        migrate_schema: bool = True,
        busy_timeout_s: float = _DEFAULT_BUSY_TIMEOUT_S,
        workers: int | None = None,
    ) -> Store:
        """Open the store at ``location`` (a SQLite path or URL, or a PostgreSQL URL) and bring
        its schema to the newest revision. ``clock`` stamps ``received_at``/``applied_at``
        (default: the running loop's clock)."""
        url = resolve_url(location)
        sqlite = url.get_backend_name() == "sqlite"
        count = 1 if sqlite else (workers or 4)
        engine = create_store_engine(url, busy_timeout_s=busy_timeout_s, pool_size=count)
        store = cls(engine, url, clock=clock, workers=count)
        try:
            if migrate_schema:
                await store._run("migrate the schema", migrate.upgrade)
            else:
                await store._run("connect", lambda conn: conn.execute(text("SELECT 1")), write=False)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Finish queued work, then release connections and the worker thread(s)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        drained: asyncio.Future[None] = loop.create_future()
        with self._queued_lock:
            draining = self._drain_scheduled
            if draining:
                self._drain_waiters.append((loop, drained))
        if draining:  # no connection may be out when the pool is disposed
            await drained

        def finish() -> None:
            # Jobs still running in the workers (PostgreSQL runs several at once, some for
            # callers that were cancelled) end first: a connection checked out while the pool is
            # disposed would never be closed.
            self._executor.shutdown(wait=True)
            self._engine.dispose()

        with _virtual_time_held(loop):
            await loop.run_in_executor(None, finish)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Where the store is (password hidden)."""
        return display_url(self._url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for diagnostics and tests; use it only from store jobs."""
        return self._engine

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _now(self) -> datetime:
        return utc((self._clock or current_clock()).now())

    async def _run(
        self, op: str, fn: Callable[[Connection], T], *, write: bool = True, group: bool = False
    ) -> T:
        """Run ``fn`` in a transaction of its own, or with ``group`` in a write transaction it
        may share with other grouped jobs queued meanwhile (group commit, see :meth:`_drain`)."""
        if self._closed:
            raise StoreError(f"cannot {op}: the store is closed")
        loop = asyncio.get_running_loop()
        with _virtual_time_held(loop):
            if not group:
                return await loop.run_in_executor(self._executor, self._call, op, fn, write)
            future: asyncio.Future[T] = loop.create_future()
            with self._queued_lock:
                self._queued.append(_Queued(op, fn, future, loop))
                schedule, self._drain_scheduled = not self._drain_scheduled, True
            if schedule:
                self._executor.submit(self._drain)
            return await future

    def _drain(self) -> None:
        """Worker thread: run the queued grouped jobs (at most :data:`_GROUP_MAX`) in one
        transaction and hand each caller its own result.

        Every job keeps its guarantees: it commits entirely or not at all (with the others), and
        its caller hears of it only after the commit. If the shared transaction fails, it was
        rolled back whole and each job is run again alone, so one job's error (a marker ahead of
        its data, a constraint) reaches only its caller. A busy database fails them all at once
        (running them one by one would wait out the busy timeout once per job). Jobs queued
        meanwhile get a new drain behind the other work of the executor; once the store is
        closing, they are run here and :meth:`close` is told when none is left.
        """
        while True:
            with self._queued_lock:
                jobs = self._queued[:_GROUP_MAX]
                del self._queued[:_GROUP_MAX]
                if not jobs:
                    self._drain_scheduled = False
                    waiters, self._drain_waiters = self._drain_waiters, []
                    break
            self._run_group(jobs)
            if self._closed:
                continue
            with self._queued_lock:
                if not self._queued:
                    self._drain_scheduled = False
                    waiters, self._drain_waiters = self._drain_waiters, []
                    break
            try:
                self._executor.submit(self._drain)  # behind the jobs queued meanwhile
                return
            except RuntimeError:  # shut down meanwhile: finish here
                continue
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, None, None)

    def _run_group(self, jobs: list[_Queued]) -> None:
        outcomes: list[tuple[object, BaseException | None]]
        try:
            if len(jobs) == 1:
                raise _RunAlone
            label = f"{jobs[0].op} (with {len(jobs) - 1} more)"
            results = self._call(label, lambda conn: [job.fn(conn) for job in jobs], True)
            outcomes = [(result, None) for result in results]
        except StoreError as exc:
            if not str(exc).startswith("store busy"):
                outcomes = [self._alone(job) for job in jobs]
            else:
                outcomes = [(None, exc)] * len(jobs)
        except Exception:  # noqa: BLE001 - _RunAlone, or a job's own error: each runs alone
            outcomes = [self._alone(job) for job in jobs]
        # One wake-up per event loop for the whole group, not one per job.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for job, (result, error) in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, result, error))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_all, settled)

    def _alone(self, job: _Queued) -> tuple[object, BaseException | None]:
        try:
            return self._call(job.op, job.fn, True), None
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller
            return None, exc

    def _call(self, op: str, fn: Callable[[Connection], T], write: bool) -> T:
        attempt = 1
        while True:
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(**{WRITE: True})
                    with conn.begin():
                        return fn(conn)
            except MetercomError:
                raise
            except Exception as exc:
                # A PostgreSQL transaction that lost an insert race was rolled back whole: run it
                # again, it then sees the winner's rows (see the module docstring).
                if attempt < _CONFLICT_ATTEMPTS and is_write_conflict(exc, self._engine.dialect.name):
                    attempt += 1
                    continue
                if _is_driver_error(exc):
                    raise translate_error(op, exc, self._url) from exc
                raise

    async def schema_revision(self) -> str | None:
        """The schema revision the database is at."""
        return await self._run("read the schema revision", migrate.current_revision, write=False)

    # -- configuration versions and meters ------------------------------------------------------

    async def apply_config_version(
        self,
        *,
        text: str,
        sha256: str,
        source: str,
        actor: str,
        summary: str,
        meters: Sequence[MeterRecord],
        expect_version: int | None = None,
    ) -> ConfigVersion:
        """Store a new configuration version and sync the meters table to it, in one transaction.

        ``expect_version`` (the version the caller based its change on) raises
        :class:`ConfigVersionConflict` if another version was applied meanwhile. Meters missing
        from ``meters`` are marked inactive, never deleted.
        """
        now = self._now()
        ids = [m.id for m in meters]
        if len(set(ids)) != len(ids):
            raise InputError("apply_config_version: duplicate meter ids")
        job = partial(
            self._apply_config_tx,
            text_=text,
            sha256=sha256,
            source=source,
            actor=actor,
            summary=summary,
            records=tuple(meters),
            expect_version=expect_version,
            now=now,
        )
        return await self._run("apply a configuration version", job)

    def _apply_config_tx(
        self,
        conn: Connection,
        *,
        text_: str,
        sha256: str,
        source: str,
        actor: str,
        summary: str,
        records: tuple[MeterRecord, ...],
        expect_version: int | None,
        now: datetime,
    ) -> ConfigVersion:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE config_versions IN EXCLUSIVE MODE"))
        latest = conn.execute(select(func.max(config_versions.c.version))).scalar() or 0
        if expect_version is not None and latest != expect_version:
            raise ConfigVersionConflict(
                f"configuration version {latest} was applied meanwhile (expected {expect_version}); "
                "review the change against it and apply again"
            )
        version = latest + 1
        conn.execute(
            insert(config_versions).values(
                version=version,
                applied_at=now,
                actor=actor,
                source=source,
                sha256=sha256,
                summary=summary,
                text=text_,
            )
        )
        existing = {row.id: row for row in conn.execute(select(meters))}
        fresh: list[dict[str, Any]] = []
        for rec in records:
            values = {
                "protocol": rec.protocol,
                "line_id": rec.line_id,
                "address": rec.address,
                "device_profile": rec.device_profile,
                "tariff": rec.tariff,
            }
            old = existing.get(rec.id)
            if old is None:
                fresh.append(
                    {
                        "id": rec.id,
                        **values,
                        "active": True,
                        "first_version": version,
                        "changed_version": version,
                        "updated_at": now,
                    }
                )
            elif not old.active or any(getattr(old, k) != v for k, v in values.items()):
                conn.execute(
                    update(meters)
                    .where(meters.c.id == rec.id)
                    .values(**values, active=True, changed_version=version, updated_at=now)
                )
        if fresh:
            conn.execute(insert(meters), fresh)
        wanted = {rec.id for rec in records}
        for meter_id, old in existing.items():
            if meter_id not in wanted and old.active:
                conn.execute(
                    update(meters)
                    .where(meters.c.id == meter_id)
                    .values(active=False, changed_version=version, updated_at=now)
                )
        detail = {"sha256": sha256, "source": source, "summary": summary}
        _Audit(actor, "config.apply", f"config version {version}", "ok", detail).write(conn, now)
        return ConfigVersion(version, now, actor, source, sha256, summary, text_)

    async def config_version(self, version: int | None = None) -> ConfigVersion | None:
        """A stored version with its text (``None``: the newest); ``None`` if there is none."""

        def job(conn: Connection) -> ConfigVersion | None:
            query = select(config_versions)
            if version is None:
                query = query.order_by(config_versions.c.version.desc()).limit(1)
            else:
                query = query.where(config_versions.c.version == version)
            row = conn.execute(query).first()
            return _config_version(row, with_text=True) if row is not None else None

        return await self._run("read a configuration version", job, write=False)

    async def config_versions(self, *, limit: int = 50) -> list[ConfigVersion]:
        """The newest ``limit`` versions, newest first, without their text."""

        def job(conn: Connection) -> list[ConfigVersion]:
            cols = [c for c in config_versions.c if c.name != "text"]
            query = select(*cols).order_by(config_versions.c.version.desc()).limit(limit)
            return [_config_version(row, with_text=False) for row in conn.execute(query)]

        return await self._run("list configuration versions", job, write=False)

    async def meters(self, *, active: bool | None = None) -> list[StoredMeter]:
        """The meters the store knows, by id; ``active`` filters on being in the current config."""

        def job(conn: Connection) -> list[StoredMeter]:
            query = select(meters).order_by(meters.c.id)
            if active is not None:
                query = query.where(meters.c.active == active)
            return [StoredMeter(**row._asdict()) for row in conn.execute(query)]

        return await self._run("list meters", job, write=False)

    # -- readings, profile rows, events, markers ------------------------------------------------

    async def save_readings(
        self,
        meter_id: str,
        readings_: Iterable[Reading],
        *,
        marker: Marker | None = None,
        capture_time: datetime | None = None,
        status: str = "ok",
        actor: str = "collector",
    ) -> WriteResult:
        """Upsert readings of one meter and, in the same transaction, advance ``marker``.

        Each reading's key is (meter, OBIS code or, without one, its address, capture time); the
        capture time is the reading's own ``captured_at`` or else ``capture_time``. A reading
        given twice in one call keeps the last. Raises :class:`InputError` for unusable input
        (before anything is written) and when ``marker`` would be ahead of the stored data (then
        nothing is written).
        """
        now = self._now()
        when = utc(capture_time, "capture_time") if capture_time is not None else None
        rows: dict[tuple[object, ...], dict[str, Any]] = {}
        for reading in readings_:
            if not isinstance(reading, Reading):
                raise InputError(f"save_readings takes Reading objects, got {type(reading).__name__}")
            code = str(reading.obis) if reading.obis is not None else reading.address
            code = _text_key(code, "a reading's OBIS code or address")
            captured = utc(reading.captured_at, "captured_at") if reading.captured_at is not None else when
            if captured is None:
                raise InputError(f"reading {reading.label} has no capture time; pass capture_time=")
            kind, exact, number = encode_value(reading.value)
            rows[(code, captured)] = {
                "obis": code,
                "capture_time": captured,
                "value_kind": kind,
                "value_text": exact,
                "value_num": number,
                "unit": reading.unit,
                "status": _text_key(status, "status"),
            }
        job = partial(
            self._save_tx,
            spec=_READINGS,
            meter_id=meter_id,
            rows=list(rows.values()),
            marker=marker,
            now=now,
            actor=actor,
        )
        return await self._run("save readings", job, group=True)

    async def save_profile_rows(
        self,
        meter_id: str,
        profile: Obis | str,
        rows: Iterable[ProfileRow],
        *,
        marker: Marker | None = None,
        actor: str = "collector",
    ) -> WriteResult:
        """Upsert rows of one profile of one meter (key: meter, profile, capture time) and
        advance ``marker`` in the same transaction."""
        now = self._now()
        name = _text_key(object_key(profile), "profile")
        prepared: dict[datetime, dict[str, Any]] = {}
        for row in rows:
            values = _profile_row(name, row)
            prepared[values["capture_time"]] = values
        job = partial(
            self._save_tx,
            spec=_PROFILE_ROWS,
            meter_id=meter_id,
            rows=list(prepared.values()),
            marker=marker,
            now=now,
            actor=actor,
        )
        return await self._run("save profile rows", job, group=True)

    async def save_events(
        self,
        meter_id: str,
        events_: Iterable[MeterEvent],
        *,
        marker: Marker | None = None,
        actor: str = "collector",
    ) -> WriteResult:
        """Upsert events (key: meter, log, time, code) and advance ``marker`` with them."""
        now = self._now()
        prepared: dict[tuple[object, ...], dict[str, Any]] = {}
        for ev in events_:
            values = _event(ev)
            prepared[(values["log"], values["code"], values["event_time"])] = values
        job = partial(
            self._save_tx,
            spec=_EVENTS,
            meter_id=meter_id,
            rows=list(prepared.values()),
            marker=marker,
            now=now,
            actor=actor,
        )
        return await self._run("save events", job, group=True)

    def _save_tx(
        self,
        conn: Connection,
        *,
        spec: _Keyed,
        meter_id: str,
        rows: list[dict[str, Any]],
        marker: Marker | None,
        now: datetime,
        actor: str,
    ) -> WriteResult:
        if meter_id not in self._known_meters:  # meters are never deleted: checked once
            _require_meter(conn, meter_id)
            self._known_meters.add(meter_id)
        changed: list[dict[str, Any]] = []
        result = self._upsert(conn, spec, meter_id, rows, now=now, actor=actor, changed=changed)
        if changed:
            outbox.enqueue(conn, meter_id, changed, now, record=spec.noun)
        if marker is not None:
            group, time_col = spec.key[0], spec.time_column
            key = object_key(marker.key)
            written = [row[time_col] for row in rows if row[group] == key]
            self._write_marker(conn, meter_id, marker, now, spec, covered=max(written, default=None))
        return result

    def _upsert(
        self,
        conn: Connection,
        spec: _Keyed,
        meter_id: str,
        rows: list[dict[str, Any]],
        *,
        now: datetime,
        actor: str,
        changed: list[dict[str, Any]] | None = None,
    ) -> WriteResult:
        """Upsert ``rows``; inserted and updated rows (with their new ``revision``) are appended to
        ``changed`` when given (the outbox takes them)."""
        if not rows:
            return WriteResult()
        table, group, time_col = spec.table, spec.key[0], spec.time_column
        times = [row[time_col] for row in rows]
        params = {
            "meter": meter_id,
            "groups": sorted({row[group] for row in rows}),
            "low": min(times),
            "high": max(times),
        }
        existing = {
            tuple(getattr(old, k) for k in spec.key): old for old in conn.execute(_existing(spec), params)
        }
        inserts: list[dict[str, Any]] = []
        audits: list[dict[str, Any]] = []
        updated = unchanged = 0
        for row in rows:
            old = existing.get(tuple(row[k] for k in spec.key))
            if old is None:
                extra = {"revision": 0} if spec.has_revision else {}
                inserts.append({"meter_id": meter_id, **row, "received_at": now, **extra})
                if changed is not None:
                    changed.append({**row, "revision": 0})
                continue
            if all(getattr(old, c) == row[c] for c in spec.compare):
                unchanged += 1
                continue
            changes = {c: row[c] for c in table.c.keys() if c in row and c not in spec.key}  # noqa: SIM118
            if spec.has_revision:
                changes["revision"] = old.revision + 1
            if changed is not None:  # an event has no revision: 1 marks "supersedes an older value"
                changed.append({**row, "revision": old.revision + 1 if spec.has_revision else 1})
            conn.execute(
                update(table)
                .where(table.c.meter_id == meter_id, *(table.c[k] == row[k] for k in spec.key))
                .values(**changes, received_at=now)
            )
            updated += 1
            subject = f"{meter_id} {row[group]} {row[time_col].isoformat()}"
            detail = {
                "old": {c: _jsonable(getattr(old, c)) for c in spec.compare},
                "new": {c: _jsonable(row[c]) for c in spec.compare},
            }
            action = f"{spec.noun.replace(' ', '_')}.revised"
            audits.append(_Audit(actor, action, subject, "updated", detail).values(now))
        if inserts:
            conn.execute(insert(table), inserts)
        if audits:
            conn.execute(insert(audit_log), audits)
        return WriteResult(len(inserts), updated, unchanged)

    def _write_marker(
        self,
        conn: Connection,
        meter_id: str,
        marker: Marker,
        now: datetime,
        spec: _Keyed,
        *,
        covered: datetime | None = None,
    ) -> None:
        """Advance ``marker`` (never backwards). ``covered``: the newest capture time of the
        marker's object written in this transaction; a marker at or before it is known to cover
        stored data without asking the database."""
        key = _text_key(marker.key, "a marker's object")
        table, group, time_col = spec.table, spec.key[0], spec.time_column
        if covered is None or marker.last_collected > covered:
            newest = conn.execute(
                select(func.max(table.c[time_col])).where(table.c.meter_id == meter_id, table.c[group] == key)
            ).scalar()
            if newest is None or marker.last_collected > newest:
                have = newest.isoformat() if newest is not None else "none stored"
                raise InputError(
                    f"marker {meter_id} {key} at {marker.last_collected.isoformat()} is ahead of the newest "
                    f"stored {spec.noun} ({have}); a marker may only cover stored data"
                )
        upsert = _marker_upsert(conn.dialect.name)
        if upsert is not None:  # one statement: insert, or move forward only
            conn.execute(upsert, {"m": meter_id, "o": key, "t": marker.last_collected, "u": now})
            return
        where = (collection_markers.c.meter_id == meter_id, collection_markers.c.object == key)
        current = conn.execute(select(collection_markers.c.last_collected).where(*where)).scalar()
        if current is None:
            conn.execute(
                insert(collection_markers).values(
                    meter_id=meter_id, object=key, last_collected=marker.last_collected, updated_at=now
                )
            )
        elif marker.last_collected > current:
            conn.execute(
                update(collection_markers)
                .where(*where)
                .values(last_collected=marker.last_collected, updated_at=now)
            )

    async def readings(
        self,
        meter_id: str,
        *,
        obis: Obis | str | None = None,
        address: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredReading]:
        """Stored readings of a meter, oldest first; ``since`` inclusive, ``until`` exclusive.

        ``obis`` (any form :meth:`Obis.parse` reads; other text raises :class:`InputError`)
        selects one quantity; ``address`` instead selects the readings a meter gave under a code
        that is not OBIS (stored as given)."""
        conds = _time_range(readings.c.capture_time, since, until)
        if obis is not None and address is not None:
            raise InputError("give readings() an OBIS code or an address, not both")
        if obis is not None:
            conds.append(readings.c.obis == obis_key(obis, "readings(obis=...)"))
        if address is not None:
            conds.append(readings.c.obis == address)
        query = select(readings).where(readings.c.meter_id == meter_id, *conds)
        query = query.order_by(readings.c.capture_time, readings.c.obis).limit(limit)

        def job(conn: Connection) -> list[StoredReading]:
            return [
                StoredReading(
                    row.meter_id,
                    row.obis,
                    row.capture_time,
                    decode_value(row.value_kind, row.value_text),
                    row.unit,
                    row.status,
                    row.received_at,
                    row.revision,
                )
                for row in conn.execute(query)
            ]

        return await self._run("read readings", job, write=False)

    async def profile_rows(
        self,
        meter_id: str,
        profile: Obis | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredProfileRow]:
        """Stored rows of one profile (its OBIS code in any form), oldest first; ``since``
        inclusive, ``until`` exclusive."""
        conds = _time_range(profile_rows.c.capture_time, since, until)
        name = obis_key(profile, "profile_rows(profile)")
        query = (
            select(profile_rows)
            .where(profile_rows.c.meter_id == meter_id, profile_rows.c.profile == name, *conds)
            .order_by(profile_rows.c.capture_time)
            .limit(limit)
        )

        def job(conn: Connection) -> list[StoredProfileRow]:
            out: list[StoredProfileRow] = []
            for row in conn.execute(query):
                raw = json.loads(row.row_values)
                values = {col: decode_value(kind, exact) for col, (kind, exact) in raw.items()}
                out.append(
                    StoredProfileRow(
                        row.meter_id,
                        row.profile,
                        row.capture_time,
                        MappingProxyType(values),
                        MappingProxyType(json.loads(row.units)),
                        row.status,
                        row.received_at,
                        row.revision,
                    )
                )
            return out

        return await self._run("read profile rows", job, write=False)

    async def profile_times(
        self,
        meter_id: str,
        profile: Obis | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[datetime]:
        """Capture times of the stored rows of one profile, oldest first (``since`` inclusive,
        ``until`` exclusive): what gap detection needs, without decoding the rows."""
        name = obis_key(profile, "profile_times(profile)")
        params = {"meter": meter_id, "profile": name, "since": since, "until": until}
        query = _PROFILE_TIMES[(since is not None, until is not None)]
        return await self._run(
            "read profile times", lambda conn: list(conn.execute(query, params).scalars()), group=True
        )

    async def events(
        self,
        meter_id: str | None = None,
        *,
        log: Obis | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """Stored events (of one meter, one log), oldest first."""
        conds = _time_range(events.c.event_time, since, until)
        if meter_id is not None:
            conds.append(events.c.meter_id == meter_id)
        if log is not None:
            conds.append(events.c.log == obis_key(log, "events(log=...)"))
        query = select(events).where(*conds).order_by(events.c.event_time, events.c.id).limit(limit)

        def job(conn: Connection) -> list[StoredEvent]:
            return [
                StoredEvent(
                    row.id,
                    row.meter_id,
                    row.log,
                    row.event_time,
                    row.code,
                    row.description,
                    MappingProxyType(json.loads(row.data) if row.data else {}),
                    row.received_at,
                )
                for row in conn.execute(query)
            ]

        return await self._run("read events", job, write=False)

    async def marker(self, meter_id: str, obj: Obis | str) -> datetime | None:
        """How far ``obj`` (an OBIS code in any form) of the meter has been collected (``None``:
        never)."""
        params = {"meter": meter_id, "object": obis_key(obj, "marker(obj)")}
        return await self._run(
            "read a marker", lambda conn: conn.execute(_MARKER, params).scalar(), group=True
        )

    async def markers(self, meter_id: str) -> dict[str, datetime]:
        """Every marker of a meter: object -> last collected capture time."""
        query = select(collection_markers.c.object, collection_markers.c.last_collected).where(
            collection_markers.c.meter_id == meter_id
        )
        return await self._run(
            "read markers",
            lambda conn: {row.object: row.last_collected for row in conn.execute(query)},
            write=False,
        )

    async def reset_marker(
        self, meter_id: str, obj: Obis | str, *, actor: str, to: datetime | None = None
    ) -> None:
        """Move the marker of ``obj`` (an OBIS code in any form) back to ``to`` (or remove it), so
        the next collection re-reads; audited."""
        key = obis_key(obj, "reset_marker(obj)")
        target = utc(to, "to") if to is not None else None
        now = self._now()

        def job(conn: Connection) -> None:
            where = (collection_markers.c.meter_id == meter_id, collection_markers.c.object == key)
            old = conn.execute(select(collection_markers.c.last_collected).where(*where)).scalar()
            if target is None:
                conn.execute(delete(collection_markers).where(*where))
            elif old is None:
                _require_meter(conn, meter_id)
                conn.execute(
                    insert(collection_markers).values(
                        meter_id=meter_id, object=key, last_collected=target, updated_at=now
                    )
                )
            else:
                conn.execute(
                    update(collection_markers).where(*where).values(last_collected=target, updated_at=now)
                )
            detail = {"from": _jsonable(old), "to": _jsonable(target)}
            _Audit(actor, "marker.reset", f"{meter_id} {key}", "ok", detail).write(conn, now)

        await self._run("reset a marker", job)

    # -- commands -------------------------------------------------------------------------------

    async def request_command(
        self,
        kind: str,
        *,
        requested_by: str,
        args: Mapping[str, Any] | None = None,
        meter_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[CommandRecord, bool]:
        """Record a command before it runs (state ``requested``); returns it and whether it is new.

        With an ``idempotency_key`` already used, the existing command is returned (``False``)
        when kind, meter and arguments are the same, and :class:`CommandStateError` is raised
        when they differ, so a retried request can never make a command run twice.
        """
        now = self._now()
        kind = _text_key(kind, "command kind")
        args_json = canonical_json(dict(args or {})) or "{}"
        key = idempotency_key
        if key is not None and (not key or len(key) > 128):
            raise InputError("an idempotency key is 1..128 characters")
        command_id = uuid.uuid4().hex

        def job(conn: Connection) -> tuple[CommandRecord, bool]:
            if meter_id is not None:
                _require_meter(conn, meter_id)
            if key is not None:
                row = conn.execute(select(commands).where(commands.c.idempotency_key == key)).first()
                if row is not None:
                    if (row.kind, row.meter_id, row.args) != (kind, meter_id, args_json):
                        raise CommandStateError(
                            f"idempotency key {key!r} was already used for a different command "
                            f"({row.kind} {row.id}); use a new key for a new command",
                            state=row.state,
                        )
                    return _command(row), False
            values = {
                "id": command_id,
                "kind": kind,
                "meter_id": meter_id,
                "args": args_json,
                "requested_by": requested_by,
                "requested_at": now,
                "idempotency_key": key,
                "state": CommandState.REQUESTED.value,
            }
            conn.execute(insert(commands).values(**values))
            subject = f"command {command_id} {kind}"
            _Audit(requested_by, "command.requested", subject, "ok", dict(args or {})).write(conn, now)
            row = conn.execute(select(commands).where(commands.c.id == command_id)).one()
            return _command(row), True

        return await self._run("record a command", job)

    async def start_command(self, command_id: str, *, actor: str = "executor") -> CommandRecord:
        """``requested`` -> ``running``, atomically: of two callers, exactly one succeeds and the
        other gets :class:`CommandStateError`. This is what makes "at most once" enforceable."""
        now = self._now()
        return await self._run(
            "start a command",
            partial(
                self._transition,
                command_id=command_id,
                sources=(CommandState.REQUESTED,),
                target=CommandState.RUNNING,
                now=now,
                actor=actor,
                values={"started_at": now},
            ),
        )

    async def finish_command(
        self,
        command_id: str,
        *,
        succeeded: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        actor: str = "executor",
    ) -> CommandRecord:
        """``running`` -> ``succeeded`` / ``failed``, with the result or error."""
        now = self._now()
        state = CommandState.SUCCEEDED if succeeded else CommandState.FAILED
        values = {
            "finished_at": now,
            "result": canonical_json(dict(result)) if result is not None else None,
            "error": error,
        }
        return await self._run(
            "finish a command",
            partial(
                self._transition,
                command_id=command_id,
                sources=(CommandState.RUNNING,),
                target=state,
                now=now,
                actor=actor,
                values=values,
            ),
        )

    async def cancel_command(
        self, command_id: str, *, actor: str, reason: str = "cancelled"
    ) -> CommandRecord:
        """``requested`` -> ``failed`` for a command that has not started."""
        now = self._now()
        values = {"finished_at": now, "error": reason}
        return await self._run(
            "cancel a command",
            partial(
                self._transition,
                command_id=command_id,
                sources=(CommandState.REQUESTED,),
                target=CommandState.FAILED,
                now=now,
                actor=actor,
                values=values,
            ),
        )

    def _transition(
        self,
        conn: Connection,
        *,
        command_id: str,
        sources: tuple[CommandState, ...],
        target: CommandState,
        now: datetime,
        actor: str,
        values: dict[str, Any],
    ) -> CommandRecord:
        done = conn.execute(
            update(commands)
            .where(commands.c.id == command_id, commands.c.state.in_([s.value for s in sources]))
            .values(state=target.value, **values)
        )
        row = conn.execute(select(commands).where(commands.c.id == command_id)).first()
        if row is None:
            raise CommandNotFoundError(f"no command {command_id!r}")
        if done.rowcount != 1:
            expected = " or ".join(s.value for s in sources)
            raise CommandStateError(
                f"command {command_id} is {row.state}, not {expected}; it cannot become {target.value}",
                state=row.state,
            )
        detail = {"error": values.get("error")} if values.get("error") else None
        subject = f"command {command_id} {row.kind}"
        _Audit(actor, f"command.{target.value}", subject, target.value, detail).write(conn, now)
        return _command(row)

    async def command(self, command_id: str) -> CommandRecord:
        """The command with this id; raises :class:`CommandNotFoundError`."""

        def job(conn: Connection) -> CommandRecord:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).first()
            if row is None:
                raise CommandNotFoundError(f"no command {command_id!r}")
            return _command(row)

        return await self._run("read a command", job, write=False)

    async def commands(
        self, *, state: CommandState | None = None, meter_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Commands, oldest request first."""
        conds = []
        if state is not None:
            conds.append(commands.c.state == state.value)
        if meter_id is not None:
            conds.append(commands.c.meter_id == meter_id)
        query = select(commands).where(*conds).order_by(commands.c.requested_at, commands.c.id).limit(limit)
        return await self._run(
            "list commands", lambda conn: [_command(r) for r in conn.execute(query)], write=False
        )

    # -- audit ----------------------------------------------------------------------------------

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str = "",
        result: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append to the audit log (who, when, what, result)."""
        now = self._now()
        values = _Audit(actor, action, subject, result, dict(detail) if detail is not None else None).values(
            now
        )
        await self._run("write the audit log", lambda conn: conn.execute(insert(audit_log).values(**values)))

    async def audit_log(
        self,
        *,
        since: datetime | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit entries, oldest first (``action`` may end in ``*`` for a prefix)."""
        conds = _time_range(audit_log.c.at, since, None)
        if action is not None:
            conds.append(
                audit_log.c.action.startswith(action[:-1])
                if action.endswith("*")
                else audit_log.c.action == action
            )
        if subject is not None:
            conds.append(audit_log.c.subject == subject)
        query = select(audit_log).where(*conds).order_by(audit_log.c.id).limit(limit)

        def job(conn: Connection) -> list[AuditEntry]:
            return [
                AuditEntry(
                    row.id,
                    row.at,
                    row.actor,
                    row.action,
                    row.subject,
                    row.result,
                    json.loads(row.detail) if row.detail else None,
                )
                for row in conn.execute(query)
            ]

        return await self._run("read the audit log", job, write=False)

    # -- forwarding: the outbox and the central receiver's side --------------------------------

    async def register_outbox_sinks(self, names: Iterable[str]) -> list[str]:
        """Register upstream sinks; from now on every stored or revised reading is pending for
        each of them until confirmed. Returns the names that were new (see :mod:`.outbox`)."""
        wanted = list(names)
        now = self._now()
        return await self._run("register outbox sinks", lambda conn: outbox.register_sinks(conn, wanted, now))

    async def unregister_outbox_sink(self, name: str, *, actor: str) -> int:
        """Forget a sink and drop what it had pending (audited); returns the entries dropped."""
        now = self._now()

        def job(conn: Connection) -> int:
            dropped = outbox.unregister_sink(conn, name)
            _Audit(actor, "outbox.unregister", f"sink {name}", "ok", {"dropped": dropped}).write(conn, now)
            return dropped

        return await self._run("unregister an outbox sink", job)

    async def claim_outbox_batch(
        self, sink: str, *, limit: int, live_share: float = 0.0
    ) -> OutboxBatch | None:
        """The batch ``sink`` should send now: its open batch again (same id and items) until
        it is confirmed, else a new one of at most ``limit`` readings; ``None``: nothing pending."""
        return await self._run(
            "claim an outbox batch",
            lambda conn: outbox.claim(conn, sink, limit=limit, live_share=live_share),
        )

    async def confirm_outbox_batch(self, sink: str, batch_id: str) -> int:
        """Record that ``sink`` confirmed ``batch_id``: its readings leave that sink's outbox.
        Idempotent; returns how many readings were confirmed now."""
        now = self._now()
        return await self._run(
            "confirm an outbox batch", lambda conn: outbox.confirm(conn, sink, batch_id, now)
        )

    async def confirm_and_claim_outbox_batch(
        self, sink: str, batch_id: str, *, limit: int, live_share: float = 0.0
    ) -> tuple[int, OutboxBatch | None]:
        """:meth:`confirm_outbox_batch` and then :meth:`claim_outbox_batch` in one transaction
        (one commit per batch while a backlog drains); returns both results."""
        now = self._now()

        def job(conn: Connection) -> tuple[int, OutboxBatch | None]:
            confirmed = outbox.confirm(conn, sink, batch_id, now)
            return confirmed, outbox.claim(conn, sink, limit=limit, live_share=live_share)

        return await self._run("confirm and claim outbox batches", job)

    async def outbox_backlog(self, sink: str | None = None) -> list[OutboxBacklog]:
        """Backlog size and age of every registered sink (or one), by name."""
        return await self._run("read the outbox backlog", lambda conn: outbox.stats(conn, sink), write=False)

    async def expire_outbox(
        self,
        keep_unsent: timedelta,
        *,
        now: datetime | None = None,
        batch_size: int = 1000,
        actor: str = "retention",
        sinks: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Drop pending entries stored longer ago than ``keep_unsent`` (never those of an open
        batch) of ``sinks`` (``None``: every sink), in transactions of at most ``batch_size``;
        audited. Returns drops per sink."""
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        moment = utc(now, "now") if now is not None else self._now()
        cutoff = moment - keep_unsent
        total: dict[str, int] = {}
        while True:
            counts = await self._run(
                "expire outbox entries", lambda conn: outbox.expire(conn, cutoff, batch_size, sinks)
            )
            for name, n in counts.items():
                total[name] = total.get(name, 0) + n
            if sum(counts.values()) < batch_size:
                break
        if total:
            detail = {"cutoff": cutoff.isoformat(), "dropped": total}
            await self.audit(actor=actor, action="outbox.expired", subject="outbox", detail=detail)
        return total

    async def save_received_batch(
        self,
        batch_id: str,
        readings_: Iterable[ReceivedReading],
        *,
        source: str,
        actor: str = "central",
        profile_rows_: Iterable[tuple[str, str, ProfileRow]] = (),
        events_: Iterable[tuple[str, MeterEvent]] = (),
    ) -> ReceiveResult:
        """Store a forwarded batch once (the central receiver's side), in one transaction.

        A ``batch_id`` stored before is a duplicate: nothing is written. Otherwise the readings,
        the profile rows ``(meter, profile, row)`` and the events ``(meter, event)`` are upserted
        by natural key (meters the store does not know are added, active, in no configuration,
        with protocol ``forwarded`` and ``source`` as their line) and the batch id is recorded
        with them, so a crash can never store the data without the id or the id without the data.
        """
        if not 1 <= len(batch_id) <= 64:
            raise InputError("a batch id is text of 1..64 characters")
        if not 1 <= len(source) <= 128:
            raise InputError("a batch's source is text of 1..128 characters")
        now = self._now()
        by_meter: dict[str, dict[tuple[object, ...], dict[str, Any]]] = {}
        count = 0
        for r in readings_:
            meter_id = _text_key(r.meter_id, "a meter id")
            code = _text_key(r.obis, "a reading's OBIS code")
            captured = utc(r.capture_time, "capture_time")
            kind, exact, number = encode_value(r.value)
            by_meter.setdefault(meter_id, {})[(code, captured)] = {
                "obis": code,
                "capture_time": captured,
                "value_kind": kind,
                "value_text": exact,
                "value_num": number,
                "unit": r.unit,
                "status": _text_key(r.status, "status"),
            }
            count += 1
        others: list[tuple[_Keyed, dict[str, dict[tuple[object, ...], dict[str, Any]]]]] = [
            (_PROFILE_ROWS, {}),
            (_EVENTS, {}),
        ]
        for meter_id, profile, row in profile_rows_:
            values = _profile_row(_text_key(object_key(profile), "profile"), row)
            row_key = (values["profile"], values["capture_time"])
            others[0][1].setdefault(_text_key(meter_id, "a meter id"), {})[row_key] = values
            count += 1
        for meter_id, ev in events_:
            values = _event(ev)
            event_key = (values["log"], values["code"], values["event_time"])
            others[1][1].setdefault(_text_key(meter_id, "a meter id"), {})[event_key] = values
            count += 1

        def job(conn: Connection) -> ReceiveResult:
            seen = conn.execute(
                select(received_batches.c.batch_id).where(received_batches.c.batch_id == batch_id)
            ).first()
            if seen is not None:
                return ReceiveResult(batch_id, True, WriteResult())
            _adopt_meters(conn, sorted({*by_meter, *others[0][1], *others[1][1]}), source, now)
            result = WriteResult()
            for spec, grouped in [(_READINGS, by_meter), *others]:
                for meter_id, rows in grouped.items():
                    changed: list[dict[str, Any]] = []
                    result += self._upsert(
                        conn, spec, meter_id, list(rows.values()), now=now, actor=actor, changed=changed
                    )
                    outbox.enqueue(conn, meter_id, changed, now, record=spec.noun)
            conn.execute(
                insert(received_batches).values(
                    batch_id=batch_id, source=source, received_at=now, readings=count
                )
            )
            return ReceiveResult(batch_id, False, result)

        return await self._run("store a received batch", job)

    async def expire_received_batches(self, keep: timedelta, *, batch_size: int = 5000) -> int:
        """Forget the ids of batches received longer ago than ``keep`` (the central receiver's
        de-duplication window); returns how many. Readings stay (see :mod:`.outbox`)."""
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        cutoff = self._now() - keep
        total = 0
        while True:
            n = await self._run(
                "forget old received batch ids",
                lambda conn: outbox.expire_received(conn, cutoff, batch_size),
            )
            total += n
            if n < batch_size:
                return total

    # -- maintenance ----------------------------------------------------------------------------

    async def apply_retention(
        self,
        policy: RetentionPolicy,
        *,
        now: datetime | None = None,
        batch_size: int = 1000,
        actor: str = "retention",
    ) -> RetentionResult:
        """Delete what ``policy`` no longer keeps, in transactions of at most ``batch_size`` rows
        (other store work runs between batches).

        The newest reading of each (meter, OBIS) series, the newest row of each profile and the
        newest event of each log are always kept, so collection markers never point past the
        stored data and "last value" queries keep an answer for meters that went silent.
        """
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        moment = utc(now, "now") if now is not None else self._now()
        counts: dict[str, int] = {}
        plan: list[tuple[str, int | None]] = [
            ("readings", policy.readings_days),
            ("profile_rows", policy.profile_days),
            ("events", policy.events_days),
            ("audit_log", policy.audit_days),
        ]
        for name, days in plan:
            counts[name] = 0
            if days is None:
                continue
            cutoff = moment - timedelta(days=days)
            while True:
                deleted = await self._run(
                    f"apply retention to {name}",
                    partial(_delete_batch, name=name, cutoff=cutoff, batch_size=batch_size),
                )
                counts[name] += deleted
                if deleted < batch_size:
                    break
        result = RetentionResult(**counts)
        if result.total:
            await self.audit(actor=actor, action="retention.apply", subject="store", detail=counts)
        return result

    async def check_integrity(self) -> IntegrityReport:
        """Check the store's consistency (see :func:`_integrity`); never raises for findings."""
        return await self._run("check the store's integrity", _integrity, write=False)


@contextlib.contextmanager
def _virtual_time_held(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """On a :class:`VirtualClock`, keep virtual time still while a store job runs in its thread
    (the job takes real time; the clock must not jump past timers meanwhile)."""
    clock = getattr(loop, "metercom_clock", None)
    if not isinstance(clock, VirtualClock):
        yield
        return
    release = clock.hold()
    try:
        yield
    finally:
        release()


# -- helpers run inside store jobs ----------------------------------------------------------------


def _profile_row(name: str, row: ProfileRow) -> dict[str, Any]:
    """The ``profile_rows`` columns of ``row`` of profile ``name`` (a checked key)."""
    values = {_text_key(col, "a profile column"): list(encode_value(v)[:2]) for col, v in row.values.items()}
    return {
        "profile": name,
        "capture_time": utc(row.capture_time, "a profile row's capture_time"),
        "row_values": canonical_json(values),
        "units": _units_json(row.units),
        "status": _text_key(row.status, "status"),
    }


def _units_json(units: Mapping[str, str | None]) -> str | None:
    """``canonical_json`` of a row's units; the rows of one read share them, so it is kept."""
    key = tuple(units.items())
    try:
        return _units_json_of(key)
    except TypeError:  # an unhashable unit: no caching (canonical_json says what is wrong)
        return canonical_json(dict(units))


@lru_cache(maxsize=256)
def _units_json_of(items: tuple[tuple[str, str | None], ...]) -> str | None:
    return canonical_json(dict(items))


def _event(ev: MeterEvent) -> dict[str, Any]:
    """The ``events`` columns of ``ev``."""
    return {
        "log": _text_key(object_key(ev.log), "an event's log"),
        "code": int(ev.code),
        "event_time": utc(ev.time, "an event's time"),
        "description": ev.description,
        "data": canonical_json(dict(ev.data)) if ev.data else None,
    }


#: Most jobs one group commit takes (the write lock is held for the whole transaction).
_GROUP_MAX: Final = 128


class _RunAlone(Exception):
    """A group of one: run it the ordinary way."""


@dataclass(slots=True)
class _Queued:
    """A job waiting for a group commit and the future its caller awaits."""

    op: str
    fn: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[asyncio.Future[Any], object, BaseException | None]


def _settle_all(settled: list[_Outcome]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled: the job ran (or not) all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# Statements the collector runs for every meter, built once (parameters bound per call).
_MARKER = select(collection_markers.c.last_collected).where(
    collection_markers.c.meter_id == bindparam("meter"), collection_markers.c.object == bindparam("object")
)
_PROFILE_TIMES = {
    (lower, upper): select(profile_rows.c.capture_time)
    .where(
        profile_rows.c.meter_id == bindparam("meter"),
        profile_rows.c.profile == bindparam("profile"),
        *((profile_rows.c.capture_time >= bindparam("since"),) if lower else ()),
        *((profile_rows.c.capture_time < bindparam("until"),) if upper else ()),
    )
    .order_by(profile_rows.c.capture_time)
    for lower in (False, True)
    for upper in (False, True)
}
_EXISTING: dict[str, Any] = {}


def _existing(spec: _Keyed) -> Any:
    """The stored rows a save may meet: one meter, some groups (OBIS codes, a profile, logs),
    a time range (parameters ``meter``, ``groups``, ``low``, ``high``); built once per table."""
    query = _EXISTING.get(spec.table.name)
    if query is None:
        table, group, time_col = spec.table, spec.key[0], spec.time_column
        query = _EXISTING[spec.table.name] = select(table).where(
            table.c.meter_id == bindparam("meter"),
            table.c[group].in_(bindparam("groups", expanding=True)),
            table.c[time_col].between(bindparam("low"), bindparam("high")),
        )
    return query


_MARKER_UPSERTS: dict[str, Any] = {}


def _marker_upsert(dialect: str) -> Any:
    """``INSERT .. ON CONFLICT DO UPDATE .. WHERE newer`` for a marker (built once per dialect);
    None for a dialect without it."""
    if dialect in _MARKER_UPSERTS:
        return _MARKER_UPSERTS[dialect]
    from sqlalchemy.dialects import postgresql, sqlite

    inserts: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    if dialect not in inserts:
        _MARKER_UPSERTS[dialect] = None
        return None
    c = collection_markers.c
    stmt = inserts[dialect](collection_markers).values(
        meter_id=bindparam("m", type_=c.meter_id.type),
        object=bindparam("o", type_=c.object.type),
        last_collected=bindparam("t", type_=c.last_collected.type),
        updated_at=bindparam("u", type_=c.updated_at.type),
    )
    excluded = stmt.excluded
    _MARKER_UPSERTS[dialect] = stmt.on_conflict_do_update(
        index_elements=[c.meter_id, c.object],
        set_={"last_collected": excluded.last_collected, "updated_at": excluded.updated_at},
        where=excluded.last_collected > c.last_collected,
    )
    return _MARKER_UPSERTS[dialect]


def _require_meter(conn: Connection, meter_id: str) -> None:
    if conn.execute(select(meters.c.id).where(meters.c.id == meter_id)).first() is None:
        raise InputError(
            f"unknown meter {meter_id!r}: the store knows a meter once a configuration "
            "defining it has been applied"
        )


def _adopt_meters(conn: Connection, meter_ids: Sequence[str], source: str, now: datetime) -> None:
    known = set(conn.execute(select(meters.c.id).where(meters.c.id.in_(meter_ids))).scalars())
    fresh = [m for m in meter_ids if m not in known]
    if not fresh:
        return
    version = conn.execute(select(func.max(config_versions.c.version))).scalar() or 0
    conn.execute(
        insert(meters),
        [
            {
                "id": m,
                "protocol": "forwarded",
                "line_id": f"from:{source}"[:80],
                "address": "",
                "device_profile": None,
                "tariff": None,
                "active": True,
                "first_version": version,
                "changed_version": version,
                "updated_at": now,
            }
            for m in fresh
        ],
    )


def _time_range(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    conds = []
    if since is not None:
        conds.append(column >= utc(since, "since"))
    if until is not None:
        conds.append(column < utc(until, "until"))
    return conds


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class _Audit:
    actor: str
    action: str
    subject: str
    result: str = "ok"
    detail: Mapping[str, Any] | None = None

    def values(self, now: datetime) -> dict[str, Any]:
        return {
            "at": now,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "result": self.result,
            "detail": canonical_json(self.detail) if self.detail is not None else None,
        }

    def write(self, conn: Connection, now: datetime) -> None:
        conn.execute(insert(audit_log).values(**self.values(now)))


def _config_version(row: Row[Any], *, with_text: bool) -> ConfigVersion:
    return ConfigVersion(
        row.version,
        row.applied_at,
        row.actor,
        row.source,
        row.sha256,
        row.summary,
        row.text if with_text else None,
    )


def _command(row: Row[Any]) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        kind=row.kind,
        meter_id=row.meter_id,
        args=MappingProxyType(json.loads(row.args)),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        idempotency_key=row.idempotency_key,
        state=CommandState(row.state),
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=MappingProxyType(json.loads(row.result)) if row.result is not None else None,
        error=row.error,
    )


def _delete_batch(conn: Connection, *, name: str, cutoff: datetime, batch_size: int) -> int:
    if name == "audit_log":
        victims = (
            select(audit_log.c.id).where(audit_log.c.at < cutoff).order_by(audit_log.c.id).limit(batch_size)
        )
        return conn.execute(delete(audit_log).where(audit_log.c.id.in_(victims))).rowcount
    if name == "events":
        newer = aliased(events)
        keep_newest = exists().where(
            newer.c.meter_id == events.c.meter_id,
            newer.c.log == events.c.log,
            newer.c.event_time > events.c.event_time,
        )
        victims = select(events.c.id).where(events.c.event_time < cutoff, keep_newest).limit(batch_size)
        return conn.execute(delete(events).where(events.c.id.in_(victims))).rowcount
    table = readings if name == "readings" else profile_rows
    group = table.c.obis if name == "readings" else table.c.profile
    newer_t = aliased(table)
    newer_group = newer_t.c.obis if name == "readings" else newer_t.c.profile
    keep_newest = exists().where(
        newer_t.c.meter_id == table.c.meter_id,
        newer_group == group,
        newer_t.c.capture_time > table.c.capture_time,
    )
    key = (table.c.meter_id, group, table.c.capture_time)
    victims = select(*key).where(table.c.capture_time < cutoff, keep_newest).limit(batch_size)
    return conn.execute(delete(table).where(tuple_(*key).in_(victims))).rowcount


def _integrity(conn: Connection) -> IntegrityReport:
    """SQLite: ``PRAGMA integrity_check`` and ``foreign_key_check``. Both dialects: the schema is
    at the newest revision; no duplicate natural keys; markers not ahead of stored data; command
    states consistent with their times; configuration versions numbered 1..n without gaps;
    meters refer to existing versions."""
    checks: list[str] = []
    problems: list[str] = []
    if conn.dialect.name == "sqlite":
        checks.append("sqlite integrity_check")
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
        if rows != ["ok"]:
            problems.extend(f"sqlite integrity_check: {r}" for r in rows[:20])
        checks.append("sqlite foreign_key_check")
        problems.extend(
            f"foreign key: {r[0]} row {r[1]} refers to a missing {r[2]} row"
            for r in list(conn.exec_driver_sql("PRAGMA foreign_key_check"))[:20]
        )
    checks.append("schema revision")
    revision = migrate.current_revision(conn)
    head = migrate.head_revision()
    if revision != head:
        problems.append(f"schema revision is {revision!r}, expected {head!r}")
    checks.append("unique natural keys")
    for table, key in (
        (readings, ("meter_id", "obis", "capture_time")),
        (profile_rows, ("meter_id", "profile", "capture_time")),
        (events, ("meter_id", "log", "event_time", "code")),
    ):
        cols = [table.c[k] for k in key]
        dupes = conn.execute(
            select(*cols, func.count()).group_by(*cols).having(func.count() > 1).limit(20)
        ).all()
        problems.extend(f"{table.name}: duplicate natural key {tuple(d[:-1])} ({d[-1]} rows)" for d in dupes)
    dupes = conn.execute(
        select(commands.c.idempotency_key, func.count())
        .where(commands.c.idempotency_key.is_not(None))
        .group_by(commands.c.idempotency_key)
        .having(func.count() > 1)
    ).all()
    problems.extend(f"commands: idempotency key {d[0]!r} used {d[1]} times" for d in dupes)
    checks.append("markers not ahead of stored data")
    m = collection_markers.c
    newest = [
        select(func.max(readings.c.capture_time))
        .where(readings.c.meter_id == m.meter_id, readings.c.obis == m.object)
        .scalar_subquery(),
        select(func.max(profile_rows.c.capture_time))
        .where(profile_rows.c.meter_id == m.meter_id, profile_rows.c.profile == m.object)
        .scalar_subquery(),
        select(func.max(events.c.event_time))
        .where(events.c.meter_id == m.meter_id, events.c.log == m.object)
        .scalar_subquery(),
    ]
    for row in conn.execute(select(m.meter_id, m.object, m.last_collected, *newest)):
        stored = [t for t in row[3:] if t is not None]
        latest = max((_as_utc(t) for t in stored), default=None)
        if latest is None or row.last_collected > latest:
            have = latest.isoformat() if latest is not None else "nothing stored"
            problems.append(
                f"marker {row.meter_id} {row.object} at {row.last_collected.isoformat()} "
                f"is ahead of the data ({have})"
            )
    checks.append("command states")
    c = commands.c
    bad_states = conn.execute(
        select(c.id, c.state).where(
            (c.state.not_in(["requested", "running", "succeeded", "failed"]))
            | ((c.state == "requested") & (c.started_at.is_not(None) | c.finished_at.is_not(None)))
            | ((c.state == "running") & (c.started_at.is_(None) | c.finished_at.is_not(None)))
            | (c.state.in_(["succeeded"]) & (c.started_at.is_(None) | c.finished_at.is_(None)))
            | ((c.state == "failed") & c.finished_at.is_(None))
        )
    ).all()
    problems.extend(
        f"command {r.id}: state {r.state} does not match its start/finish times" for r in bad_states
    )
    checks.append("configuration versions")
    low, high, count = conn.execute(
        select(func.min(config_versions.c.version), func.max(config_versions.c.version), func.count())
    ).one()
    if count and (low != 1 or high != count):
        problems.append(f"configuration versions are not numbered 1..{count} (found {low}..{high})")
    late = conn.execute(
        select(meters.c.id).where(
            (meters.c.changed_version > (high or 0)) | (meters.c.first_version > meters.c.changed_version)
        )
    ).all()
    problems.extend(f"meter {r.id} refers to a configuration version that does not exist" for r in late)
    return IntegrityReport(tuple(checks), tuple(problems))


def _as_utc(value: datetime | str) -> datetime:
    # A correlated max() over a UtcDateTime column comes back typed; be lenient should a
    # driver hand back SQLite's raw text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

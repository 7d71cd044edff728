"""Opening the database: URLs, SQLite settings, transactions, and translating driver errors.

Rule: only this package talks to SQLAlchemy and the drivers, and every failure leaves it as a
:class:`~metercom.errors.StoreError` whose message says what the store was doing and why it
failed, in words (never a raw driver exception, an SQL statement or a password).

SQLite (the embedded default) is opened with WAL journaling (readers never block the writer),
foreign keys on, a busy timeout (a writer waits for another process's write lock instead of
failing at once) and ``synchronous=NORMAL``: in WAL mode that is safe against a crashed or
killed process; a power cut may lose the last transactions, but never half of one, and since
collection markers are committed with the readings they cover, the lost period is simply read
again. Python's ``sqlite3`` begins transactions lazily and not before every statement, so the
store emits ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes (the write lock is taken up front,
so a read-then-write transaction cannot deadlock against another writer) and a plain
``BEGIN`` for reads.

PostgreSQL is used through psycopg 3 (``postgresql+psycopg://user@host/db``; a bare
``postgresql://`` URL gets that driver). Per-test or per-tenant schemas are chosen with the
usual libpq option ``?options=-csearch_path%3Dname``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from metercom.errors import InputError, StoreError

__all__ = [
    "WRITE",
    "create_store_engine",
    "display_url",
    "is_write_conflict",
    "resolve_url",
    "translate_error",
]

#: Execution option that makes a transaction a write transaction (BEGIN IMMEDIATE on SQLite).
WRITE: Final = "metercom_write"

_ACCEPTED: Final = "a SQLite file path, sqlite:///path/to/file.db or postgresql+psycopg://user@host/db"


def resolve_url(url: str | os.PathLike[str]) -> URL:
    """The SQLAlchemy URL for a store location: a path is a SQLite file."""
    if not isinstance(url, os.PathLike) and not url.strip():
        raise InputError(f"empty store location; give {_ACCEPTED}")
    if isinstance(url, os.PathLike) or "://" not in url:
        return URL.create("sqlite+pysqlite", database=str(Path(url).absolute()))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"cannot read the store URL {url!r}; give {_ACCEPTED}") from None
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "sqlite" and driver in ("pysqlite", ""):
        return parsed.set(drivername="sqlite+pysqlite")
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            return parsed.set(drivername="postgresql+psycopg")
        if driver == "psycopg":
            return parsed
    raise InputError(
        f"unsupported store URL {display_url(parsed)} (driver {parsed.drivername}); give {_ACCEPTED}"
    )


def display_url(url: URL) -> str:
    """The URL with its password hidden, for messages."""
    return url.render_as_string(hide_password=True)


def create_store_engine(url: URL, *, busy_timeout_s: float, pool_size: int) -> Engine:
    """An engine for ``url`` (from :func:`resolve_url`) with the settings of the module docstring."""
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, busy_timeout_s)
        return create_engine(
            url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, pool_reset_on_return="rollback"
        )
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot open {display_url(url)}: the database driver is not installed ({exc})"
        ) from None


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        parent = Path(str(url.database)).parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open the SQLite store {url.database}: the directory {parent} does not exist"
            )
    kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # The driver must not begin or commit on its own; _on_begin emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise sqlite3.OperationalError(f"cannot switch to WAL journaling (got {mode!r})")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


#: PostgreSQL errors that mean "another transaction got there first" (SQLSTATE 23505, 40P01,
#: 40001): the whole transaction can simply run again.
_CONFLICTS: Final = frozenset({"UniqueViolation", "DeadlockDetected", "SerializationFailure"})


def is_write_conflict(exc: BaseException, dialect: str) -> bool:
    """True when ``exc`` is a PostgreSQL transaction that lost a race with a concurrent one.

    Read-compare-write upserts under read committed: two transactions that insert the same new
    key both find it missing; the second insert waits for the first transaction and then fails
    with a unique violation (or, with keys in another order, a deadlock). Run again, the loser
    finds the winner's rows and its write becomes a no-op or an audited update. SQLite never
    gets here (a write transaction holds the file's write lock from its first statement), so
    a constraint violation there is a real error and is never retried.
    """
    if dialect != "postgresql" or not isinstance(exc, DBAPIError) or exc.orig is None:
        return False
    return type(exc.orig).__name__ in _CONFLICTS


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def translate_error(op: str, exc: BaseException, url: URL) -> StoreError:
    """A :class:`StoreError` for a failure of ``op`` (``"save readings"``) against ``url``."""
    where = display_url(url)
    orig: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = _first_line(orig)
    lowered = reason.lower()
    name = type(orig).__name__
    if "database is locked" in lowered or "database is busy" in lowered:
        return StoreError(
            f"store busy: could not {op} because another process held the SQLite write lock "
            f"longer than the busy timeout ({where})"
        )
    if "unable to open database file" in lowered:
        return StoreError(f"cannot open the SQLite store {where}: {reason} (check the path and permissions)")
    if "file is not a database" in lowered or "malformed" in lowered:
        return StoreError(f"the SQLite store {where} is not a database or is damaged: {reason}")
    if "disk" in lowered and ("full" in lowered or "i/o" in lowered):
        return StoreError(f"could not {op}: the disk failed or is full ({reason})")
    if name in (
        "IntegrityError",
        "UniqueViolation",
        "ForeignKeyViolation",
        "CheckViolation",
        "NotNullViolation",
    ):
        return StoreError(f"could not {op}: a store constraint was violated ({reason})")
    if "connection" in lowered and ("refused" in lowered or "failed" in lowered or "timeout" in lowered):
        return StoreError(f"cannot connect to the store at {where}: {reason}")
    if isinstance(orig, OSError):
        return StoreError(f"could not {op}: {orig.strerror or reason} ({where})")
    if isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return StoreError(f"could not {op} ({where}): {name}: {reason}")
    return StoreError(f"could not {op} ({where}): {name}: {reason}")

"""The head-end store (SQLAlchemy Core + Alembic; SQLite by default, PostgreSQL when shared).

Open it with ``store = await Store.open("/var/lib/metercom/store.db")`` (or a
``postgresql+psycopg://`` URL); the schema is migrated on open. See :mod:`.store` for the
transaction and threading rules and :mod:`.records` for what goes in and comes out.
"""

from __future__ import annotations

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
    OutboxItem,
    ProfileRow,
    ReceivedReading,
    ReceiveResult,
    RetentionResult,
    StoredEvent,
    StoredMeter,
    StoredProfileRow,
    StoredReading,
    WriteResult,
)
from metercom.service.store.store import Store

__all__ = [
    "AuditEntry",
    "CommandNotFoundError",
    "CommandRecord",
    "CommandState",
    "CommandStateError",
    "ConfigVersion",
    "ConfigVersionConflict",
    "IntegrityReport",
    "Marker",
    "MeterEvent",
    "MeterRecord",
    "OutboxBacklog",
    "OutboxBatch",
    "OutboxItem",
    "ProfileRow",
    "ReceiveResult",
    "ReceivedReading",
    "RetentionResult",
    "Store",
    "StoredEvent",
    "StoredMeter",
    "StoredProfileRow",
    "StoredReading",
    "WriteResult",
]

"""The store's schema as SQLAlchemy Core tables (the migrations create exactly this).

Rule: a change here needs a new migration in ``migrations/versions``; a test compares the
migrated database with this metadata, so the two cannot drift apart.

Natural keys make writes idempotent: ``readings`` (meter, obis, capture time),
``profile_rows`` (meter, profile, capture time), ``events`` (meter, log, event time, code),
``collection_markers`` (meter, object). Meters are never deleted (readings refer to them); a
meter that leaves the configuration is marked inactive.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from metercom.service.store.types import BigId, UtcDateTime

__all__ = [
    "COMMAND_STATES",
    "audit_log",
    "collection_markers",
    "commands",
    "config_versions",
    "events",
    "metadata",
    "meters",
    "profile_rows",
    "readings",
]

#: Alembic's own bookkeeping table (named so it cannot clash in a shared PostgreSQL schema).
VERSION_TABLE: Final = "metercom_schema_version"

COMMAND_STATES: Final = ("requested", "running", "succeeded", "failed")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meters = Table(
    "meters",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("protocol", String(16), nullable=False),
    Column("line_id", String(80), nullable=False),
    Column("address", Text, nullable=False),
    Column("device_profile", String(128)),
    Column("tariff", String(64)),
    Column("active", Boolean, nullable=False),
    Column("first_version", Integer, nullable=False),
    Column("changed_version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

readings = Table(
    "readings",
    metadata,
    Column("meter_id", String(64), ForeignKey("meters.id"), primary_key=True),
    Column("obis", String(64), primary_key=True),
    Column("capture_time", UtcDateTime, primary_key=True),
    Column("value_kind", String(16), nullable=False),
    Column("value_text", Text),
    Column("value_num", Double),
    Column("unit", String(32)),
    Column("status", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("revision", Integer, nullable=False),
    Index(None, "capture_time"),
)

profile_rows = Table(
    "profile_rows",
    metadata,
    Column("meter_id", String(64), ForeignKey("meters.id"), primary_key=True),
    Column("profile", String(64), primary_key=True),
    Column("capture_time", UtcDateTime, primary_key=True),
    Column("row_values", Text, nullable=False),
    Column("units", Text, nullable=False),
    Column("status", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("revision", Integer, nullable=False),
    Index(None, "capture_time"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("meter_id", String(64), ForeignKey("meters.id"), nullable=False),
    Column("log", String(64), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("code", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("data", Text),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("meter_id", "log", "event_time", "code"),
    Index(None, "event_time"),
)

collection_markers = Table(
    "collection_markers",
    metadata,
    Column("meter_id", String(64), ForeignKey("meters.id"), primary_key=True),
    Column("object", String(64), primary_key=True),
    Column("last_collected", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("meter_id", String(64), ForeignKey("meters.id")),
    Column("args", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("idempotency_key", String(128), unique=True),
    Column("state", String(16), nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("result", Text),
    Column("error", Text),
    CheckConstraint("state IN ('requested', 'running', 'succeeded', 'failed')", name="state"),
    Index(None, "state"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("result", String(32), nullable=False),
    Column("detail", Text),
    Index(None, "at"),
)

config_versions = Table(
    "config_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("text", Text, nullable=False),
)

"""The store's schema as SQLAlchemy Core tables (the migrations create exactly this).

Rule: a change here needs a new migration in ``migrations/versions``; a test compares the
migrated database with this metadata, so the two cannot drift apart.

Natural keys make writes idempotent: ``readings`` (meter, obis, capture time),
``profile_rows`` (meter, profile, capture time), ``events`` (meter, log, event time, code),
``collection_markers`` (meter, object). Meters are never deleted (readings refer to them); a
meter that leaves the configuration is marked inactive.

Forwarding (revision r0002, see :mod:`metercom.service.forward`): ``outbox`` is an append-only
log of reading values to send upstream (a snapshot of each inserted or revised reading, written
in the same transaction as the reading), ``outbox_pending`` holds one row per (sink, outbox
entry) not yet confirmed by that sink (``batch_id`` set once it is part of a batch),
``outbox_sinks`` the registered sinks and their counters, and ``received_batches`` the batch
ids a central receiver has stored (so a resent batch is recognised and not applied again).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
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
    "alarms",
    "audit_log",
    "collection_markers",
    "commands",
    "config_versions",
    "events",
    "metadata",
    "meters",
    "outbox",
    "outbox_pending",
    "outbox_sinks",
    "prepaid_ledger",
    "profile_rows",
    "readings",
    "received_batches",
    "web_approvals",
    "web_sessions",
    "web_tokens",
    "web_users",
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

outbox_sinks = Table(
    "outbox_sinks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("confirmed_total", BigInteger, nullable=False),
    Column("expired_total", BigInteger, nullable=False),
    Column("last_confirmed_at", UtcDateTime),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("meter_id", String(64), nullable=False),
    Column("obis", String(64), nullable=False),
    Column("capture_time", UtcDateTime, nullable=False),
    Column("value_kind", String(16), nullable=False),
    Column("value_text", Text),
    Column("unit", String(32)),
    Column("status", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("enqueued_at", UtcDateTime, nullable=False),
    Index(None, "enqueued_at"),
    Index(None, "meter_id", "obis", "capture_time"),
)

outbox_pending = Table(
    "outbox_pending",
    metadata,
    Column("sink", String(64), ForeignKey("outbox_sinks.name"), primary_key=True),
    Column("seq", BigId, ForeignKey("outbox.seq"), primary_key=True, autoincrement=False),
    Column("batch_id", String(64)),
    Index(None, "sink", "batch_id"),
    Index(None, "seq"),
)

received_batches = Table(
    "received_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("source", String(128), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("readings", Integer, nullable=False),
)

# -- automation (revision r0003, see metercom.service.automation) ---------------------------------
#
# ``prepaid_ledger``: the rows of PrepaidAccount.to_records, one per ledger event, unique on
# (account, seq) and on (account, key) for top-ups and adjustments (NULL keys never collide), so
# a top-up is credited once even across processes. ``alarms``: one row per alarm episode of the
# alarm centre, rewritten whenever the episode changes (occurrence, acknowledgement, clearing,
# delivery); the first and last alarm and the deliveries are JSON.

prepaid_ledger = Table(
    "prepaid_ledger",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("meter_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("key", String(200)),
    Column("amount_minor", BigInteger),
    Column("credit", Text),
    Column("register_wh", BigInteger),
    Column("energy_wh", BigInteger),
    Column("charge", Text),
    Column("status", String(32)),
    Column("level", Text),
    Column("balance", Text),
    Column("sent", Boolean),
    Column("reason", Text),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "key"),
    Index(None, "meter_id", "at"),
)

alarms = Table(
    "alarms",
    metadata,
    Column("alarm_id", String(64), primary_key=True),
    Column("dedup_key", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("meter_id", String(64)),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("first_at", UtcDateTime, nullable=False),
    Column("last_at", UtcDateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("first_alarm", Text, nullable=False),
    Column("last_alarm", Text, nullable=False),
    Column("acknowledged_by", String(128)),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledge_note", Text),
    Column("cleared_at", UtcDateTime),
    Column("clear_reason", Text),
    Column("notifications", Integer, nullable=False),
    Column("last_notified_at", UtcDateTime),
    Column("deliveries", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "state"),
    Index(None, "meter_id", "last_at"),
    Index(None, "last_at"),
)

# -- web (revision r0004, see metercom.service.store.web and metercom.api) -------------------------
#
# ``web_users``: logins of the REST API and dashboard (Argon2id hash, role, the meters a consumer
# may see as JSON). ``web_sessions``: browser sessions by the SHA-256 of the session id (the id
# itself is only in the cookie). ``web_tokens``: bearer tokens for machines, by the SHA-256 of
# the token. ``web_approvals``: disconnects held for a second person's approval; the command is
# recorded only once approved (``command_id``).

web_users = Table(
    "web_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("meter_ids", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("client", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "username"),
)

web_tokens = Table(
    "web_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("username", String(64), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Index(None, "username"),
)

web_approvals = Table(
    "web_approvals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("meter_id", String(64), nullable=False),
    Column("args", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("request_id", String(128), unique=True),
    Column("state", String(24), nullable=False),
    Column("decided_by", String(128)),
    Column("decided_at", UtcDateTime),
    Column("reason", Text),
    Column("command_id", String(36)),
    Index(None, "meter_id"),
)

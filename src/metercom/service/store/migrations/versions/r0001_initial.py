"""The first store schema: meters, readings, profile rows, events, markers, commands, audit
log and configuration versions.

Revision ID: r0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meters",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("line_id", sa.String(80), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("device_profile", sa.String(128)),
        sa.Column("tariff", sa.String(64)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("first_version", sa.Integer(), nullable=False),
        sa.Column("changed_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_meters"),
    )
    op.create_table(
        "readings",
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("obis", sa.String(64), nullable=False),
        sa.Column("capture_time", _TIME, nullable=False),
        sa.Column("value_kind", sa.String(16), nullable=False),
        sa.Column("value_text", sa.Text()),
        sa.Column("value_num", sa.Double()),
        sa.Column("unit", sa.String(32)),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_readings_meter_id_meters"),
        sa.PrimaryKeyConstraint("meter_id", "obis", "capture_time", name="pk_readings"),
    )
    op.create_index("ix_readings_capture_time", "readings", ["capture_time"])
    op.create_table(
        "profile_rows",
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("capture_time", _TIME, nullable=False),
        sa.Column("row_values", sa.Text(), nullable=False),
        sa.Column("units", sa.Text(), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_profile_rows_meter_id_meters"),
        sa.PrimaryKeyConstraint("meter_id", "profile", "capture_time", name="pk_profile_rows"),
    )
    op.create_index("ix_profile_rows_capture_time", "profile_rows", ["capture_time"])
    op.create_table(
        "events",
        sa.Column("id", _BIGID, nullable=False, autoincrement=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("log", sa.String(64), nullable=False),
        sa.Column("event_time", _TIME, nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("data", sa.Text()),
        sa.Column("received_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_events_meter_id_meters"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint(
            "meter_id", "log", "event_time", "code", name="uq_events_meter_id_log_event_time_code"
        ),
    )
    op.create_index("ix_events_event_time", "events", ["event_time"])
    op.create_table(
        "collection_markers",
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("last_collected", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_collection_markers_meter_id_meters"),
        sa.PrimaryKeyConstraint("meter_id", "object", name="pk_collection_markers"),
    )
    op.create_table(
        "commands",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter_id", sa.String(64)),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", _TIME),
        sa.Column("finished_at", _TIME),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.CheckConstraint(
            "state IN ('requested', 'running', 'succeeded', 'failed')", name="ck_commands_state"
        ),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_commands_meter_id_meters"),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
        sa.UniqueConstraint("idempotency_key", name="uq_commands_idempotency_key"),
    )
    op.create_index("ix_commands_state", "commands", ["state"])
    op.create_table(
        "audit_log",
        sa.Column("id", _BIGID, nullable=False, autoincrement=True),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "config_versions",
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("applied_at", _TIME, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_config_versions"),
    )


def downgrade() -> None:
    for table in (
        "config_versions",
        "audit_log",
        "commands",
        "collection_markers",
        "events",
        "profile_rows",
        "readings",
        "meters",
    ):
        op.drop_table(table)

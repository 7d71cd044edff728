"""Forwarding: the outbox (reading snapshots to send upstream), per-sink pending entries, the
registered sinks, and the batch ids a central receiver has stored.

Revision ID: r0002
Revises: r0001
Create Date: 2026-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_sinks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("registered_at", _TIME, nullable=False),
        sa.Column("confirmed_total", sa.BigInteger(), nullable=False),
        sa.Column("expired_total", sa.BigInteger(), nullable=False),
        sa.Column("last_confirmed_at", _TIME),
        sa.PrimaryKeyConstraint("name", name="pk_outbox_sinks"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", _BIGID, nullable=False, autoincrement=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("obis", sa.String(64), nullable=False),
        sa.Column("capture_time", _TIME, nullable=False),
        sa.Column("value_kind", sa.String(16), nullable=False),
        sa.Column("value_text", sa.Text()),
        sa.Column("unit", sa.String(32)),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
    )
    op.create_index("ix_outbox_enqueued_at", "outbox", ["enqueued_at"])
    op.create_index("ix_outbox_meter_id_obis_capture_time", "outbox", ["meter_id", "obis", "capture_time"])
    op.create_table(
        "outbox_pending",
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("seq", _BIGID, nullable=False, autoincrement=False),
        sa.Column("batch_id", sa.String(64)),
        sa.ForeignKeyConstraint(["sink"], ["outbox_sinks.name"], name="fk_outbox_pending_sink_outbox_sinks"),
        sa.ForeignKeyConstraint(["seq"], ["outbox.seq"], name="fk_outbox_pending_seq_outbox"),
        sa.PrimaryKeyConstraint("sink", "seq", name="pk_outbox_pending"),
    )
    op.create_index("ix_outbox_pending_sink_batch_id", "outbox_pending", ["sink", "batch_id"])
    op.create_index("ix_outbox_pending_seq", "outbox_pending", ["seq"])
    op.create_table(
        "received_batches",
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_received_batches"),
    )


def downgrade() -> None:
    for table in ("received_batches", "outbox_pending", "outbox", "outbox_sinks"):
        op.drop_table(table)

"""Automation: the prepaid ledger and the alarm episodes.

Revision ID: r0003
Revises: r0002
Create Date: 2026-02-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0003"
down_revision: str | None = "r0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prepaid_ledger",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("key", sa.String(200)),
        sa.Column("amount_minor", sa.BigInteger()),
        sa.Column("credit", sa.Text()),
        sa.Column("register_wh", sa.BigInteger()),
        sa.Column("energy_wh", sa.BigInteger()),
        sa.Column("charge", sa.Text()),
        sa.Column("status", sa.String(32)),
        sa.Column("level", sa.Text()),
        sa.Column("balance", sa.Text()),
        sa.Column("sent", sa.Boolean()),
        sa.Column("reason", sa.Text()),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "seq", name="pk_prepaid_ledger"),
        sa.UniqueConstraint("account_id", "key", name="uq_prepaid_ledger_account_id_key"),
    )
    op.create_index("ix_prepaid_ledger_meter_id_at", "prepaid_ledger", ["meter_id", "at"])
    op.create_table(
        "alarms",
        sa.Column("alarm_id", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter_id", sa.String(64)),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_at", _TIME, nullable=False),
        sa.Column("last_at", _TIME, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_alarm", sa.Text(), nullable=False),
        sa.Column("last_alarm", sa.Text(), nullable=False),
        sa.Column("acknowledged_by", sa.String(128)),
        sa.Column("acknowledged_at", _TIME),
        sa.Column("acknowledge_note", sa.Text()),
        sa.Column("cleared_at", _TIME),
        sa.Column("clear_reason", sa.Text()),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("last_notified_at", _TIME),
        sa.Column("deliveries", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("alarm_id", name="pk_alarms"),
    )
    op.create_index("ix_alarms_state", "alarms", ["state"])
    op.create_index("ix_alarms_meter_id_last_at", "alarms", ["meter_id", "last_at"])
    op.create_index("ix_alarms_last_at", "alarms", ["last_at"])


def downgrade() -> None:
    op.drop_table("alarms")
    op.drop_table("prepaid_ledger")

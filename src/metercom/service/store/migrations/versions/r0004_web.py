"""Web: logins, browser sessions, machine tokens and disconnects awaiting a second approval.

Revision ID: r0004
Revises: r0003
Create Date: 2026-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0004"
down_revision: str | None = "r0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("meter_ids", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_web_users"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("client", sa.String(128), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("last_seen_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_username", "web_sessions", ["username"])
    op.create_table(
        "web_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("last_used_at", _TIME),
        sa.PrimaryKeyConstraint("id", name="pk_web_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_web_tokens_token_hash"),
    )
    op.create_index("ix_web_tokens_username", "web_tokens", ["username"])
    op.create_table(
        "web_approvals",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", _TIME),
        sa.Column("reason", sa.Text()),
        sa.Column("command_id", sa.String(36)),
        sa.PrimaryKeyConstraint("id", name="pk_web_approvals"),
        sa.UniqueConstraint("request_id", name="uq_web_approvals_request_id"),
    )
    op.create_index("ix_web_approvals_meter_id", "web_approvals", ["meter_id"])


def downgrade() -> None:
    op.drop_table("web_approvals")
    op.drop_table("web_tokens")
    op.drop_table("web_sessions")
    op.drop_table("web_users")

"""Schema migrations, run by the store itself when it opens.

Rule: nobody runs ``alembic`` by hand. :func:`upgrade` brings a database to the newest
revision shipped in ``migrations/versions`` in one transaction (SQLite: under the write lock;
PostgreSQL: under a transaction-scoped advisory lock), so two processes opening the same store
at once migrate it once, and a migration that fails or is killed leaves the previous schema.
A database whose revision this code does not know (written by a newer metercom) is refused
rather than touched.
"""

from __future__ import annotations

import functools
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from metercom.errors import StoreError
from metercom.service.store.tables import VERSION_TABLE

__all__ = ["SCRIPT_LOCATION", "current_revision", "head_revision", "upgrade"]

SCRIPT_LOCATION: Final = "metercom.service.store:migrations"
#: Key of the PostgreSQL advisory lock held while migrating ("metr" in ASCII).
_PG_LOCK_KEY: Final = 0x6D657472


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision this code ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise StoreError("no store migrations are installed")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (``None``: empty)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, target: str = "head") -> None:
    """Migrate to ``target`` inside the caller's (write) transaction on ``connection``."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    current = current_revision(connection)
    if target == "head" and current == head_revision():
        return
    if current is not None:
        try:
            known = ScriptDirectory.from_config(_config()).get_revision(current) is not None
        except CommandError:
            known = False
        if not known:
            raise StoreError(
                f"the store is at schema revision {current!r}, which this metercom does not know "
                f"(written by a newer version?); newest known: {head_revision()!r}"
            )
    command.upgrade(_config(connection), target)


def downgrade(connection: Connection, target: str) -> None:
    """Migrate down to ``target`` (``"base"``: empty); for tests and emergencies."""
    command.downgrade(_config(connection), target)

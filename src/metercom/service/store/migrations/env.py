"""Alembic environment of the metercom store.

Rule: metercom runs its migrations itself when a store is opened
(:func:`metercom.service.store.migrate.upgrade`), on a connection it already holds inside a
transaction (and, on PostgreSQL, an advisory lock), so concurrent openers serialise and a
failed migration leaves the schema as it was. This file therefore only accepts that
connection; there is no ``alembic.ini`` and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from metercom.service.store.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "metercom runs its store migrations itself when the store is opened "
        "(metercom.service.store.Store.open); do not run alembic by hand"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

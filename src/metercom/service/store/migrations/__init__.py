"""Alembic migrations of the store, run programmatically by :func:`metercom.service.store.migrate.upgrade`."""

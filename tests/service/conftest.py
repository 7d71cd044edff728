"""Fixtures of the head-end tests: the example configuration and stores on SQLite and PostgreSQL.

``store_url`` is parametrised over a fresh SQLite file and a fresh PostgreSQL schema, so every
store test runs on both. PostgreSQL comes from ``METERCOM_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own schema, dropped after
the test. When the server cannot be reached the PostgreSQL variants are skipped locally, but
under ``CI`` (any value but ``0``/``false``) they fail: CI must never silently lose them.

The store runs its work in a thread; these tests run on the virtual clock with no timers
pending while the store works, so the loop simply waits for the thread (see
:mod:`metercom.service.store.store`).
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"
PG_URL = os.environ.get("METERCOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, empty PostgreSQL schema (dropped afterwards)."""
    import psycopg

    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_URL} ({str(exc).strip().splitlines()[0]}); "
            "start it or set METERCOM_TEST_POSTGRES"
        )
        if _in_ci():
            pytest.fail(f"CI requires PostgreSQL for the store tests: {message}")
        pytest.skip(message)
    schema = f"metercom_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url: str = request.getfixturevalue("pg_url")
    return url

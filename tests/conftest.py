"""Test configuration: async tests run on the virtual clock by default.

An ``async def`` test is run on a fresh :class:`metercom.clock.VirtualClock` event loop (request
the ``vclock`` fixture to get at that clock). Mark a test ``@pytest.mark.realtime`` to run it on
the real clock instead, e.g. when a peer runs in another thread.

``store_url`` (used by the head-end and the API tests) is parametrised over a fresh SQLite file
and a fresh PostgreSQL schema, so every store test runs on both. PostgreSQL comes from
``METERCOM_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each test
gets its own schema, dropped after the test. When the server cannot be reached the PostgreSQL
variants are skipped locally, but under ``CI`` (any value but ``0``/``false``) they fail: CI
must never silently lose them.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from metercom.clock import VirtualClock

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

PG_URL = os.environ.get("METERCOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def vclock() -> VirtualClock:
    """The virtual clock an async test runs on."""
    return VirtualClock()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    if pyfuncitem.get_closest_marker("realtime") is not None:
        asyncio.run(func(**kwargs))
    else:
        clock = pyfuncitem.funcargs.get("vclock")
        if not isinstance(clock, VirtualClock):
            clock = VirtualClock()
        clock.run(func(**kwargs))
    return True


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

"""Fixtures of the head-end tests: the example configuration.

The stores on SQLite and PostgreSQL (``store_url``, ``pg_url``) are shared with the API tests and
live in ``tests/conftest.py``. The store runs its work in a thread; these tests run on the virtual
clock with no timers pending while the store works, so the loop simply waits for the thread (see
:mod:`metercom.service.store.store`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")

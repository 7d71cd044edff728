"""Fixtures of the browser tests: one running head-end with the app per test module (see
``harness.py``), headless Chromium, and a fresh browser context (cookies) per test.

Without Chromium or the ``playwright`` package the browser tests are skipped locally, but under
``CI`` (any value but ``0``/``false``) they fail: CI must never silently lose them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import DESKTOP, Dashboard, DashboardServer, chromium, chromium_missing, in_ci, log_in


# Module scope, not session: while Playwright's sync API is open its event loop runs in this
# thread, and every later test that calls asyncio.run() (the CLI tests) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = chromium_missing()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI requires headless Chromium for the dashboard tests: {reason}")
        pytest.skip(reason)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(browser: Any) -> Iterator[DashboardServer]:
    """The running app (started after the browser check, so a missing browser costs nothing)."""
    del browser
    running = DashboardServer()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def dashboard(server: DashboardServer) -> Dashboard:
    assert server.dashboard is not None
    return server.dashboard


@pytest.fixture
def context(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    del dashboard
    ctx = browser.new_context(**DESKTOP)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that fails the test on any uncaught script error."""
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
def operator_page(page: Any, dashboard: Dashboard) -> Any:
    log_in(page, dashboard, "operator")
    return page

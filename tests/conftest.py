"""Test configuration: async tests run on the virtual clock by default.

An ``async def`` test is run on a fresh :class:`metercom.clock.VirtualClock` event loop (request
the ``vclock`` fixture to get at that clock). Mark a test ``@pytest.mark.realtime`` to run it on
the real clock instead, e.g. when a peer runs in another thread.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from metercom.clock import VirtualClock

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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

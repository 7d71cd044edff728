"""The OpenAPI schema fuzzed with schemathesis against the real app and head-end: no 5xx.

The app runs in its own thread and event loop (real clock) behind uvicorn on loopback, around a
head-end with the test fleet (two simulated DLMS meters, one IEC 62056-21 meter); schemathesis
generates requests from ``/api/v1/openapi.json`` for every operation (valid and invalid data)
and sends them with an administrator's bearer token. Every answer must be below 500, and every
error an RFC 9457 problem. Bounded: a fixed number of examples per operation, about 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from headend_support import OpticalLine, running_headend, serve_dlms_meter
from metercom.api import WebSettings, create_app
from metercom.api.security import hash_secret, new_token
from metercom.clock import SystemClock
from metercom.service.meters import LinkPool
from metercom.service.store.web import WebStore
from metercom.sim.dlms import secret_environment

from .conftest import FAST_HASHER, PASSWORD, USERS, fleet_text

EXAMPLES_PER_OPERATION = 20


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Service:
    """The fleet, head-end and app in a thread of their own; ``url`` and ``token`` once ready."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ready = threading.Event()
        self.url = ""
        self.token = ""
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="api fuzz service", daemon=True)

    def __enter__(self) -> _Service:
        self._thread.start()
        assert self.ready.wait(60), "the service did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        clock = SystemClock()
        async with contextlib.AsyncExitStack() as stack:
            ports = {}
            for n, meter_id in enumerate(("house-1", "flat-2")):
                meter = await serve_dlms_meter(clock, seed=7 + n)
                stack.callback(meter.server.close)
                ports[meter_id] = meter.port
            optical = OpticalLine("optical-1", baud=9600)
            stack.push_async_callback(optical.close)
            headend = await stack.enter_async_context(
                running_headend(
                    self.tmp_path / "fuzz.db",
                    fleet_text(ports),
                    self.tmp_path / "state",
                    env=secret_environment(),
                    clock=clock,
                    links=LinkPool(optical.open),
                    stop_timeout_s=2.0,
                )
            )
            for meter_id in ("house-1", "flat-2"):
                await headend.read_now(meter_id, "live")
            web = WebStore(headend.store)
            for username, (role, meter_ids) in USERS.items():
                await web.add_user(username, FAST_HASHER.hash(PASSWORD), role, meter_ids)
            self.token = new_token()
            await web.add_token(hash_secret(self.token), name="fuzz", username="admin", created_by="test")
            app = create_app(headend, settings=WebSettings(), password_hasher=FAST_HASHER)
            server = _Quiet(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
            task = asyncio.create_task(server.serve())
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self.ready.set()
            await self._stop.wait()
            server.should_exit = True
            await task


@pytest.mark.fuzz
def test_openapi_schema_fuzzed_without_server_errors(tmp_path: Path) -> None:
    with _Service(tmp_path) as service:
        raw = httpx.get(f"{service.url}/api/v1/openapi.json").json()
        schema = schemathesis.openapi.from_dict(raw)
        headers = {"Authorization": f"Bearer {service.token}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 35
        seen: dict[str, set[int]] = {}
        failures: list[str] = []
        for operation in operations:
            label = f"{operation.method.upper()} {operation.path}"
            _fuzz(operation, label, service.url, headers, seen.setdefault(label, set()), failures)
        assert failures == [], "\n".join(failures[:20])
        # The fuzzer reached the handlers, not only the validation layer.
        ok = {label for label, statuses in seen.items() if any(s < 300 for s in statuses)}
        assert len(ok) >= len(seen) // 2, seen


def _fuzz(  # noqa: PLR0917 - a test helper
    operation: Any, label: str, url: str, headers: dict[str, str], statuses: set[int], failures: list[str]
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        try:
            strategy = operation.as_strategy(mode)
        except Exception:  # an operation without anything to make invalid  # noqa: BLE001
            strategy = operation.as_strategy()
        case = data.draw(strategy)
        response = case.call(base_url=url, headers=headers, timeout=30)
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:300]} for {case!r}"[:800])
        elif response.status_code >= 400:
            content_type = response.headers.get("content-type")
            if isinstance(content_type, list):
                content_type = content_type[0]
            assert content_type == "application/problem+json", (label, response.text)
            problem = response.json()
            assert problem["status"] == response.status_code
            assert "Traceback" not in response.text

    run()

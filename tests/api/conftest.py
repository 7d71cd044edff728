"""The API tests' harness: the real app around the real head-end, on the virtual clock.

``api_env`` (a fixture returning an async context manager) starts a small fleet: two simulated
DLMS meters (the generic profile, HLS-GMAC, their disconnect control cutting the load) on
loopback TCP - ``house-1`` with the prepaid account ``acc-1`` - and one simulated IEC 62056-21
meter ``iec-1`` on a simulated optical line; a SQLite store; the head-end collecting every 15
minutes; and the app with an ``httpx.AsyncClient`` over ``ASGITransport``. Users of every role
exist (``admin``, ``operator``, ``operator2``, ``viewer``, ``consumer`` bound to ``house-1``);
:meth:`Env.login` opens a cookie session, :meth:`Env.bearer` a token client.

Passwords are hashed with Argon2id at a small cost here (the production default is slow on
purpose); the hashing code path is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from headend_support import (
    DLMS_SECRETS,
    OpticalLine,
    ServedMeter,
    dlms_meter_toml,
    running_headend,
    serve_dlms_meter,
)
from metercom.api import WebSettings, create_app
from metercom.api.security import hash_secret, new_token
from metercom.clock import VirtualClock
from metercom.service.headend import HeadEnd
from metercom.service.meters import LinkPool
from metercom.service.store import Store
from metercom.service.store.web import WebStore
from metercom.sim.dlms import DlmsMeterDevice, secret_environment
from metercom.transport import TransportServer

START = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday
PASSWORD = "correct horse battery"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
USERS = {
    "admin": ("administrator", []),
    "operator": ("operator", []),
    "operator2": ("operator", []),
    "viewer": ("viewer", []),
    "consumer": ("consumer", ["house-1"]),
}
LIVE_OBJECTS = [
    "1-0:1.8.0*255",
    "1-0:32.7.0*255",
    "1-0:52.7.0*255",
    "1-0:72.7.0*255",
    "1-0:31.7.0*255",
    "1-0:51.7.0*255",
    "1-0:71.7.0*255",
    "1-0:21.7.0*255",
    "1-0:41.7.0*255",
    "1-0:61.7.0*255",
    "1-0:33.7.0*255",
    "1-0:1.7.0*255",
    "1-0:14.7.0*255",
    "0-0:96.3.10*255",
]


def fleet_text(ports: dict[str, int], *, web: str = "") -> str:
    objects = ", ".join(f'"{o}"' for o in LIVE_OBJECTS)
    meters = "".join(dlms_meter_toml(meter_id, port, "dlms") for meter_id, port in ports.items())
    return f"""
[service]
name = "api-test"
{DLMS_SECRETS}
[[lines]]
id = "optical-1"
url = "serial:///dev/ttyTEST0"
type = "serial"

[[meters]]
id = "iec-1"
protocol = "iec21"
line = "optical-1"
address = {{ device = "1000" }}
groups = ["iec"]
{meters}
[[groups]]
id = "dlms"

[[groups]]
id = "iec"

[[plans]]
id = "live"
objects = [{objects}]

[[plans]]
id = "billing"
objects = ["1.8.0", "2.8.0"]

[[schedules]]
id = "dlms-15m"
group = "dlms"
plan = "live"
every = "15m"

[[schedules]]
id = "iec-hourly"
group = "iec"
plan = "billing"
every = "1h"

[prepaid]
currency = "INR"
timezone = "Asia/Kolkata"
table = {{ 5 = 500, 10 = 650, 30 = 900, 100 = 1175 }}
unit_wh = 10

[[prepaid.accounts]]
account = "acc-1"
meter = "house-1"
{web}
"""


@dataclass
class Env:
    clock: VirtualClock
    store: Store
    headend: HeadEnd
    app: Any
    web: WebStore
    devices: dict[str, DlmsMeterDevice]
    text: str
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("192.0.2.10", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)
        self.clients.append(client)
        return client

    async def login(self, username: str, password: str = PASSWORD) -> tuple[httpx.AsyncClient, str]:
        """A client with a session cookie, and its CSRF token."""
        client = self.client()
        answer = await client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]

    async def bearer(self, username: str) -> httpx.AsyncClient:
        secret = new_token()
        await self.web.add_token(hash_secret(secret), name="test", username=username, created_by="test")
        return self.client(Authorization=f"Bearer {secret}")


async def _close(server: TransportServer) -> None:
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


@pytest.fixture
def api_env(
    tmp_path: Path, vclock: VirtualClock
) -> Callable[..., contextlib.AbstractAsyncContextManager[Env]]:
    @contextlib.asynccontextmanager
    async def run(
        settings: WebSettings | None = None, *, read: bool = True, web: str = ""
    ) -> AsyncIterator[Env]:
        async with contextlib.AsyncExitStack() as stack:
            meters: dict[str, ServedMeter] = {}
            for n, meter_id in enumerate(("house-1", "flat-2")):
                meters[meter_id] = await serve_dlms_meter(vclock, seed=7 + n)
                stack.push_async_callback(_close, meters[meter_id].server)
            optical = OpticalLine("optical-1")
            stack.push_async_callback(optical.close)
            text = fleet_text({m: meter.port for m, meter in meters.items()}, web=web)
            headend = await stack.enter_async_context(
                running_headend(
                    tmp_path / "store.db",
                    text,
                    tmp_path / "state",
                    env=secret_environment(),
                    links=LinkPool(optical.open),
                )
            )
            web_store = WebStore(headend.store)
            for username, (role, meter_ids) in USERS.items():
                await web_store.add_user(username, FAST_HASHER.hash(PASSWORD), role, meter_ids)
            app = create_app(headend, settings=settings or WebSettings(), password_hasher=FAST_HASHER)
            devices = {m: meter.device for m, meter in meters.items()}
            env = Env(vclock, headend.store, headend, app, web_store, devices, text)
            try:
                if read:
                    for meter_id in ("house-1", "flat-2"):
                        outcome = await headend.read_now(meter_id, "live")
                        assert outcome.ok, outcome.error
                    assert (await headend.read_now("iec-1", "billing")).ok
                yield env
            finally:
                for client in env.clients:
                    await client.aclose()

    return run

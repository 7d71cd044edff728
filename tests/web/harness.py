"""The dashboard's test harness: the real head-end and the real app, served on loopback, and
headless Chromium driven by Playwright. Used by the browser tests (``conftest.py``) and by the
screenshot script (``python -m tests.web.screenshots``).

The fleet is built like ``metercom demo``'s, on the real clock in a thread of its own:

* two IEC 62056-21 meters on simulated optical ports (the demo's own :class:`DemoFleet`,
  300 -> 9600 Bd with real baud-rate timing, live values from the load model);
* two DLMS household meters (generic profile, HLS-GMAC over the IP wrapper on loopback TCP,
  three phases, the disconnect control cutting the load); ``house-01`` has the prepaid
  account ``acc-house-01`` and belongs to the consumer ``household``;
* one DLMS meter (IS 15959 profile) configured with a wrong password: the head-end
  quarantines it and raises an alarm, so the fleet shows a failing meter like a real one.

A real head-end has history; a fresh one has none, and a load curve needs readings on both
sides of every hour. So, once the configuration is applied and before the head-end starts,
the store is given hourly readings of the import register (1.8.0) of the household meters
for the past :data:`HISTORY_DAYS` days, taken from the simulated meter's own register model:
the values the meter itself would have answered then. Everything newer is read over the
wire by the head-end.

Chromium is Debian's (``/usr/bin/chromium``, or ``METERCOM_CHROMIUM``), launched by
Playwright with a fresh profile per launch; Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

CHROMIUM: Final = os.environ.get("METERCOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
HISTORY_DAYS: Final = 70  # covers last month whatever today's date
EVERY_S: Final = 5
USERS: Final = {
    "admin": ("administrator", ()),
    "operator": ("operator", ()),
    "viewer": ("viewer", ()),
    "household": ("consumer", ("house-01",)),
}
PREPAID_METER: Final = "house-01"
PREPAID_ACCOUNT: Final = "acc-house-01"
RELAY_METER: Final = "house-02"
BROKEN_METER: Final = "shop-01"
IEC_METERS: Final = ("iec-01", "iec-02")
DLMS_METERS: Final = ("house-01", "house-02")

_LIVE_OBJECTS: Final = (
    "1-0:1.8.0*255",
    "1-0:2.8.0*255",
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
    "1-0:53.7.0*255",
    "1-0:73.7.0*255",
    "1-0:1.7.0*255",
    "1-0:14.7.0*255",
    "0-0:96.3.10*255",
)
_WH_MJ: Final = 3_600_000

log = logging.getLogger(__name__)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401 - only whether it is installed
    except ImportError:
        return "the Python package 'playwright' is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return (
            f"Chromium is not at {CHROMIUM}: apt-get install chromium chromium-driver "
            "(or set METERCOM_CHROMIUM)"
        )
    return None


def _fleet_text(house_ports: dict[str, int], broken_port: int) -> str:
    """The fleet as an ordinary configuration file (docs/configuration.md)."""
    objects = ", ".join(f'"{o}"' for o in _LIVE_OBJECTS)
    out = ["# metercom browser tests: the links are simulated.", "format_version = 1", ""]
    out += ["[service]", 'name = "metercom-web-tests"', 'timezone = "UTC"', ""]
    for n, meter_id in enumerate(IEC_METERS):
        # DemoFleet's optical ports: line optical-<n>, device address 7000 + n.
        out += [
            "[[lines]]",
            f'id = "optical-{n + 1}"',
            f'url = "serial:///dev/metercom-demo/optical-{n + 1}"',
            'type = "serial"',
            "baud = 300",
            'format = "7E1"',
            "",
            "[[meters]]",
            f'id = "{meter_id}"',
            'protocol = "iec21"',
            f'line = "optical-{n + 1}"',
            f'address = {{ device = "{7000 + n}" }}',
            'groups = ["optical"]',
            "",
        ]
    out += [
        "[[groups]]",
        'id = "optical"',
        "",
        "[[plans]]",
        'id = "optical"',
        'objects = ["1.8.0", "2.8.0", "1.7.0", "32.7.0"]',
        "",
        "[[schedules]]",
        'id = "optical-fast"',
        'group = "optical"',
        'plan = "optical"',
        f'every = "{EVERY_S}s"',
        "",
        "[secrets]",
    ]
    out += [
        'guek = "env:METERCOM_SIM_GUEK"',
        'gak = "env:METERCOM_SIM_GAK"',
        'lls = "env:METERCOM_WRONG_LLS"',
        "",
    ]
    for meter_id, port in house_ports.items():
        out += [
            "[[meters]]",
            f'id = "{meter_id}"',
            'description = "simulated household meter, three phases"',
            'protocol = "dlms"',
            f'url = "tcp://127.0.0.1:{port}"',
            "address = { client = 1, logical = 1 }",
            'authentication = "high-gmac"',
            'security = "authenticated-encrypted"',
            'keys = { encryption = "secret:guek", authentication = "secret:gak" }',
            'device_profile = "generic"',
            'groups = ["households"]',
            "",
        ]
    out += [
        "[[meters]]",
        f'id = "{BROKEN_METER}"',
        'description = "simulated IS 15959 meter; the password in this file is wrong"',
        'protocol = "dlms"',
        f'url = "tcp://127.0.0.1:{broken_port}"',
        "address = { client = 32, logical = 1 }",
        'authentication = "low"',
        'password = "secret:lls"',
        'device_profile = "india"',
        'groups = ["shops"]',
        "",
        "[[groups]]",
        'id = "households"',
        "",
        "[[groups]]",
        'id = "shops"',
        "",
        "[[plans]]",
        'id = "live"',
        f"objects = [{objects}]",
        "",
        "[[plans]]",
        'id = "billing"',
        'objects = ["1-0:1.8.0*255"]',
        "",
        "[[schedules]]",
        'id = "households-live"',
        'group = "households"',
        'plan = "live"',
        f'every = "{EVERY_S}s"',
        "",
        "[[schedules]]",
        'id = "shops-billing"',
        'group = "shops"',
        'plan = "billing"',
        f'every = "{EVERY_S}s"',
        "",
        "[prepaid]",
        'currency = "INR"',
        'timezone = "Asia/Kolkata"',
        "table = { 5 = 500, 10 = 650, 30 = 900, 100 = 1175 }",
        "unit_wh = 10",
        "reminder_levels = [300, 200, 100]",
        "",
        "[[prepaid.accounts]]",
        f'account = "{PREPAID_ACCOUNT}"',
        f'meter = "{PREPAID_METER}"',
        "",
    ]
    return "\n".join(out)


@dataclass
class Dashboard:
    """A running head-end with the app: where it is and how to log in."""

    url: str
    passwords: dict[str, str]
    directory: Path
    meters: tuple[str, ...]
    config_text: str = ""

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/{path.lstrip('/')}"


@dataclass
class _Running:
    stop: asyncio.Event
    loop: asyncio.AbstractEventLoop
    objects: dict[str, Any] = field(default_factory=dict)


class DashboardServer:
    """The fleet, head-end and app in a thread with its own event loop (real clock).

    ``with DashboardServer() as dashboard:`` starts everything and waits until the app answers
    and every household meter has been read once; leaving stops it all.
    """

    def __init__(self, directory: Path | None = None, *, ready_timeout_s: float = 60.0) -> None:
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="metercom-web-"))
        self.ready_timeout_s = ready_timeout_s
        self.passwords = {name: secrets.token_urlsafe(12) for name in USERS}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._running: _Running | None = None
        self._thread: threading.Thread | None = None
        self.dashboard: Dashboard | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Dashboard:
        self._thread = threading.Thread(target=self._run, name="metercom-dashboard", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.ready_timeout_s):
            self.stop()
            raise RuntimeError(f"the dashboard did not start within {self.ready_timeout_s:.0f} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"the dashboard failed to start: {self._error!r}") from self._error
        assert self.dashboard is not None
        return self.dashboard

    def change_web_settings(self, **changes: Any) -> None:
        """Replace fields of the running app's ``[web]`` settings (read per request), e.g.
        ``disconnect_approval=True`` for one test."""
        running = self._running
        assert running is not None
        app = running.objects["app"]
        app.state.ctx.settings = dataclasses.replace(app.state.ctx.settings, **changes)

    def stop(self) -> None:
        running = self._running
        if running is not None:
            with contextlib.suppress(RuntimeError):
                running.loop.call_soon_threadsafe(running.stop.set)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            log.exception("the dashboard server failed")
        finally:
            self._ready.set()

    # -- the service -------------------------------------------------------------------------------

    async def _main(self) -> None:
        import uvicorn
        from argon2 import PasswordHasher

        from metercom.api import WebSettings, create_app
        from metercom.cli.demo import DemoFleet
        from metercom.service.adapters import MeterSessionFactory
        from metercom.service.config_store import ConfigStore
        from metercom.service.headend import HeadEnd
        from metercom.service.meters import LinkPool
        from metercom.service.store import Store
        from metercom.service.store.web import WebStore
        from metercom.sim.dlms import secret_environment, serve_fleet

        loop = asyncio.get_running_loop()
        running = self._running = _Running(asyncio.Event(), loop)
        async with contextlib.AsyncExitStack() as stack:
            iec = DemoFleet(len(IEC_METERS), seed=11)
            assert tuple(m.id for m in iec.meters) == IEC_METERS
            await iec.start()
            stack.push_async_callback(iec.close)
            houses = await serve_fleet(len(DLMS_METERS), profile="generic", seed=21, id_prefix="house")
            stack.callback(houses.close)
            shops = await serve_fleet(1, profile="india", seed=31, id_prefix="shop")
            stack.callback(shops.close)
            ports = {m: int(f.url.rsplit(":", 1)[1]) for m, f in zip(DLMS_METERS, houses.meters, strict=True)}
            text = _fleet_text(ports, int(shops.meters[0].url.rsplit(":", 1)[1]))
            config_path = self.directory / "fleet.toml"
            config_path.write_text(text, encoding="utf-8")
            store = await Store.open(self.directory / "store.db")
            stack.push_async_callback(store.close)
            configs = ConfigStore(store)
            await configs.apply(config_path, actor="tests")
            await self._seed_history(
                store, {m: f.device.meter for m, f in zip(DLMS_METERS, houses.meters, strict=True)}
            )
            env = {**os.environ, **secret_environment(), "METERCOM_WRONG_LLS": "not-the-password"}
            headend = HeadEnd(
                store,
                configs,
                links=LinkPool(iec.open),
                session_factory=MeterSessionFactory(state_dir=self.directory),
                stop_timeout_s=3.0,
                env=env,
            )
            await headend.start()
            stack.push_async_callback(headend.stop)
            # The household paid before the first reading (an empty account is cut at once).
            await headend.top_up(PREPAID_ACCOUNT, 10_000, "UPI-0001", requested_by="payments")
            for meter_id in IEC_METERS:
                headend.collector.request(meter_id, "optical")
            for meter_id in DLMS_METERS:
                headend.collector.request(meter_id, "live")
            headend.collector.request(BROKEN_METER, "billing")

            hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
            web = WebStore(store)
            for name, (role, meter_ids) in USERS.items():
                await web.add_user(name, hasher.hash(self.passwords[name]), role, meter_ids)
            app = create_app(headend, settings=WebSettings(timezone="Asia/Kolkata"), password_hasher=hasher)

            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            server = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none")
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
            try:
                async with asyncio.timeout(self.ready_timeout_s):
                    while not server.started:
                        if serving.done():
                            serving.result()
                        await asyncio.sleep(0.02)
                    await self._wait_read(headend)
                self.dashboard = Dashboard(
                    url=f"http://127.0.0.1:{port}",
                    passwords=dict(self.passwords),
                    directory=self.directory,
                    meters=(*IEC_METERS, *DLMS_METERS, BROKEN_METER),
                    config_text=text,
                )
                running.objects.update(headend=headend, store=store, app=app)
                self._ready.set()
                await running.stop.wait()
            finally:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(serving, 10)
                sock.close()

    @staticmethod
    async def _wait_read(headend: Any) -> None:
        """Until the household meters and the optical ones have been read once."""
        want = {*DLMS_METERS, *IEC_METERS}
        while True:
            done = {row.meter_id for row in headend.status() if row.last_read_at is not None}
            if want <= done:
                return
            await asyncio.sleep(0.1)

    @staticmethod
    async def _seed_history(store: Any, meters: dict[str, Any]) -> None:
        """Hourly import-register readings of the past days, from the simulated meters' own
        register model (see the module docstring)."""
        from metercom.model.obis import Obis
        from metercom.model.reading import Reading

        now = datetime.now(UTC)
        last = now.replace(minute=0, second=0, microsecond=0)
        obis = Obis.parse("1-0:1.8.0*255")
        for meter_id, meter in meters.items():
            rows = []
            for hours in range(HISTORY_DAYS * 24, 0, -1):
                at = last - timedelta(hours=hours - 1)
                wh = meter.energy_vector(at)[0] // _WH_MJ
                rows.append(Reading(obis, Decimal(wh), "Wh", captured_at=at))
            await store.save_readings(meter_id, rows, actor="history")


# -- the browser ------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser on Debian's Chromium (fresh profile, no network services)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


PHONE: Final = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: Final = {"viewport": {"width": 1440, "height": 960}, "device_scale_factor": 1}


def log_in(page: Any, dashboard: Dashboard, username: str) -> None:
    """Open the app and log in through the form."""
    page.goto(f"{dashboard.url}/#/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(dashboard.passwords[username])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#topbar:not([hidden])")

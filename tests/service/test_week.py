"""The head-end issue's integration test: a mixed simulated fleet (DLMS over the wrapper on
loopback TCP, IEC 62056-21 on a serial line, Modbus PZEM-004T and pmtr3 on one RS-485 bus)
collected over a simulated week on the virtual clock, across the Europe/Berlin change to summer
time, with links cut and meters without power for hours: at the end every 15-minute interval
of every DLMS load profile is stored exactly once, registers once per successful read, and the
store passes its integrity check.

Outages are longer than the load-profile plan's history (4 h), so the scheduled catch-up read
alone leaves a hole: gap recovery (the collector's ``on_profile_saved`` hook) must find it from
the stored time stamps and re-read exactly the missing ranges.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from metercom.clock import VirtualClock
from metercom.service.adapters import MeterSessionFactory
from metercom.service.collector import RetryPolicy
from metercom.service.config_model import LineConfig, MeterConfig
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import Borrowed, LinkPool
from metercom.service.store import Store
from metercom.sim.dlms import DlmsMeterDevice, build_meter, secret_environment
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.sim.modbus import build_bus, stop_serving
from metercom.transport import LineSettings, SimulatedLine, Transport, TransportServer, open_transport, serve

START = datetime(2026, 3, 25, tzinfo=UTC)
#: Simulated days (METERCOM_WEEK_DAYS overrides, for a quick local run).
DAYS = float(os.environ.get("METERCOM_WEEK_DAYS", "7"))
LP = "1-0:99.1.0*255"
Q = timedelta(minutes=15)


@pytest.fixture
def vclock() -> VirtualClock:
    # 1 ms of real time per virtual jump (test_headend uses 5 ms): a week has ~120k jumps.
    return VirtualClock(START, real_grace_s=0.001)


def fleet_text(dlms_urls: dict[str, str]) -> str:
    text = [
        """
[service]
name = "week"

[secrets]
guek = "env:METERCOM_SIM_GUEK"
gak = "env:METERCOM_SIM_GAK"

[[lines]]
id = "opt-1"
url = "serial:///dev/ttyWEEK0"
type = "serial"

[[lines]]
id = "rs485"
url = "serial:///dev/ttyWEEK1"
type = "rs485"
baud = 9600
format = "8N1"
response_timeout_s = 0.5
"""
    ]
    for meter_id, url in dlms_urls.items():
        text.append(
            f"""
[[meters]]
id = "{meter_id}"
protocol = "dlms"
url = "{url}"
address = {{ client = 1, logical = 1 }}
authentication = "high-gmac"
security = "authenticated-encrypted"
keys = {{ encryption = "secret:guek", authentication = "secret:gak" }}
device_profile = "generic"
groups = ["all", "dlms"]
"""
        )
    text.append(
        """
[[meters]]
id = "iec-1"
protocol = "iec21"
line = "opt-1"
address = { device = "1001" }
groups = ["all", "serial"]

[[meters]]
id = "pzem-1"
protocol = "modbus"
line = "rs485"
address = { unit = 1 }
device_profile = "pzem004t"
groups = ["all", "serial"]

[[meters]]
id = "p3-2"
protocol = "modbus"
line = "rs485"
address = { unit = 2 }
device_profile = "pmtr3"
groups = ["all", "serial"]

[[groups]]
id = "all"

[[groups]]
id = "dlms"

[[groups]]
id = "serial"

[[plans]]
id = "billing"
objects = ["1.8.0", "2.8.0", "21.8.0"]  # 21.8.0: L1 energy of the pmtr3

[[plans]]
id = "lp"
profiles = [{ obis = "1-0:99.1.0*255", history = "4h" }]

[[schedules]]
id = "hourly-billing"
group = "dlms"
plan = "billing"
every = "1h"

# Serial meters every 3 h: every character on a simulated line is a timer, and each virtual
# jump costs real time (VirtualClock.real_grace_s), so this keeps the week within a minute.
[[schedules]]
id = "billing-serial"
group = "serial"
plan = "billing"
every = "3h"

[[schedules]]
id = "hourly-lp"
group = "dlms"
plan = "lp"
every = "1h"
"""
    )
    return "\n".join(text)


class DlmsMeter:
    """A simulated DLMS meter on its own loopback port, with a power switch and a link to cut."""

    def __init__(self, device: DlmsMeterDevice) -> None:
        self.device = device
        self.powered = True
        self.server: TransportServer | None = None
        self.port = 0

    async def handler(self, transport: Transport) -> None:
        if not self.powered:
            await transport.close()  # no power: the modem's socket is dropped at once
            return
        await self.device.serve_wrapper(transport)

    async def listen(self) -> str:
        self.server = await serve(f"tcp://127.0.0.1:{self.port}", self.handler)
        self.port = int(self.server.url.rsplit(":", 1)[1])
        return f"tcp://127.0.0.1:{self.port}"

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


async def until(clock: VirtualClock, hours: float) -> None:
    await asyncio.sleep(max(0.0, (START + timedelta(hours=hours) - clock.now()).total_seconds()))


async def test_a_simulated_week_stores_every_interval_exactly_once(
    store_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    began = time.perf_counter()
    dlms = {
        "d-1": DlmsMeter(DlmsMeterDevice(build_meter("generic", clock=vclock, seed=11, serial="00000011"))),
        "d-2": DlmsMeter(DlmsMeterDevice(build_meter("generic", clock=vclock, seed=12, serial="00000012"))),
    }
    # d-2's clock runs 3 minutes ahead: its rows are on its own quarter hours
    d2 = dlms["d-2"].device.meter
    d2.set_meter_time(d2.meter_now() + timedelta(minutes=3))
    urls = {meter_id: await meter.listen() for meter_id, meter in dlms.items()}
    optical = SimulatedLine(LineSettings.parse("7E1", 300), name="opt-1")
    iec = Iec21Meter(Iec21MeterConfig())
    iec_task = asyncio.create_task(iec.serve(optical.b))
    rs485 = SimulatedLine(LineSettings(9600), name="rs485")
    bus = build_bus({1: "pzem004t", 2: "pmtr3"}, start=START)
    bus_task = bus.attach(rs485)
    sim_lines = {"opt-1": optical, "rs485": rs485}

    async def opener(line: LineConfig, meter: MeterConfig) -> Transport:
        if line.id in sim_lines:
            return Borrowed(sim_lines[line.id].a)
        return await open_transport(line.url, connect_timeout_s=line.connect_timeout_s)

    store = await Store.open(store_url)
    configs = ConfigStore(store)
    await configs.apply(fleet_text(urls), actor="test")
    headend = HeadEnd(
        store,
        configs,
        links=LinkPool(opener),
        session_factory=MeterSessionFactory(state_dir=tmp_path / "state"),
        env=secret_environment(),
        retry=RetryPolicy(transport_retries=2, transport_backoff_s=60.0),
    )
    await headend.start()

    events: list[tuple[float, Callable[[], Awaitable[None]]]] = []

    def at(hours: float, action: Callable[[], Awaitable[None] | None]) -> None:
        async def run() -> None:
            result = action()
            if result is not None:
                await result

        events.append((hours, run))

    def power(meter_id: str, on: bool) -> None:
        dlms[meter_id].powered = on

    # the link of d-1 is cut for 8 h, d-2 is without power for 10 h (over the DST change night),
    # the RS-485 bus is cut for 6 h and the optical line for 5 h, d-1 once more for 5 h
    at(10.5, dlms["d-1"].cut)
    at(18.5, dlms["d-1"].listen)
    at(72.25, lambda: power("d-2", False))  # 2026-03-28 00:15 UTC
    at(82.75, lambda: power("d-2", True))
    at(90.5, rs485.cut)
    at(96.5, rs485.restore)
    at(100.0, optical.cut)
    at(105.0, optical.restore)
    at(124.5, dlms["d-1"].cut)
    at(129.5, dlms["d-1"].listen)
    hours = DAYS * 24
    for when, action in sorted(events, key=lambda e: e[0]):
        if when >= hours - 1:
            break
        await until(vclock, when)
        await action()
    await until(vclock, hours - 0.1)
    await headend.schedules.stop()
    await headend.wait_idle()
    status = {s.meter_id: s for s in headend.status()}
    recovered = list(headend.gaps.history)
    await headend.stop()

    end = START + timedelta(hours=hours - 0.1)
    for meter_id in dlms:
        times = [r.capture_time for r in await store.profile_rows(meter_id, LP)]
        assert times == sorted(set(times)), meter_id  # once each
        steps = {b - a for a, b in itertools.pairwise(times)}
        assert steps == {Q}, (meter_id, [(a, b) for a, b in itertools.pairwise(times) if b - a != Q][:5])
        assert times[0] <= START - timedelta(hours=3)  # the first read, at 01:00, reaches back 4 h
        assert times[-1] >= end - timedelta(hours=1) - Q
        assert len(times) == (times[-1] - times[0]) // Q + 1
        assert status[meter_id].available
    cut = {"d-1"} | ({"d-2"} if hours > 83 else set())
    assert {r.meter_id for r in recovered if r.rows} == cut  # the holes were re-read
    assert all(not r.unrecoverable for r in recovered)

    def down(every: float, *spans: tuple[float, float]) -> int:
        """Fires (every ``every`` hours) that fall into the outages."""
        return sum(sum(1 for k in range(1, int(hours / every) + 1) if a <= k * every <= b) for a, b in spans)

    for meter_id, obis, every, lost in (
        ("d-1", "1-0:1.8.0*255", 1, down(1, (10.5, 18.5), (124.5, 129.5))),
        ("d-2", "1-0:1.8.0*255", 1, down(1, (72.25, 82.75))),
        ("iec-1", "1-0:1.8.0*255", 3, down(3, (100, 105))),
        ("pzem-1", "1-0:1.8.0*255", 3, down(3, (90.5, 96.5))),
        ("p3-2", "1-0:21.8.0*255", 3, down(3, (90.5, 96.5))),
    ):
        fires = int((hours - 0.1) / every)
        stamps = [r.capture_time for r in await store.readings(meter_id, obis=obis)]
        assert len(stamps) == len(set(stamps)), meter_id
        # once per successful fire: every fire outside the outages (one more may fall to the
        # retry back-off at an outage's edge, or be saved by a retry), none twice
        assert fires - lost - 1 <= len(stamps) <= fires - lost + 1, (meter_id, len(stamps), fires, lost)
    report = await store.check_integrity()
    assert report.ok, report.problems
    await store.close()
    await stop_serving(bus_task)
    iec_task.cancel()
    await asyncio.gather(iec_task, return_exceptions=True)
    for meter in dlms.values():
        await meter.cut()
    elapsed = time.perf_counter() - began
    print(f"simulated {DAYS:g} days in {elapsed:.1f} s real time")

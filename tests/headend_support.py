"""Set-up shared by the head-end tests (``tests/service``, ``tests/api``): fleet snippets, a
simulated meter on loopback, and a started head-end on a store.

Importable as ``headend_support`` (``tests`` is on pytest's ``pythonpath``; with
``--import-mode=importlib`` a conftest cannot be imported by name).

* :func:`dlms_meter_toml` / :data:`DLMS_SECRETS` - a generic DLMS household meter over HLS-GMAC
  with the simulator's keys, and the ``[secrets]`` it names; :func:`serve_dlms_meter` serves
  such a simulated meter on loopback TCP.
* :class:`OpticalLine` - a simulated IEC 62056-21 meter behind a simulated optical port, and
  the head-end's link opener for it.
* :func:`pmtr3_fleet`, :func:`serve_pmtr3`, :func:`swell`, :func:`until` - pmtr3 relay meters
  behind one Modbus TCP gateway on loopback, read every second; L2 swells to 260 V for the
  samples from t = 100 s to t = 199 s after :data:`PMTR3_START`.
* :func:`running_headend` - a store with a configuration applied and a started head-end on it,
  stopped and closed afterwards; :func:`store_with_meters` - a store that knows some meters,
  for the store's own tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from metercom.clock import Clock, VirtualClock
from metercom.service.adapters import MeterSessionFactory
from metercom.service.config_model import LineConfig, MeterConfig
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import Borrowed
from metercom.service.store import MeterRecord, Store
from metercom.sim.dlms import DlmsMeterDevice, build_meter
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.sim.modbus import ModbusBus, PhaseValues, build_bus
from metercom.transport import LineSettings, SimulatedLine, Transport, TransportServer, open_transport, serve

# -- DLMS household meters ---------------------------------------------------------------------------

DLMS_SECRETS = """
[secrets]
guek = "env:METERCOM_SIM_GUEK"
gak = "env:METERCOM_SIM_GAK"
"""


def dlms_meter_toml(meter_id: str, port: int, group: str) -> str:
    """A ``[[meters]]`` entry: the generic simulated DLMS meter over HLS-GMAC on loopback."""
    return f"""
[[meters]]
id = "{meter_id}"
protocol = "dlms"
url = "tcp://127.0.0.1:{port}"
address = {{ client = 1, logical = 1 }}
authentication = "high-gmac"
security = "authenticated-encrypted"
keys = {{ encryption = "secret:guek", authentication = "secret:gak" }}
device_profile = "generic"
groups = ["{group}"]
"""


def port_of(server: TransportServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@dataclass
class ServedMeter:
    """A simulated DLMS meter served on loopback TCP (close :attr:`server` when done)."""

    device: DlmsMeterDevice
    server: TransportServer

    @property
    def port(self) -> int:
        return port_of(self.server)


async def serve_dlms_meter(clock: Clock, seed: int) -> ServedMeter:
    """The generic simulated DLMS meter (serial number ``seed``, eight digits) on loopback."""
    device = DlmsMeterDevice(build_meter("generic", clock=clock, seed=seed, serial=f"{seed:08d}"))
    return ServedMeter(device, await serve("tcp://127.0.0.1:0", device.serve_wrapper))


# -- an IEC 62056-21 meter on an optical port ------------------------------------------------------


class OpticalLine:
    """A simulated optical line ``name`` (7E1, ``baud``) with a simulated IEC 62056-21 meter (the
    default configuration, device address 1000) at its far end, served until :meth:`close`.
    :meth:`open` is a :class:`~metercom.service.meters.LinkPool` opener: it lends the line
    ``name``, and opens any other line for real."""

    def __init__(self, name: str, baud: int = 300) -> None:
        self.name = name
        self.line = SimulatedLine(LineSettings.parse("7E1", baud), name=name)
        self.meter = Iec21Meter(Iec21MeterConfig())
        self.task = asyncio.create_task(self.meter.serve(self.line.b))

    async def open(self, line: LineConfig, meter: MeterConfig) -> Transport:  # noqa: ARG002 - LinkOpener
        if line.id == self.name:
            return Borrowed(self.line.a)
        return await open_transport(line.url, line=line.settings, connect_timeout_s=line.connect_timeout_s)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# -- pmtr3 relay meters behind a Modbus TCP gateway ----------------------------------------------------

PMTR3_START = datetime(2026, 3, 2, tzinfo=UTC)


def swell(phase: int, now: datetime) -> PhaseValues:
    """230 V, but L2 at 260 V from t = 100 s to t = 200 s."""
    t = (now - PMTR3_START).total_seconds()
    high = phase == 2 and 100 <= t < 200
    return PhaseValues(voltage_v=260.0 if high else 230.0, current_a=5.0, power_w=1150.0)


async def until(clock: VirtualClock, seconds: float) -> None:
    """Sleep until ``seconds`` after :data:`PMTR3_START` (at once if that has passed)."""
    await asyncio.sleep(max(0.0, (PMTR3_START + timedelta(seconds=seconds) - clock.now()).total_seconds()))


async def serve_pmtr3(units: Iterable[int]) -> tuple[ModbusBus, TransportServer]:
    """pmtr3 meters with :func:`swell`'s values at ``units`` behind one gateway on loopback."""
    bus = build_bus(dict.fromkeys(units, "pmtr3"), values=swell, start=PMTR3_START, refresh_period_s=0.0)
    return bus, await bus.serve_url("tcp://127.0.0.1:0", "tcp")


def pmtr3_fleet(
    port: int,
    meters: Mapping[str, int],
    *,
    name: str,
    objects: Sequence[str],
    every: str = "1s",
    plan_extra: str = "",
    extra: str = "",
) -> str:
    """A fleet of pmtr3 ``meters`` (id -> unit) behind the gateway at ``port``, group ``relays``,
    the plan ``instant`` of ``objects`` (and ``plan_extra``) read ``every``; ``extra`` follows
    (the rules)."""
    entries = "".join(
        f"""
[[meters]]
id = "{meter_id}"
protocol = "modbus"
line = "gw"
address = {{ unit = {unit} }}
device_profile = "pmtr3"
groups = ["relays"]
"""
        for meter_id, unit in meters.items()
    )
    codes = ", ".join(f'"{code}"' for code in objects)
    return f"""
[service]
name = "{name}"

[[lines]]
id = "gw"
url = "tcp://127.0.0.1:{port}"
type = "tcp"
response_timeout_s = 1
{entries}
[[groups]]
id = "relays"

[[plans]]
id = "instant"
objects = [{codes}]
{plan_extra}

[[schedules]]
id = "every-second"
group = "relays"
plan = "instant"
every = "{every}"
{extra}
"""


# -- the head-end -----------------------------------------------------------------------------------


@asynccontextmanager
async def running_headend(
    store_url: str | Path,
    text: str,
    state_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> AsyncIterator[HeadEnd]:
    """A store at ``store_url`` with ``text`` applied and a started head-end on it (sessions'
    state in ``state_dir``, ``options`` for :class:`HeadEnd`); stopped and closed afterwards.
    ``headend.store`` and ``headend.configs`` are the store and its configuration."""
    store = await Store.open(store_url)
    try:
        configs = ConfigStore(store, env=env)
        await configs.apply(text, actor="test")
        headend = HeadEnd(
            store, configs, session_factory=MeterSessionFactory(state_dir=state_dir), env=env, **options
        )
        await headend.start()
        try:
            yield headend
        finally:
            await headend.stop()
    finally:
        await store.close()


async def store_with_meters(url: str | Path, *meters: MeterRecord) -> Store:
    """A store at ``url`` with a configuration version that names ``meters`` (no fleet text)."""
    store = await Store.open(url)
    await store.apply_config_version(
        text="# test", sha256="0" * 64, source="test", actor="tester", summary="", meters=list(meters)
    )
    return store

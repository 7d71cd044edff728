"""``metercom demo``: a simulated fleet collected by the real head-end, with no set-up.

Rule: the demo is the product, not a mock-up of it. It starts simulated meters in this process,
writes an ordinary fleet configuration file to a directory of its own, and runs
:class:`~metercom.service.headend.HeadEnd` on a SQLite store there, on the real clock, with a
short schedule: the same configuration validation, scheduler (one conversation at a time per
serial line), collector and store as ``metercom serve``. Only the links are simulated: each
optical port in the file maps to a :class:`~metercom.transport.SimulatedLine` that keeps real
baud-rate timing, with a simulated IEC 62056-21 meter (live values from the load model) on the
other end.

Which meters: the protocols the head-end has an adapter for (:func:`head_end_protocols`).
Today that is IEC 62056-21; DLMS (TCP loopback) and Modbus (simulated RS-485 bus) meters join
the demo fleet when their head-end adapters are in the service.

While it runs, a live table refreshes on a terminal (plain progress lines otherwise); after
``--duration`` seconds (or Ctrl-C) it stops the head-end cleanly and prints what was collected
and where the store is. ``metercom demo --iec21`` is the single-meter optical-port demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from metercom.cli.headend import status_file_for, write_status_snapshot
from metercom.clock import Clock, SystemClock, run_with
from metercom.errors import InputError
from metercom.service.adapters import MeterSessionFactory
from metercom.service.config_model import LineConfig, MeterConfig
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import Borrowed, LinkPool
from metercom.service.status import MeterStatus
from metercom.service.store import Store, StoredReading
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.sim.iec21_live import live_readout
from metercom.sim.load import Household, LoadConfig, LoadModel
from metercom.transport import LineSettings, SimulatedLine, Transport, open_transport

__all__ = [
    "DemoFleet",
    "demo_config_text",
    "head_end_protocols",
    "plan_of",
    "register_demo",
    "run_fleet_demo",
]

_SubParsers = Any

#: The demo meter with a prepaid account (and the consumer login of the dashboard).
_PREPAID_METER: Final = "dlms-01"
_NAMES: Final = {"dlms": "DLMS", "modbus": "Modbus", "iec21": "IEC 62056-21"}
_SUMMARY_HEADERS: Final = (
    "meter",
    "protocol",
    "line",
    "reads ok",
    "failed",
    "readings",
    "profile rows",
    "+A 1.8.0",
    "voltage",
    "last read",
)
_LIVE_HEADERS: Final = ("meter", "line", "ok", "failed", "last read", "next read", "state")


def head_end_protocols() -> frozenset[str]:
    """Protocols the head-end can read now (its adapters; see :mod:`metercom.service.adapters`)."""
    try:
        import metercom.service.adapters  # noqa: F401 - only whether the adapters are there
    except ImportError:
        return frozenset({"iec21"})
    return frozenset({"iec21", "dlms", "modbus"})


def _environment() -> dict[str, str]:
    import os

    from metercom.sim.dlms import secret_environment

    return {**os.environ, **secret_environment()}


# -- the simulated fleet ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoMeter:
    id: str
    protocol: str
    line: str
    address: str


class DemoFleet:
    """The simulated meters and the links to them: IEC 62056-21 meters, one per simulated optical
    port; DLMS meters on their own loopback TCP ports (IP wrapper, LLS reader); Modbus units
    (PZEM-004T) on one simulated RS-485 bus at 9600 Bd (RTU)."""

    def __init__(
        self,
        iec21: int = 3,
        *,
        dlms: int = 0,
        modbus: int = 0,
        clock: Clock | None = None,
        seed: int = 1,
    ) -> None:
        if iec21 + dlms + modbus < 1:
            raise InputError("the demo needs at least one meter")
        self.meters: list[DemoMeter] = []
        self.lines: dict[str, SimulatedLine] = {}
        self._sims: dict[str, Iec21Meter] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Any] = []
        self._clock = clock or SystemClock()
        self._seed = seed
        self.dlms_count, self.modbus_count = dlms, modbus
        self.dlms_urls: list[str] = []
        for i in range(iec21):
            line_id = f"optical-{i + 1}"
            self.meters.append(DemoMeter(f"iec-{i + 1:02d}", "iec21", line_id, f"{7000 + i}"))
        for i in range(dlms):
            self.meters.append(DemoMeter(f"dlms-{i + 1:02d}", "dlms", "", ""))
        for i in range(modbus):
            self.meters.append(DemoMeter(f"modbus-{i + 1:02d}", "modbus", "rs485-1", f"{i + 1}"))

    async def _start_dlms(self) -> None:
        from metercom.sim.dlms import serve_fleet

        fleet = await serve_fleet(
            self.dlms_count, "tcp://127.0.0.1:0", profile="india", seed=self._seed, clock=self._clock
        )
        self._closers.append(fleet)
        self.dlms_urls = [m.url for m in fleet.meters]

    def _start_modbus(self) -> None:
        from metercom.sim.modbus import build_bus

        bus = build_bus({i + 1: "pzem004t" for i in range(self.modbus_count)})
        line = self.lines["rs485-1"] = SimulatedLine(LineSettings.parse("8N1", 9600), name="rs485-1")
        self._tasks.append(asyncio.create_task(bus.serve(line.b, "rtu"), name="simulated modbus bus"))

    async def start(self) -> None:
        if self.dlms_count:
            await self._start_dlms()
        if self.modbus_count:
            self._start_modbus()
        for n, meter in enumerate(m for m in self.meters if m.protocol == "iec21"):
            line = SimulatedLine(LineSettings.parse("7E1", 300), name=meter.line)
            # Started a month ago, so the energy registers have something to show.
            start = self._clock.now() - timedelta(days=30)
            model = LoadModel(LoadConfig(Household.seed_example()), seed=self._seed + n, start=start)
            sim = Iec21Meter(
                Iec21MeterConfig(
                    ident=f"DEMO{7000 + n:04d}",
                    device_address=meter.address,
                    readout_provider=live_readout(model, self._clock, meter_number=f"EM7{n:010d}"),
                )
            )
            self.lines[meter.line], self._sims[meter.line] = line, sim
            self._tasks.append(asyncio.create_task(sim.serve(line.b), name=f"simulated {meter.id}"))

    async def open(self, line: LineConfig, meter: MeterConfig) -> Transport:  # noqa: ARG002 - LinkOpener
        if line.id in self.lines:
            return Borrowed(self.lines[line.id].a)
        return await open_transport(line.url, line=line.settings, connect_timeout_s=line.connect_timeout_s)

    async def close(self) -> None:
        for fleet in self._closers:
            fleet.close()
            with contextlib.suppress(Exception):
                await fleet.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for line in self.lines.values():
            with contextlib.suppress(Exception):
                await line.close()


_DLMS_OBJECTS: Final = (
    '"1-0:1.8.0*255", "1-0:2.8.0*255", "1-0:12.7.0*255", "1-0:11.7.0*255",\n'
    '           "1-0:13.7.0*255", "1-0:14.7.0*255", "1-0:1.7.0*255"'
)
_DLMS_PROFILE: Final = (
    'profiles = [{ obis = "1-0:99.1.0*255", history = "1d" }]   # block load profile, a day back'
)
#: Plans by group: (plan id, plan body). Every plan asks for the codes the meters' own profiles
#: give: the simulated IEC meters' readout (32/31/21.7.0 for L1, kW and kWh), the IS 15959
#: single-phase DLMS meters (12/11/1.7.0) and the PZEM-004T (12.7.0 voltage, 11.7.0 current,
#: 1.7.0 power: model/profiles/modbus/pzem004t.toml). The prepaid meter's plan also reads the
#: load switch (0-0:96.3.10.255), the other DLMS meters' reader association may not operate it.
_PLANS: Final = {
    "iec21": (
        "optical",
        'objects = ["1.8.0", "2.8.0", "1.7.0", "32.7.0", "31.7.0", "21.7.0", "13.7.0", "14.7.0"]',
    ),
    "dlms": ("dlms", f"objects = [{_DLMS_OBJECTS}]\n{_DLMS_PROFILE}"),
    "prepaid": ("prepaid", f'objects = [{_DLMS_OBJECTS}, "0-0:96.3.10*255"]\n{_DLMS_PROFILE}'),
    "modbus": ("modbus", 'objects = ["1.8.0", "1.7.0", "12.7.0", "11.7.0", "13.7.0", "14.7.0"]'),
}


def _group_of(meter: DemoMeter) -> str:
    return "prepaid" if meter.id == _PREPAID_METER else meter.protocol


def plan_of(meter: DemoMeter) -> str:
    """The plan that reads a demo meter."""
    return _PLANS[_group_of(meter)][0]


def demo_config_text(fleet: DemoFleet, *, every_s: int) -> str:
    """The fleet as an ordinary configuration file (docs/configuration.md)."""
    out = [
        "# metercom demo fleet: written by `metercom demo`; the links are simulated.",
        "format_version = 1",
        "",
        "[service]",
        'name = "metercom-demo"',
        'timezone = "UTC"',
        "",
    ]
    protocols = [p for p in ("iec21", "dlms", "modbus") if any(m.protocol == p for m in fleet.meters)]
    if "dlms" in protocols:
        out += [
            "[secrets]",
            'sim_lls = "env:METERCOM_SIM_LLS"   # the simulator\'s test password',
            'sim_guek = "env:METERCOM_SIM_GUEK" # ... and its test keys',
            'sim_gak = "env:METERCOM_SIM_GAK"',
            "",
        ]
    for meter in fleet.meters:
        if meter.protocol == "iec21":
            out += [
                "[[lines]]",
                f'id = "{meter.line}"',
                f'description = "simulated optical port of {meter.id}"',
                f'url = "serial:///dev/metercom-demo/{meter.line}"',
                'type = "serial"',
                "baud = 300",
                'format = "7E1"',
                "",
            ]
    if "modbus" in protocols:
        out += [
            "[[lines]]",
            'id = "rs485-1"',
            'description = "simulated RS-485 bus, Modbus RTU"',
            'url = "serial:///dev/metercom-demo/rs485-1"',
            'type = "rs485"',
            "baud = 9600",
            'format = "8N1"',
            "response_timeout_s = 1.0",
            "",
        ]
    dlms_urls = iter(fleet.dlms_urls)
    for meter in fleet.meters:
        out += ["[[meters]]", f'id = "{meter.id}"', f'protocol = "{meter.protocol}"']
        if meter.protocol == "iec21":
            out += [f'line = "{meter.line}"', f'address = {{ device = "{meter.address}" }}']
        elif meter.protocol == "dlms" and meter.id == _PREPAID_METER:
            # The utility association (HLS-GMAC): it may operate the load switch, so this meter
            # is the demo's prepaid meter (disconnect, reconnect, top-up).
            out += [
                f'url = "{next(dlms_urls)}"',
                "address = { client = 48, logical = 1 }",
                'authentication = "high-gmac"',
                'security = "authenticated-encrypted"',
                'keys = { encryption = "secret:sim_guek", authentication = "secret:sim_gak" }',
                'device_profile = "india"',
                'description = "prepaid household (simulated)"',
            ]
        elif meter.protocol == "dlms":
            out += [
                f'url = "{next(dlms_urls)}"',
                "address = { client = 32, logical = 1 }",
                'authentication = "low"',
                'password = "secret:sim_lls"',
                'device_profile = "india"',
            ]
        else:
            out += [
                f'line = "{meter.line}"',
                f"address = {{ unit = {meter.address} }}",
                'device_profile = "pzem004t"',
            ]
        out += [f'groups = ["{_group_of(meter)}"]', ""]
    groups = [
        g for g in ("iec21", "prepaid", "dlms", "modbus") if any(_group_of(m) == g for m in fleet.meters)
    ]
    for group in groups:
        plan, body = _PLANS[group]
        out += ["[[groups]]", f'id = "{group}"', "", "[[plans]]", f'id = "{plan}"', body, ""]
        out += [
            "[[schedules]]",
            f'id = "{plan}-fast"',
            f'group = "{group}"',
            f'plan = "{plan}"',
            f'every = "{every_s}s"',
            "",
        ]
    if any(m.id == _PREPAID_METER for m in fleet.meters):
        out += [
            "[prepaid]",
            'currency = "INR"',
            'timezone = "Asia/Kolkata"',
            "table = { 5 = 500, 10 = 650, 30 = 900, 100 = 1175 }",
            "unit_wh = 10",
            "",
            "[[prepaid.accounts]]",
            'account = "acc-1"',
            f'meter = "{_PREPAID_METER}"',
            "",
        ]
    return "\n".join(out)


# -- running it ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DemoResult:
    directory: Path
    store_path: Path
    config_path: Path
    reads_ok: int
    reads_failed: int
    readings: int
    elapsed_s: float
    integrity_ok: bool


def _when(status: MeterStatus, attr: str) -> str:
    value = getattr(status, attr)
    return value.strftime("%H:%M:%S") if value is not None else "-"


def _state(status: MeterStatus) -> str:
    if status.quarantined:
        return "quarantined"
    if not status.available:
        return "unavailable"
    if status.last_error and status.consecutive_failures:
        return f"retrying ({status.last_error_class})"
    return "ok" if status.last_read_at else "waiting"


class _Display:
    """A live table on a terminal, plain lines elsewhere."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._drawn = 0
        self._last_line = ""

    def show(
        self, elapsed_s: float, duration_s: float | None, rows: Sequence[MeterStatus], readings: int
    ) -> None:
        from metercom.cli.output import render_table

        ok = sum(r.reads_ok for r in rows)
        failed = sum(r.reads_failed for r in rows)
        limit = f"/{duration_s:.0f}" if duration_s is not None else ""
        head = (
            f"[{elapsed_s:5.1f}{limit} s] {len(rows)} meters: {ok} reads ok, {failed} failed, "
            f"{readings} readings stored"
        )
        if not self.live:
            if head.split("] ", 1)[1] != self._last_line:
                print(head, file=self.out, flush=True)
                self._last_line = head.split("] ", 1)[1]
            return
        table = render_table(
            _LIVE_HEADERS,
            [
                (
                    r.meter_id,
                    r.line_id,
                    r.reads_ok,
                    r.reads_failed,
                    _when(r, "last_read_at"),
                    _when(r, "next_read_at"),
                    _state(r),
                )
                for r in rows
            ],
        )
        text = head + "\n" + table
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1


async def run_fleet_demo(
    out: TextIO,
    *,
    duration_s: float | None = 20.0,
    every_s: int = 5,
    iec21: int = 3,
    dlms: int = 3,
    modbus: int = 2,
    directory: Path | None = None,
    live: bool | None = None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    web: str | None = None,
) -> DemoResult:
    """Run the demo; see the module docstring. ``duration_s=None`` runs until Ctrl-C (or
    ``stop``); ``web`` serves the dashboard and REST API (``""``: at 127.0.0.1:8080, or
    ``"HOST:PORT"``) with demo users whose one-time passwords are printed."""
    clock = clock or SystemClock()
    folder = directory or Path(tempfile.mkdtemp(prefix="metercom-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    config_path, store_path = folder / "fleet.toml", folder / "store.db"
    supported = head_end_protocols()
    fleet = DemoFleet(
        iec21,
        dlms=dlms if "dlms" in supported else 0,
        modbus=modbus if "modbus" in supported else 0,
        clock=clock,
    )
    await fleet.start()
    config_path.write_text(demo_config_text(fleet, every_s=every_s), encoding="utf-8")
    parts = [f"{iec21} IEC 62056-21 meters on simulated optical ports (300 -> 9600 Bd)"]
    if fleet.dlms_count:
        parts.append(f"{fleet.dlms_count} DLMS meters on loopback TCP (IP wrapper, LLS)")
    if fleet.modbus_count:
        parts.append(f"{fleet.modbus_count} Modbus units on a simulated RS-485 bus (RTU, 9600 Bd)")
    print(
        f"metercom demo: a simulated fleet of {len(fleet.meters)} meters: {'; '.join(parts)}.\n"
        f"The head-end reads every meter every {every_s} s "
        f"{'until Ctrl-C' if duration_s is None else f'for {duration_s:.0f} s'} on the real clock; "
        "the serial lines keep real baud-rate timing.",
        file=out,
    )
    missing = {"dlms", "modbus"} - supported
    if missing:
        print(
            f"({' and '.join(_NAMES[p] for p in sorted(missing))} meters join the demo when the "
            "head-end has their adapters.)",
            file=out,
        )
    print(f"configuration {config_path}\nstore         {store_path} (SQLite)\n", file=out, flush=True)
    display = _Display(out, live=out.isatty() if live is None else live)
    stop_event = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop_event.set)
    store = await Store.open(store_path)
    started = loop.time()
    try:
        configs = ConfigStore(store)
        await configs.apply(config_path, actor="metercom demo")
        headend = HeadEnd(
            store,
            configs,
            clock=clock,
            links=LinkPool(fleet.open),
            session_factory=MeterSessionFactory(state_dir=folder),
            stop_timeout_s=3.0,
            env=_environment(),
        )
        await headend.start()
        # The schedule fires first at the next multiple of every_s; read everything once now.
        for meter in fleet.meters:
            headend.collector.request(meter.id, plan_of(meter))
        server = await _start_web(headend, store, fleet, web, out) if web is not None else None
        try:
            while not stop_event.is_set():
                elapsed = loop.time() - started
                if duration_s is not None and elapsed >= duration_s:
                    break
                readings = await _count_readings(store)
                display.show(elapsed, duration_s, headend.status(), readings)
                left = 1.0 if duration_s is None else min(1.0, max(0.05, duration_s - elapsed))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await stop_event.wait()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
            rows = headend.status()
            if server is not None:
                await server.stop()
            await headend.stop()
            # What `metercom status` shows beside the store: the counters of this run.
            snapshot = status_file_for(str(store_path))
            if snapshot is not None:
                with contextlib.suppress(OSError):
                    write_status_snapshot(snapshot, headend, running=False)
        elapsed = loop.time() - started
        display.show(elapsed, duration_s, headend.status(), await _count_readings(store))
        summary, readings = await _summary(store, rows)
        integrity = await store.check_integrity()
    finally:
        await store.close()
        await fleet.close()
    from metercom.cli.output import render_table

    ok, failed = sum(r.reads_ok for r in rows), sum(r.reads_failed for r in rows)
    print(
        f"\ncollected in {elapsed:.1f} s: {ok} reads ok, {failed} failed, {readings} readings stored",
        file=out,
    )
    print(render_table(_SUMMARY_HEADERS, summary), file=out)
    print(
        f"\nstore integrity check: {'ok' if integrity.ok else 'FAILED: ' + '; '.join(integrity.problems)}\n"
        f"store:  {store_path}\nconfig: {config_path}\n"
        f"look:   metercom status --store {store_path}\n"
        f"serve:  metercom serve --config {config_path}   (the file names simulated ports: "
        "edit its lines to point at real ones)",
        file=out,
        flush=True,
    )
    return DemoResult(folder, store_path, config_path, ok, failed, readings, elapsed, integrity.ok)


async def _start_web(headend: HeadEnd, store: Store, fleet: DemoFleet, listen: str, out: TextIO) -> Any:
    """Serve the dashboard; create the demo's users with one-time passwords and print them."""
    from metercom.cli.output import render_table
    from metercom.cli.web import WebServer, ensure_demo_users, web_settings

    prepaid = any(m.id == _PREPAID_METER for m in fleet.meters)
    if prepaid:  # an opening credit, so the household starts with its supply on
        await headend.top_up("acc-1", 1000, "demo-opening-credit", requested_by="metercom demo")
    users = await ensure_demo_users(store, _PREPAID_METER if prepaid else fleet.meters[0].id)
    server = WebServer(headend, web_settings(headend, listen or None), stop_timeout_s=3.0)
    await server.start()
    print(f"dashboard and REST API: {server.url}   (API schema: {server.url}/api/v1/openapi.json)", file=out)
    print("log in with these one-time passwords (new ones at every start of the demo):", file=out)
    print(render_table(("user", "role", "password"), users), file=out)
    print(file=out, flush=True)
    return server


async def _count_readings(store: Store) -> int:
    from sqlalchemy import func, select

    from metercom.service.store.tables import readings

    def job(conn: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(readings)).scalar() or 0)

    return await store._run("count readings", job, write=False)


async def _summary(store: Store, rows: Sequence[MeterStatus]) -> tuple[list[Sequence[object]], int]:
    out: list[Sequence[object]] = []
    total = 0
    for row in rows:
        stored = await store.readings(row.meter_id)
        total += len(stored)
        profile = 0
        if row.protocol == "dlms":
            profile = len(await store.profile_rows(row.meter_id, "1-0:99.1.0*255"))
        when = row.last_read_at.strftime("%H:%M:%S") if row.last_read_at else "-"
        energy = _last(stored, ":1.8.0*255")
        voltage = _last(stored, ":32.7.0*255")
        if voltage == "-":
            voltage = _last(stored, ":12.7.0*255")
        out.append(
            (
                row.meter_id,
                row.protocol,
                row.line_id,
                row.reads_ok,
                row.reads_failed,
                len(stored),
                profile or "-",
                energy,
                voltage,
                when,
            )
        )
    return out, total


def _last(stored: Sequence[StoredReading], suffix: str) -> str:
    values = [r for r in stored if r.obis.endswith(suffix)]
    if not values:
        return "-"
    unit = f" {values[-1].unit}" if values[-1].unit else ""
    return f"{values[-1].value!s}{unit}"


# -- the command --------------------------------------------------------------------------------


def _demo_clock() -> Clock | None:
    """The clock the fleet demo runs on: the real one (tests swap in a VirtualClock)."""
    return None


def register_demo(subparsers: _SubParsers) -> None:
    """Add ``metercom demo [--iec21] [--duration S]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="collect a simulated fleet with the head-end (no hardware needed)",
        description=(
            "Start simulated meters in this process, write their configuration to a temporary "
            "directory and collect them with the head-end on a SQLite store there, showing progress; "
            "then print what was collected. --iec21: read one simulated optical-port meter instead."
        ),
    )
    parser.add_argument("--iec21", action="store_true", help="the single-meter IEC 62056-21 readout demo")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="run this long (default: until Ctrl-C with the dashboard, 20 s with --no-web)",
    )
    parser.add_argument("--every", type=int, default=5, metavar="S", help="read every S seconds (default 5)")
    parser.add_argument("--iec", type=int, default=3, metavar="N", help="simulated IEC 62056-21 meters (3)")
    parser.add_argument("--dlms", type=int, default=3, metavar="N", help="simulated DLMS meters (3)")
    parser.add_argument("--modbus", type=int, default=2, metavar="N", help="simulated Modbus units (2)")
    parser.add_argument(
        "--dir", type=Path, metavar="DIR", help="write config and store here (default: a new temp dir)"
    )
    from metercom.cli.web import add_web_arguments

    add_web_arguments(parser)
    parser.set_defaults(handler=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    if args.iec21:
        from metercom.cli import iec21

        return iec21.run_demo(args)
    duration = args.duration if args.duration is not None else (20.0 if args.no_web else None)
    if (
        (duration is not None and duration <= 0)
        or args.every < 1
        or min(args.iec, args.dlms, args.modbus) < 0
    ):
        raise InputError("--duration must be positive, --every at least 1, meter counts not negative")
    clock = _demo_clock()
    started = time.monotonic()
    result = run_with(
        clock,
        lambda: run_fleet_demo(
            sys.stdout,
            duration_s=duration,
            every_s=args.every,
            iec21=args.iec,
            dlms=args.dlms,
            modbus=args.modbus,
            directory=args.dir,
            clock=clock,
            web=None if args.no_web else (args.listen or ""),
        ),
    )
    del started
    return 0 if result.integrity_ok and result.reads_ok > 0 else 7

"""``metercom read modbus``, ``metercom scan modbus`` and ``metercom simulate modbus``.

Rule: the CLI wires user input to :class:`~metercom.session.modbus.ModbusSession` and
:class:`~metercom.sim.modbus.ModbusBus` and holds no protocol logic. Errors are left to
``cli/main.py``, which maps the error classes to exit codes (2 usage, 3 protocol/CRC, 4 link or
time-out, 5 Modbus exception response). Results go to stdout, as a table or as JSON
(``--json``); progress goes to stderr only when it is a terminal.

Theory: each command runs one asyncio event loop. ``read`` opens the URL's link, optionally
runs commands (set the clock, reset energy, change the address), reads the device through its
profile and closes the link; ``scan`` asks every unit in a range for each profile's
identification registers; ``simulate`` serves a bus of simulated units until Ctrl-C (with
``--meters N``: a fleet, :mod:`metercom.sim.modbus_fleet`, units 1..N on the one port by
default, with fleet faults and a head-end configuration export). Framing
follows the URL: ``tcp://`` speaks Modbus TCP, anything else RTU; ``--framing rtu`` on a
``tcp://`` URL talks RTU through a transparent serial gateway.

The lead wires ``register_read``, ``register_scan`` and ``register_simulate`` into
``cli/main.py`` under ``read``, ``scan`` and ``simulate``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TextIO

from metercom.cli.output import Progress, print_json, render_table
from metercom.clock import current_clock
from metercom.errors import InputError
from metercom.model.modbus_profile import load_modbus_profile, profile_names
from metercom.model.reading import Reading, ReadingValue
from metercom.session.modbus import Framing, ModbusSession, ScanResult, open_modbus
from metercom.sim.fleet import Faults, run_fleets
from metercom.sim.modbus import LoadModelValues, ModbusBus, PhaseValueSource, SimulatedModbusDevice
from metercom.sim.modbus_fleet import serve_modbus_fleet
from metercom.transport import LineSettings

__all__ = [
    "parse_units",
    "register_read",
    "register_scan",
    "register_simulate",
    "run_read",
    "run_scan",
    "simulate",
]

_HEADERS = ("code", "name", "value", "unit", "time")
_UNIT_SPEC = re.compile(r"^(\d{1,3})(?:-(\d{1,3}))?(?:@([\w.-]+))?$")

# argparse's sub-parser action: its add_parser() is what we call.
_SubParsers = Any


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _unit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 247:
        raise argparse.ArgumentTypeError(f"a Modbus unit address is 1..247, got {text!r}")
    return int(text)


def parse_units(specs: Sequence[str], default_device: str | None = None) -> list[tuple[int, str | None]]:
    """``["1", "2-4", "10@pmtr3"]`` -> ``[(1, dev), (2, dev), (3, dev), (4, dev), (10, "pmtr3")]``.

    Raises :class:`InputError` for a malformed spec, a unit outside 1..247 or a repeated unit.
    """
    out: list[tuple[int, str | None]] = []
    seen: set[int] = set()
    for spec in specs:
        for part in spec.split(","):
            m = _UNIT_SPEC.match(part.strip())
            if m is None:
                raise InputError(
                    f"not a unit spec: {part!r} (expected N, N-M, or N@DEVICE, e.g. 1-10 or 20@pmtr3)"
                )
            first = int(m[1])
            last = int(m[2]) if m[2] else first
            if not 1 <= first <= last <= 247:
                raise InputError(f"unit addresses are 1..247 in ascending ranges, got {part!r}")
            for unit in range(first, last + 1):
                if unit in seen:
                    raise InputError(f"unit {unit} is given twice")
                seen.add(unit)
                out.append((unit, m[3] or default_device))
    return out


def _add_link_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        metavar="URL",
        help="the link: /dev/ttyUSB0[?baud=9600], serial:///dev/ttyUSB0, tcp://HOST:PORT (Modbus TCP), "
        "socket://HOST:PORT, rfc2217://HOST:PORT",
    )
    parser.add_argument(
        "--framing",
        choices=("rtu", "tcp"),
        default=None,
        help="rtu or tcp (MBAP); default: tcp for tcp:// URLs, rtu otherwise (rtu over tcp:// "
        "talks through a transparent serial gateway)",
    )
    parser.add_argument(
        "--baud", type=int, default=None, metavar="N", help="serial speed (default 9600, or the URL's baud=)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _line(args: argparse.Namespace) -> LineSettings | None:
    return None if args.baud is None else LineSettings(args.baud)


# -- read ------------------------------------------------------------------------------------------


def register_read(subparsers: _SubParsers) -> None:
    """Add ``metercom read modbus URL --device D --unit N ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "modbus",
        help="read a Modbus device (PZEM-004T, pmtr3) over RTU or TCP",
        description="Read a device through its profile and print its values with OBIS codes and units.",
    )
    _add_link_options(parser)
    parser.add_argument(
        "--device",
        default="pzem004t",
        metavar="PROFILE",
        help=f"device profile: {', '.join(profile_names())} or a .toml file (default pzem004t)",
    )
    parser.add_argument("--unit", type=_unit, default=1, metavar="N", help="unit address 1..247 (default 1)")
    parser.add_argument(
        "--timeout", type=_positive_float, default=1.0, metavar="S", help="reply timeout (default 1 s)"
    )
    parser.add_argument(
        "--retries", type=_non_negative_int, default=2, metavar="N", help="retries per request (default 2)"
    )
    parser.add_argument("--set-clock", action="store_true", help="set the device clock to now first (pmtr3)")
    parser.add_argument("--reset-energy", action="store_true", help="reset the energy counter(s) first")
    parser.add_argument(
        "--set-address", type=_unit, default=None, metavar="N", help="give the device address N first"
    )
    parser.add_argument("--events", action="store_true", help="also print the event log (pmtr3)")
    parser.set_defaults(handler=_read_command)


def _read_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_read(args, sys.stdout))


async def run_read(args: argparse.Namespace, out: TextIO) -> int:
    """``metercom read modbus``: the handler's body, testable on any event loop."""
    profile = load_modbus_profile(args.device)
    session = await open_modbus(
        args.url, framing=args.framing, line=_line(args), timeout_s=args.timeout, retries=args.retries
    )
    notes: list[str] = []
    async with session:
        device = session.device(args.unit, profile)
        if args.set_address is not None:
            device = await device.change_address(args.set_address)
            notes.append(f"address changed to {device.unit}")
        if args.set_clock:
            notes.append(f"clock set to {(await device.set_clock()).isoformat()}")
        if args.reset_energy:
            await device.reset_energy()
            notes.append("energy reset")
        readings = await device.read()
        events = await device.read_events() if args.events else []
    if args.json:
        summary: dict[str, object] = {
            "url": args.url,
            "unit": device.unit,
            "device": profile.name,
            "readings": [reading.to_json() for reading in readings],
        }
        if notes:
            summary["actions"] = notes
        if args.events:
            summary["events"] = [event.to_json() for event in events]
        print_json(summary, out)
        return 0
    print(f"{profile.title}  unit {device.unit}  {args.url}", file=out)
    for note in notes:
        print(note, file=out)
    print(render_table(_HEADERS, table_rows(readings)), file=out)
    if args.events:
        rows = [(e.seq, e.time.isoformat(sep=" "), e.name, e.detail) for e in events]
        print(render_table(("seq", "time", "event", "detail"), rows), file=out)
    return 0


def _text(value: ReadingValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, str)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value.isoformat(sep=" ")


def table_rows(readings: Sequence[Reading]) -> list[tuple[str, str, str, str, str]]:
    """One row per reading: code (OBIS or point name), name, value, unit, device time."""
    rows = []
    for reading in readings:
        stamp = reading.captured_at.isoformat(sep=" ") if reading.captured_at else ""
        name = reading.name or reading.address
        rows.append((reading.label, name, _text(reading.value), reading.unit or "", stamp))
    return rows


# -- scan ------------------------------------------------------------------------------------------


def register_scan(subparsers: _SubParsers) -> None:
    """Add ``metercom scan modbus URL ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "modbus",
        help="find the Modbus devices on a bus and the profile each matches",
        description=(
            "Ask every unit address in the range for each profile's identification registers. "
            "A unit that does not answer within --timeout is taken as absent."
        ),
    )
    _add_link_options(parser)
    parser.add_argument(
        "--units",
        default="1-247",
        metavar="SPEC",
        help="addresses to try, e.g. 1-247 or 1-10,20 (default 1-247)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=0.2,
        metavar="S",
        help="reply timeout per unit (default 0.2 s; enough at 9600 Bd, more for modems)",
    )
    parser.set_defaults(handler=_scan_command)


def _scan_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_scan(args, sys.stdout))


async def run_scan(args: argparse.Namespace, out: TextIO, *, progress: Progress | None = None) -> int:
    """``metercom scan modbus``: the handler's body."""
    units = [unit for unit, _ in parse_units([args.units])]
    progress = progress or Progress()
    session = await open_modbus(args.url, framing=args.framing, line=_line(args), retries=0)

    def on_result(result: ScanResult) -> None:
        progress.update(f"found unit {result.unit} ({result.profile or 'unknown'})")

    async with session:
        found = await session.scan(units, timeout_s=args.timeout, on_result=on_result)
    progress.done()
    if args.json:
        print_json({"url": args.url, "units": [r.to_json() for r in found]}, out)
        return 0
    print(f"{len(found)} device(s) on {args.url} (units {args.units})", file=out)
    if found:
        rows = [(r.unit, r.profile or "unknown", r.detail) for r in found]
        print(render_table(("unit", "profile", "detail"), rows), file=out)
    return 0


# -- simulate --------------------------------------------------------------------------------------


def register_simulate(subparsers: _SubParsers) -> None:
    """Add ``metercom simulate modbus --device D --unit N ... --listen URL | --pty``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "modbus",
        help="serve simulated Modbus devices (PZEM-004T, pmtr3) over TCP or a pty",
        description="Serve one bus of simulated units until Ctrl-C.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--listen", metavar="URL", help="tcp://127.0.0.1:PORT (port 0: any free port); Modbus TCP by default"
    )
    where.add_argument(
        "--pty", action="store_true", help="serve RTU on a new pseudo-terminal; prints its path"
    )
    parser.add_argument(
        "--device",
        default="pzem004t",
        metavar="PROFILE",
        help=f"profile of the units: {', '.join(profile_names())} (default pzem004t)",
    )
    parser.add_argument(
        "--unit",
        action="append",
        default=[],
        metavar="SPEC",
        help="unit address(es): N, N-M, or N@PROFILE for another profile (repeatable; default 1)",
    )
    parser.add_argument(
        "--framing",
        choices=("rtu", "tcp"),
        default=None,
        help="on --listen: tcp (Modbus TCP, default) or rtu (RTU over TCP, like a serial gateway)",
    )
    parser.add_argument(
        "--response-ms",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="extra reply latency (default 0)",
    )
    parser.add_argument(
        "--values",
        choices=("household", "static"),
        default="household",
        help="household: the load model's seed household per phase, seeded by unit (default); "
        "static: 230.0 V, 1.234 A, 283.8 W, 50.0 Hz, PF 0.99 on every phase",
    )
    fleet = parser.add_argument_group(
        "fleets",
        "N units of --device with household values (seed SEED+i), units 1..N on the one port "
        "(as behind one gateway) unless --port-per-meter (docs/simulators.md)",
    )
    fleet.add_argument("--meters", type=_unit, default=None, metavar="N", help="number of units (1..247)")
    fleet.add_argument(
        "--port-per-meter", action="store_true", help="each unit (address 1) on its own port PORT+i"
    )
    fleet.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="SPEC",
        help="fleet faults: unreachable=F, drop=F[:N], corrupt=F[:N], drift=F[:PPM[:OFFSET_S]] "
        "(F: fraction of units; wrong-keys does not apply to Modbus)",
    )
    fleet.add_argument("--latency-ms", type=float, default=None, metavar="X", help="extra reply latency")
    fleet.add_argument("--seed", type=int, default=0, help="load model seed: unit i uses SEED+i (default 0)")
    fleet.add_argument("--export-config", metavar="FILE", help="write the fleet as a head-end config (TOML)")
    parser.set_defaults(handler=_simulate_command)


def is_fleet(args: argparse.Namespace) -> bool:
    """True when the ``simulate`` options ask for a fleet (``--meters`` or a fleet option)."""
    return bool(
        getattr(args, "meters", None) is not None
        or getattr(args, "faults", None)
        or getattr(args, "export_config", None)
        or getattr(args, "port_per_meter", False)
    )


def build_bus_from_args(args: argparse.Namespace) -> ModbusBus:
    """The bus the ``simulate`` options describe."""
    load_modbus_profile(args.device)  # fail early on an unknown profile
    devices = []
    for unit, name in parse_units(args.unit or ["1"], args.device):
        profile = load_modbus_profile(name or args.device)
        values: PhaseValueSource | None = None
        if args.values == "household":
            values = LoadModelValues.household(profile.phases, seed=unit, start=current_clock().now())
        devices.append(SimulatedModbusDevice(profile, unit, values=values))
    return ModbusBus(devices, response_delay_s=args.response_ms / 1000)


def _simulate_command(args: argparse.Namespace) -> int:
    try:
        if is_fleet(args):
            return asyncio.run(simulate_fleet(args, out=sys.stdout))
        bus = build_bus_from_args(args)
        return asyncio.run(simulate(args, bus, out=sys.stdout))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


async def simulate(
    args: argparse.Namespace,
    bus: ModbusBus,
    *,
    out: TextIO,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve ``bus`` until ``stop`` is set (or forever); ``ready`` gets the URL or pty path."""
    framing: Framing
    units = ", ".join(f"{unit} ({device.profile.name})" for unit, device in sorted(bus.devices.items()))
    if args.pty:
        transport, task = await bus.serve_pty()
        url = transport.slave_path
        framing = "rtu"
        closer: Callable[[], Any] = task.cancel
    else:
        framing = args.framing or "tcp"
        server = await bus.serve_url(args.listen, framing)
        url = server.url
        closer = server.close
    print(f"listening on {url} ({framing.upper()}); units {units}", file=out, flush=True)
    hint = f" --framing {framing}" if (framing == "rtu") == url.startswith("tcp://") else ""
    first = min(bus.devices)
    print(
        f"read with: metercom read modbus {url}{hint} --device {bus.devices[first].profile.name} "
        f"--unit {first}   (Ctrl-C stops)",
        file=out,
        flush=True,
    )
    if ready is not None:
        ready(url)
    try:
        if stop is None:
            await asyncio.Event().wait()
        else:
            await stop.wait()
    finally:
        closer()
        if args.pty:
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        else:
            await server.wait_closed()
    return 0


async def simulate_fleet(
    args: argparse.Namespace,
    *,
    out: TextIO,
    stop: asyncio.Event | None = None,
    ready: Callable[[list[str]], None] | None = None,
) -> int:
    """``simulate modbus --meters N ...``: serve a fleet until ``stop``; ``ready`` gets the lines."""
    if args.pty:
        raise InputError("a Modbus fleet needs --listen tcp://HOST:PORT, not --pty")
    if args.unit:
        raise InputError("--unit and --meters exclude each other: a fleet numbers its units 1..N")
    latency_ms = args.latency_ms if args.latency_ms is not None else float(args.response_ms)
    fleet = await serve_modbus_fleet(
        args.meters or 1,
        args.listen,
        profile=args.device,
        seed=args.seed,
        latency_ms=latency_ms,
        faults=Faults.parse(args.faults),
        framing=args.framing or "tcp",
        one_port=not args.port_per_meter,
    )
    return await run_fleets([fleet], out=out, export_path=args.export_config, stop=stop, ready=ready)


def describe_session(session: ModbusSession) -> str:
    """One line about a session's link (for verbose output)."""
    return f"{session.framing.upper()} on {session.transport.url}"

"""``metercom read iec21``, ``metercom simulate iec21`` and ``metercom demo``.

Rule: the CLI only wires user input to :class:`~metercom.session.iec21.Iec21Session` and
:class:`~metercom.sim.iec21.Iec21Meter`; it holds no protocol logic. Errors are left to
``cli/main.py``, which maps the error classes to exit codes (2 usage, 3 protocol/BCC, 4 link or
time-out, 5 meter rejected, 6 password). Results go to stdout (a table, or JSON with
``--json``); the progress line goes to stderr and only when it is a terminal, so pipes stay clean.

Theory: each command runs one asyncio event loop. ``read`` opens the URL's transport, reads, and
closes it; ``simulate`` serves one meter, or with ``--meters N`` (or fleet faults, latency, an
export) a fleet of meters fed by the load model (:mod:`metercom.sim.iec21_fleet`), until
Ctrl-C; ``demo`` joins a simulated meter and a reader with a
:class:`~metercom.transport.SimulatedLine` on the real clock, so a person sees the 300 Bd
sign-on take its half second and the readout arrive at 9600 Bd, as on a real optical port.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from decimal import Decimal
from typing import Any, TextIO

from metercom.cli.output import Progress, print_json, render_table
from metercom.clock import Clock, SystemClock, run_with
from metercom.errors import InputError
from metercom.model.reading import Reading, ReadingValue
from metercom.session.iec21 import Iec21Readout, Iec21Session
from metercom.sim.fleet import Faults, run_fleets
from metercom.sim.iec21 import (
    Iec21Faults,
    Iec21Meter,
    Iec21MeterConfig,
    ReadoutProvider,
    parse_mode,
    serve_iec21,
)
from metercom.sim.iec21_fleet import serve_iec21_fleet
from metercom.sim.iec21_live import live_readout
from metercom.sim.load import Household, LoadConfig, LoadModel
from metercom.transport import LineSettings, SimulatedLine, open_transport

__all__ = ["register_read", "register_simulate", "run_demo"]

_HEADERS = ("code", "name", "value", "unit", "time")
_MODES = ("A", "B", "C", "E")

# argparse's sub-parser action: its add_parser() is what we call.
_SubParsers = Any


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc


# -- read -------------------------------------------------------------------------------------------


def register_read(subparsers: _SubParsers) -> None:
    """Add ``metercom read iec21 URL ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "iec21",
        help="read an IEC 62056-21 meter (optical port, serial line, TCP modem)",
        description=(
            "Sign on at 300 Bd 7E1, switch to the fastest speed both sides allow (mode C) and print "
            "the readout, or read single registers in programming mode (--register)."
        ),
    )
    parser.add_argument(
        "url",
        metavar="URL",
        help="the link: /dev/ttyUSB0, serial:///dev/ttyUSB0, tcp://HOST:PORT[?format=7E1], "
        "socket://HOST:PORT, rfc2217://HOST:PORT",
    )
    parser.add_argument("--address", default="", help="device address sent in the request /?ADDRESS!")
    parser.add_argument(
        "--baud-max",
        type=_non_negative_int,
        default=9600,
        metavar="N",
        help="highest speed to ask for (default 9600; 0: whatever the meter offers)",
    )
    parser.add_argument("--password", default=None, help="programming-mode password (P1), for --register")
    parser.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="CODE",
        help="read this register in programming mode instead of the readout (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--settle-ms",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="extra wait after the ACK before switching speed, for USB adapters (keep below 200)",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="whole-session retries, one baud step lower each (default 2)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=1.5,
        metavar="S",
        help="seconds to wait for each answer to start (default 1.5; more for GSM modems)",
    )
    parser.add_argument("--wake-up", action="store_true", help="send the NUL preamble battery meters need")
    parser.add_argument("--echo-cancel", action="store_true", help="drop our own bytes echoed by the head")
    parser.add_argument(
        "--software-parity",
        action="store_true",
        help="the link is 8N1 but carries the 7E1 parity bit (transparent modems)",
    )
    parser.add_argument("--tz", default="UTC", help="time zone of the meter's time stamps (default UTC)")
    parser.set_defaults(handler=_read_command)


def _read_command(args: argparse.Namespace) -> int:
    return asyncio.run(_read(args, sys.stdout))


async def _read(args: argparse.Namespace, out: TextIO) -> int:
    tz = _zone(args.tz)
    progress = Progress()

    def on_progress(phase: str, bytes_received: int, baud_rate: int) -> None:
        progress.update(f"{phase}: {bytes_received} bytes at {baud_rate} Bd")

    transport = await open_transport(args.url)
    try:
        session = Iec21Session(
            transport,
            address=args.address,
            baud_max=args.baud_max or None,
            password=args.password,
            settle_s=args.settle_ms / 1000,
            retries=args.retries,
            response_timeout_s=args.timeout,
            wake_up=args.wake_up,
            echo_cancel=args.echo_cancel,
            software_parity=args.software_parity,
            tz=tz,
            on_progress=on_progress,
        )
        if args.register:
            async with session.programming(password=args.password) as prog:
                answers = [await prog.read(code) for code in args.register]
            readings = [reading for answer in answers for reading in answer.readings]
            ident = prog.identification
            summary: dict[str, object] = {
                "identification": "" if ident is None else ident.to_bytes().decode("ascii").rstrip("\r\n"),
                "baud_rate": prog.baud_rate,
                "readings": [reading.to_json() for reading in readings],
            }
            progress.done()
            if args.json:
                print_json(summary, out)
            else:
                print(f"{summary['identification']}  programming mode at {prog.baud_rate} Bd", file=out)
                print(render_table(_HEADERS, table_rows(readings)), file=out)
            return 0
        readout = await session.readout()
    finally:
        progress.done()
        await transport.close()
    if args.json:
        print_json(readout.to_json(), out)
    else:
        print(describe(readout), file=out)
        print(render_table(_HEADERS, table_rows(readout.readings)), file=out)
    return 0


def _text(value: ReadingValue) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return value.isoformat()
    return value


def table_rows(readings: Sequence[Reading]) -> list[tuple[str, str, str, str, str]]:
    """One row per reading: code, name, value (further values after ``;``), unit, time stamp."""
    rows = []
    for reading in readings:
        value = "; ".join(_text(v) for v in (reading.value, *reading.extra))
        stamp = reading.captured_at.isoformat(sep=" ") if reading.captured_at else ""
        rows.append((reading.label, reading.name or "", value, reading.unit or "", stamp))
    return rows


def describe(readout: Iec21Readout) -> str:
    """One line about a readout: who, how fast, how much, how long."""
    attempts = f", {readout.attempts} attempts" if readout.attempts > 1 else ""
    return (
        f"{readout.identification_text}  mode {readout.mode.value}  {readout.baud_rate} Bd  "
        f"{readout.bytes_received} bytes in {readout.elapsed_s:.1f} s{attempts}"
    )


# -- simulate ---------------------------------------------------------------------------------------


def register_simulate(subparsers: _SubParsers) -> None:
    """Add ``metercom simulate iec21 --listen URL | --pty ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "iec21",
        help="serve a simulated IEC 62056-21 meter over TCP or a pty",
        description="Serve a simulated meter (the codec in the meter role) until Ctrl-C.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="URL", help="tcp://127.0.0.1:PORT (port 0: any free port)")
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal; prints its path")
    parser.add_argument("--manufacturer", default="LTT", help="three-letter FLAG ID (default LTT)")
    parser.add_argument("--ident", default="97705377", help="identification text after Z (default 97705377)")
    parser.add_argument(
        "--baud-max", type=int, default=9600, metavar="N", help="speed offered (default 9600)"
    )
    parser.add_argument("--mode", choices=_MODES, default="C", help="protocol mode (default C)")
    parser.add_argument("--password", default="00000000", help="programming password (default 00000000)")
    parser.add_argument("--address", default=None, help="answer only requests with this device address")
    parser.add_argument(
        "--full", action="store_true", help="serve the 19-line readout instead of the 5-line one"
    )
    parser.add_argument(
        "--reaction-ms",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="reaction time (default 200, or 20 with a lower-case third FLAG letter)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[=N]",
        help="inject a fault: corrupt-bcc[=N|always], no-answer[=N|always], garbage[=N|always], "
        "refuse-baud-above=BAUD, lockout=N (wrong passwords before lock-out); repeatable",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="values from the household load model on the real clock instead of the fixed sample readout",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="load model seed with --live; meter i of a fleet uses SEED+i"
    )
    fleet = parser.add_argument_group(
        "fleets", "N meters on consecutive ports, values from the load model (docs/simulators.md)"
    )
    fleet.add_argument(
        "--meters", type=_positive_int, default=1, metavar="N", help="number of meters; meter i on PORT+i"
    )
    fleet.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="SPEC",
        help="fleet faults: unreachable=F, drop=F[:N], corrupt=F[:N], wrong-keys=F (other P1 password), "
        "drift=F[:PPM[:OFFSET_S]]; F: fraction of meters",
    )
    fleet.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="X", help="added to every meter's reaction time"
    )
    fleet.add_argument("--export-config", metavar="FILE", help="write the fleet as a head-end config (TOML)")
    parser.set_defaults(handler=_simulate_command)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def is_fleet(args: argparse.Namespace) -> bool:
    """True when the ``simulate`` options ask for a fleet rather than the single sample meter."""
    return bool(
        getattr(args, "meters", 1) > 1
        or getattr(args, "faults", None)
        or getattr(args, "export_config", None)
        or getattr(args, "latency_ms", 0.0)
    )


def meter_config(args: argparse.Namespace) -> Iec21MeterConfig:
    """The simulated meter the ``simulate`` options describe (``InputError`` when they cannot)."""
    return Iec21MeterConfig(
        manufacturer=args.manufacturer,
        ident=args.ident,
        baud_max=args.baud_max,
        mode=parse_mode(args.mode),
        password=args.password or None,
        device_address=args.address,
        full_readout=args.full,
        reaction_time_s=None if args.reaction_ms is None else args.reaction_ms / 1000,
        faults=Iec21Faults.parse(args.fault),
        readout_provider=_live_provider(args.seed) if getattr(args, "live", False) else None,
    )


def _live_provider(seed: int) -> ReadoutProvider:
    clock = SystemClock()
    model = LoadModel(LoadConfig(Household.seed_example()), seed=seed, start=clock.now())
    return live_readout(model, clock)


def _simulate_command(args: argparse.Namespace) -> int:
    config = meter_config(args)
    try:
        return asyncio.run(simulate(args, config, out=sys.stdout))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


async def simulate(
    args: argparse.Namespace,
    config: Iec21MeterConfig,
    *,
    out: TextIO,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until ``stop`` is set (or forever); ``ready`` gets the URL or pty path (of the
    first meter of a fleet)."""
    if is_fleet(args):
        if args.pty:
            raise InputError("a fleet of IEC 62056-21 meters needs --listen tcp://HOST:PORT, not --pty")
        fleet = await serve_iec21_fleet(
            args.meters,
            args.listen,
            seed=args.seed,
            latency_ms=args.latency_ms,
            faults=Faults.parse(args.faults),
            template=config,
        )

        def fleet_ready(lines: list[str]) -> None:
            del lines
            if ready is not None:
                ready(fleet.meters[0].url)

        export = args.export_config
        return await run_fleets([fleet], out=out, export_path=export, stop=stop, ready=fleet_ready)
    server = await serve_iec21("pty" if args.pty else args.listen, config)
    meter = server.meter
    offer = "300 Bd only" if config.mode.value == "A" else f"up to {config.baud_max} Bd"
    print(f"listening on {server.url}", file=out, flush=True)
    print(
        f"meter {meter.identification_text}  mode {config.mode.value}, {offer}; read it with: "
        f"metercom read iec21 {server.url}   (Ctrl-C stops)",
        file=out,
        flush=True,
    )
    if ready is not None:
        ready(server.url)
    try:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
    return 0


# -- demo -------------------------------------------------------------------------------------------


def _demo_clock() -> Clock | None:
    """The clock the demo runs on: the real one (tests swap in a VirtualClock)."""
    return None


def run_demo(args: argparse.Namespace) -> int:  # noqa: ARG001 - the CLI handler signature
    """``metercom demo``: a simulated meter on a simulated optical port, read like a real one."""
    return run_with(_demo_clock(), lambda: demo(sys.stdout))


async def demo(out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    line = SimulatedLine(LineSettings.parse("7E1", 300), name="demo")
    meter = Iec21Meter(Iec21MeterConfig(full_readout=True))
    task = loop.create_task(meter.serve(line.b), name="demo meter")
    progress = Progress()

    def on_progress(phase: str, bytes_received: int, baud_rate: int) -> None:
        progress.update(f"{phase}: {bytes_received} bytes at {baud_rate} Bd")

    print(
        f"A simulated meter {meter.identification_text} sits on a simulated optical port (7E1). "
        "Reading it as a real head would: sign-on at 300 Bd, then 9600 Bd for the data.",
        file=out,
        flush=True,
    )
    try:
        readout = await Iec21Session(line.a, on_progress=on_progress).readout()
    finally:
        progress.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()
    print(describe(readout), file=out)
    print(render_table(_HEADERS, table_rows(readout.readings)), file=out)
    speeds = " -> ".join(str(rate) for rate in readout.baud_rates)
    print(
        f"{readout.bytes_sent} bytes sent, {readout.bytes_received} received; line {speeds} Bd; "
        f"wire time {readout.wire_time_s:.2f} s, elapsed {readout.elapsed_s:.2f} s "
        f"(the rest is the meter's and our reaction times)",
        file=out,
    )
    return 0

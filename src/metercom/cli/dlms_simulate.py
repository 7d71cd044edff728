"""``metercom simulate dlms``: serve simulated DLMS/COSEM meters (one, or a fleet) until Ctrl-C.

Rule: the CLI only parses options and starts :mod:`metercom.sim.dlms`; every protocol decision
is the codec's. The fleet's addresses are printed one per line, and ``--export-config`` writes
the head-end configuration (TOML) that reads them, through the writer all simulated fleets share
(:func:`metercom.sim.fleet.fleet_config_toml`). ``--faults`` uses the fault syntax of every
``simulate`` command (:class:`metercom.sim.fleet.Faults`, docs/simulators.md).

Usage::

    metercom simulate dlms --meters 10 --listen tcp://127.0.0.1:4059 --profile india \\
        --faults unreachable=0.1,drift=0.2 --export-config fleet.toml
    metercom simulate dlms --meters 50 --listen tcp://127.0.0.1:4059 --hdlc --one-port
    metercom simulate dlms --pty --mode-e      # one meter on a pty, IEC 62056-21 sign-on then HDLC
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

from metercom.sim.dlms import Quirks, serve_fleet
from metercom.sim.fleet import Faults, run_fleets

__all__ = ["register_simulate", "simulate"]

_SubParsers = Any


def register_simulate(subparsers: _SubParsers) -> None:
    """Add ``metercom simulate dlms ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlms",
        help="serve simulated DLMS/COSEM meters (wrapper or HDLC over TCP/UDP, or a pty)",
        description="Serve simulated DLMS/COSEM meters (the DLMS codec in the server role) until Ctrl-C.",
    )
    parser.add_argument("--meters", type=int, default=1, metavar="N", help="number of meters (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--listen",
        default="tcp://127.0.0.1:4059",
        metavar="URL",
        help="base URL tcp://host:PORT or udp://host:PORT; meter i listens on PORT+i (0: any free port)",
    )
    where.add_argument("--pty", action="store_true", help="serve one meter on a new pseudo-terminal (HDLC)")
    parser.add_argument(
        "--profile", default="generic", help="device profile: generic (default), india, or a file"
    )
    parser.add_argument("--hdlc", action="store_true", help="HDLC framing instead of the IP wrapper")
    parser.add_argument(
        "--one-port", action="store_true", help="all meters on one port, addressed by HDLC physical address"
    )
    parser.add_argument("--mode-e", action="store_true", help="with --pty: IEC 62056-21 sign-on, then HDLC")
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="X", help="extra delay per answer")
    parser.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="SPEC",
        help="unreachable=F, drop=F[:N], corrupt=F[:N], wrong-keys=F, drift=F[:PPM[:OFFSET_S]] "
        "(F: fraction of meters, seeded); comma-separated or repeated",
    )
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        metavar="SPEC",
        help="long-form, pdu=N, delay=S, ua-no-info, no-deviation; repeatable",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of loads, faults and serial numbers")
    parser.add_argument("--export-config", metavar="FILE", help="write the fleet as a head-end config (TOML)")
    parser.add_argument(
        "--client", type=int, default=16, help="client SAP the exported config reads with (default 16)"
    )
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(simulate(args, out=sys.stdout))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


async def simulate(
    args: argparse.Namespace,
    *,
    out: TextIO,
    stop: asyncio.Event | None = None,
    ready: Callable[[list[str]], None] | None = None,
) -> int:
    """Serve until ``stop`` is set (or forever); ``ready`` gets the printed address lines."""
    faults = Faults.parse(args.faults)
    quirks = Quirks.parse(args.quirk)
    if args.pty:
        return await _serve_pty(args, quirks, out=out, stop=stop, ready=ready)
    fleet = await serve_fleet(
        args.meters,
        args.listen,
        profile=args.profile,
        seed=args.seed,
        latency_ms=args.latency_ms,
        faults=faults,
        quirks=quirks,
        hdlc=args.hdlc,
        one_port=args.one_port,
    )
    return await run_fleets(
        [fleet], out=out, export_path=args.export_config, client=args.client, stop=stop, ready=ready
    )


async def _serve_pty(
    args: argparse.Namespace,
    quirks: Quirks,
    *,
    out: TextIO,
    stop: asyncio.Event | None,
    ready: Callable[[list[str]], None] | None,
) -> int:
    from metercom.clock import current_clock
    from metercom.sim.dlms import DlmsMeterDevice, build_meter
    from metercom.transport import open_pty

    meter = build_meter(
        args.profile, clock=current_clock(), seed=args.seed, serial=f"{args.seed % 1000:03d}00001"
    )
    device = DlmsMeterDevice(meter, quirks=quirks, latency_s=args.latency_ms / 1000.0)
    master, slave_path = await open_pty()
    handler = device.serve_mode_e if args.mode_e else device.serve_hdlc
    task = asyncio.get_running_loop().create_task(handler(master))
    scheme = "iec21+hdlc" if args.mode_e else "hdlc+serial"
    line = f"dlms-0001 dlms {scheme}://{slave_path} physical={device.physical_address}"
    print(line, file=out)
    out.flush()
    if ready is not None:
        ready([line])
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await master.close()
    return 0

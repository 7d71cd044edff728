"""``metercom`` command line entry point.

Each protocol module contributes its sub-commands through a ``register_read(subparsers)`` /
``register_simulate(subparsers)`` function, so this file only wires them together and maps
the error tree to exit codes (``MetercomError.exit_code``): 0 success, 2 configuration or
usage, 3 protocol, 4 transport, 5 device rejected, 6 authentication, 7 service, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from metercom import __version__
from metercom.errors import MetercomError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from metercom.cli import central, demo, dlms, dlms_simulate, headend, iec21, modbus, outbox, rules, web

    parser = argparse.ArgumentParser(
        prog="metercom",
        description="Read and run electricity meters: IEC 62056-21, DLMS/COSEM, Modbus.",
    )
    parser.add_argument("--version", action="version", version=f"metercom {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: protocol bytes)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    read = commands.add_parser("read", help="read a meter", description="Read a meter over any link.")
    read_protocols = read.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    simulate = commands.add_parser(
        "simulate",
        help="run simulated meters",
        description="Serve simulated meters over TCP, a pty or a line.",
    )
    simulate_protocols = simulate.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)

    iec21.register_read(read_protocols)
    dlms.register_read(read_protocols)
    modbus.register_read(read_protocols)
    iec21.register_simulate(simulate_protocols)
    dlms_simulate.register_simulate(simulate_protocols)
    modbus.register_simulate(simulate_protocols)

    scan = commands.add_parser("scan", help="find devices on a bus", description="Find devices on a bus.")
    modbus.register_scan(scan.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True))

    headend.register_serve(commands)
    headend.register_status(commands)
    outbox.register_outbox(commands)
    rules.register_rules(commands)
    demo.register_demo(commands)
    central.register(commands)
    web.register_user(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except MetercomError as exc:
        print(f"metercom: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("metercom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

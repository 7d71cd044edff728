"""``metercom read dlms URL ...``: read a DLMS/COSEM meter from the command line.

Rule: the CLI only wires user input to :class:`~metercom.session.dlms.DlmsClient`; it holds no
protocol logic. Errors are left to ``cli/main.py``, which maps the error classes to exit codes
(2 usage/config, 3 protocol, 4 link or time-out, 5 meter rejected, 6 authentication). Results
go to stdout, a table or JSON (``--json``). Passwords and keys are taken from the command line
or a key file and are never printed.

Theory: one asyncio event loop per command. ``--obis`` reads registers (scaled, with units),
``--profile OBIS --from T --to T`` a load profile by time range, ``--object-list`` the
association's object list; with none of them the meter's clock is read. Times are ISO 8601;
without an offset they are taken as UTC.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from metercom.cli.output import print_json, render_table
from metercom.errors import InputError
from metercom.model.cosem import Quantity
from metercom.model.reading import Reading
from metercom.session.counters import FileCounterStore, default_counter_path
from metercom.session.dlms import AUTH_MECHANISMS, DlmsClient, DlmsKeys, ProfileReadout

__all__ = ["register_read"]

_SubParsers = Any


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-01-01T00:00Z, got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def register_read(subparsers: _SubParsers) -> None:
    """Add ``metercom read dlms URL ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlms",
        help="read a DLMS/COSEM meter (TCP/UDP wrapper, HDLC on serial or TCP, optical mode E)",
        description=(
            "Associate with a DLMS/COSEM meter and read registers, a load profile, the object list "
            "or the clock. URLs: tcp://HOST:4059, udp://HOST:4059, hdlc+tcp://HOST:PORT, "
            "hdlc+serial:///dev/ttyUSB0?baud=9600, iec21+hdlc:///dev/ttyUSB0 (mode E)."
        ),
    )
    parser.add_argument("url", metavar="URL", help="the meter's link (see above)")
    parser.add_argument("--client", type=int, default=16, metavar="SAP", help="client address (default 16)")
    parser.add_argument(
        "--server", type=int, default=1, metavar="SAP", help="server logical address (default 1)"
    )
    parser.add_argument("--physical", type=int, default=None, metavar="N", help="HDLC physical address")
    parser.add_argument("--auth", choices=tuple(AUTH_MECHANISMS), default="none", help="authentication")
    parser.add_argument("--password", default=None, help="LLS password or HLS-SHA256 secret (never printed)")
    parser.add_argument(
        "--key-file", default=None, metavar="F", help="ek/ak/system_title key file (JSON or name = hex)"
    )
    parser.add_argument(
        "--counter-file",
        default=None,
        metavar="F",
        help="where our invocation counter is kept between runs (with --key-file; default under "
        "~/.local/state/metercom/dlms-counters/)",
    )
    parser.add_argument(
        "--obis", action="append", default=[], metavar="OBIS", help="read this object (repeatable)"
    )
    parser.add_argument("--profile", default=None, metavar="OBIS", help="read this load profile")
    parser.add_argument("--from", dest="start", type=_time, default=None, metavar="T", help="profile start")
    parser.add_argument("--to", dest="end", type=_time, default=None, metavar="T", help="profile end")
    parser.add_argument("--object-list", action="store_true", help="print the association's object list")
    parser.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S", help="answer time-out")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_read_command)


def _read_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_read(args, sys.stdout))


def _check(args: argparse.Namespace) -> None:
    if (args.start is None) != (args.end is None):
        raise InputError("--from and --to go together")
    if args.start is not None and args.profile is None:
        raise InputError("--from/--to need --profile OBIS")


async def run_read(args: argparse.Namespace, out: TextIO, *, target: object = None) -> int:
    """Run ``read dlms`` with parsed ``args``; ``target`` (a Transport) replaces the URL in tests."""
    _check(args)
    keys = DlmsKeys.from_file(args.key_file) if args.key_file else None
    counters = None
    if keys is not None:  # an own invocation counter must never repeat across runs
        meter_name = f"{args.url}#{args.client}-{args.server}"
        counters = FileCounterStore(args.counter_file or default_counter_path(keys.system_title, meter_name))
    options: dict[str, Any] = {
        "counter_store": counters,
        "client": args.client,
        "server": args.server,
        "physical": args.physical,
        "auth": args.auth,
        "password": args.password,
        "keys": keys,
        "timeout_s": args.timeout,
    }
    result: dict[str, object] = {}
    readings: list[Reading] = []
    profile: ProfileReadout | None = None
    objects: list[tuple[str, str, str]] = []
    async with DlmsClient.connect(target if target is not None else args.url, **options) as meter:  # type: ignore[arg-type]
        if args.object_list:
            objects = [
                (str(e.logical_name), str(e.class_id), str(e.version)) for e in await meter.read_object_list()
            ]
        readings = [await meter.read(code) for code in args.obis]
        if args.profile is not None:
            profile = await meter.read_profile(args.profile, start=args.start, end=args.end)
        if not (args.object_list or args.obis or args.profile):
            readings.append(Reading(None, await meter.read_clock(), address="clock"))
    if args.json:
        if objects:
            result["objects"] = [{"obis": o, "class_id": int(c), "version": int(v)} for o, c, v in objects]
        if readings:
            result["readings"] = [r.to_json() for r in readings]
        if profile is not None:
            result["profile"] = {
                "obis": str(profile.obis),
                "columns": [{"name": c.name, "unit": c.unit} for c in profile.columns],
                "rows": [[_plain(v) for v in row] for row in profile.rows],
            }
        print_json(result, out)
        return 0
    if objects:
        print(render_table(("obis", "class", "version"), objects), file=out)
    if readings:
        rows = [(r.label, r.name or "", _plain(r.value), r.unit or "") for r in readings]
        print(render_table(("code", "name", "value", "unit"), rows), file=out)
    if profile is not None:
        headers = [c.name + (f" [{c.unit}]" if c.unit else "") for c in profile.columns]
        print(render_table(headers, [[_plain(v) for v in row] for row in profile.rows]), file=out)
    return 0


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Quantity):
        return str(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)

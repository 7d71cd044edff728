"""``metercom read|scan|simulate modbus``: register_* on a fresh parser, run on the virtual clock."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from metercom.cli import modbus as cli
from metercom.cli.output import Progress
from metercom.errors import InputError
from metercom.sim.modbus import LoadModelValues, StaticPhaseValues


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metercom")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, register in (
        ("read", cli.register_read),
        ("scan", cli.register_scan),
        ("simulate", cli.register_simulate),
    ):
        protocols = commands.add_parser(name).add_subparsers(dest="protocol", required=True)
        register(protocols)
    return parser


@asynccontextmanager
async def running_simulator(*argv: str) -> AsyncIterator[str]:
    args = make_parser().parse_args(["simulate", "modbus", *argv])
    bus = cli.build_bus_from_args(args)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    out = io.StringIO()
    task = asyncio.create_task(cli.simulate(args, bus, out=out, stop=stop, ready=ready.set_result))
    url = await ready
    assert "listening on" in out.getvalue()
    try:
        yield url
    finally:
        stop.set()
        await task


def test_parse_units() -> None:
    assert cli.parse_units(["1", "3-5", "10@pmtr3"], "pzem004t") == [
        (1, "pzem004t"),
        (3, "pzem004t"),
        (4, "pzem004t"),
        (5, "pzem004t"),
        (10, "pmtr3"),
    ]
    assert cli.parse_units(["1,2"]) == [(1, None), (2, None)]
    for bad in (["0"], ["248"], ["5-3"], ["x"], ["1", "1"]):
        with pytest.raises(InputError):
            cli.parse_units(bad)


def test_argument_checks() -> None:
    parser = make_parser()
    for argv in (
        ["read", "modbus", "tcp://h:1", "--unit", "0"],
        ["read", "modbus", "tcp://h:1", "--timeout", "0"],
        ["read", "modbus", "tcp://h:1", "--retries", "-1"],
        ["simulate", "modbus"],  # --listen or --pty is required
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


def test_simulated_values_choice() -> None:
    parser = make_parser()
    args = parser.parse_args(["simulate", "modbus", "--pty", "--unit", "1", "--unit", "2@pmtr3"])
    bus = cli.build_bus_from_args(args)
    assert all(isinstance(d.values, LoadModelValues) for d in bus.devices.values())
    assert bus.devices[2].profile.name == "pmtr3"
    args = parser.parse_args(["simulate", "modbus", "--pty", "--values", "static"])
    assert isinstance(cli.build_bus_from_args(args).devices[1].values, StaticPhaseValues)


async def test_read_a_pzem_over_modbus_tcp() -> None:
    async with running_simulator(
        "--listen", "tcp://127.0.0.1:0", "--unit", "1-3", "--values", "static"
    ) as url:
        args = make_parser().parse_args(["read", "modbus", url, "--unit", "2"])
        out = io.StringIO()
        assert await cli.run_read(args, out) == 0
    text = out.getvalue()
    assert "Peacefair PZEM-004T v3.0  unit 2" in text
    assert "12.7.0" in text
    assert "230.0" in text
    assert "kWh" in text


async def test_read_a_pmtr3_with_commands_as_json() -> None:
    async with running_simulator(
        "--listen", "tcp://127.0.0.1:0", "--unit", "7@pmtr3", "--values", "static"
    ) as url:
        argv = ["read", "modbus", url, "--device", "pmtr3", "--unit", "7", "--json"]
        argv += ["--set-clock", "--reset-energy", "--set-address", "9", "--events"]
        out = io.StringIO()
        assert await cli.run_read(make_parser().parse_args(argv), out) == 0
    data = json.loads(out.getvalue())
    assert data["unit"] == 9
    assert data["device"] == "pmtr3"
    assert data["actions"][0] == "address changed to 9"
    assert data["actions"][2] == "energy reset"
    by_code = {r["code"]: r for r in data["readings"]}
    assert by_code["21.8.0"]["value"] == "0.000"
    assert by_code["32.7.0"]["unit"] == "V"
    assert [e["name"] for e in data["events"]] == ["power_on", "address_changed", "clock_set", "energy_reset"]


async def test_rtu_over_tcp_simulator_and_reader() -> None:
    async with running_simulator(
        "--listen", "tcp://127.0.0.1:0", "--framing", "rtu", "--unit", "4", "--values", "static"
    ) as url:
        args = make_parser().parse_args(["read", "modbus", url, "--framing", "rtu", "--unit", "4", "--json"])
        out = io.StringIO()
        assert await cli.run_read(args, out) == 0
    assert json.loads(out.getvalue())["readings"][0]["value"] == "230.0"


async def test_scan(capsys: pytest.CaptureFixture[str]) -> None:
    async with running_simulator("--listen", "tcp://127.0.0.1:0", "--unit", "2", "--unit", "5@pmtr3") as url:
        args = make_parser().parse_args(["scan", "modbus", url, "--units", "1-6"])
        out = io.StringIO()
        assert await cli.run_scan(args, out, progress=Progress(enabled=False)) == 0
        args = make_parser().parse_args(["scan", "modbus", url, "--units", "1-6", "--json"])
        out_json = io.StringIO()
        assert await cli.run_scan(args, out_json, progress=Progress(enabled=False)) == 0
    assert "2 device(s)" in out.getvalue()
    assert "pmtr3" in out.getvalue()
    assert json.loads(out_json.getvalue())["units"] == [
        {"unit": 2, "profile": "pzem004t", "detail": ""},
        {"unit": 5, "profile": "pmtr3", "detail": ""},
    ]


def test_table_rows_show_every_kind_of_value() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from metercom.model.reading import Reading

    rows = cli.table_rows(
        [
            Reading(None, True, address="alarm"),
            Reading(None, Decimal("1.5"), "A", address="x"),
            Reading(None, datetime(2026, 1, 1, tzinfo=UTC), address="t"),
            Reading(None, b"\x01", address="b"),
            Reading(None, None, address="n"),
        ]
    )
    assert [r[2] for r in rows] == ["true", "1.5", "2026-01-01 00:00:00+00:00", "01", ""]

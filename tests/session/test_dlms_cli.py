"""``metercom read dlms``: the parser built with ``register_read`` and the command run against the
scripted meter over the simulated line (the lead wires it into ``cli/main.py``)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codec" / "dlms"))

from test_client_kit import ScriptedMeter, serve_hdlc

from metercom.cli.dlms import register_read, run_read
from metercom.errors import InputError
from metercom.transport import LineSettings, SimulatedLine


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="metercom read")
    register_read(parser.add_subparsers(dest="protocol"))
    return parser.parse_args(["dlms", *argv])


async def run(*argv: str) -> str:
    line = SimulatedLine(LineSettings(9600))
    task = asyncio.create_task(serve_hdlc(line.b, ScriptedMeter()))
    out = io.StringIO()
    try:
        assert await run_read(parse("hdlc+serial:///dev/null", *argv), out, target=line.a) == 0
    finally:
        await line.b.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out.getvalue()


def test_parser_defaults_and_options() -> None:
    args = parse("tcp://10.0.0.1:4059")
    assert (args.client, args.server, args.auth, args.password, args.json) == (16, 1, "none", None, False)
    args = parse(
        "tcp://h:1",
        "--client",
        "32",
        "--auth",
        "low",
        "--password",
        "P",
        "--obis",
        "1.8.0",
        "--obis",
        "2.8.0",
        "--profile",
        "1-0:99.1.0",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-02T00:00+01:00",
        "--json",
    )
    assert args.client == 32
    assert args.obis == ["1.8.0", "2.8.0"]
    assert args.start.tzinfo is not None
    with pytest.raises(SystemExit):
        parse("tcp://h:1", "--auth", "md5")


async def test_read_registers_as_table_and_json() -> None:
    text = await run("--obis", "1-0:1.8.0", "--obis", "0-0:96.1.0")
    assert "12345.67" in text
    assert "Wh" in text
    assert "SIM0001" in text
    data = json.loads(await run("--obis", "1-0:1.8.0", "--json"))
    assert data["readings"][0]["value"] == "12345.67"


async def test_read_profile_by_time_range() -> None:
    data = json.loads(
        await run(
            "--profile", "1-0:99.1.0", "--from", "2026-01-01T01:00Z", "--to", "2026-01-01T02:00Z", "--json"
        )
    )
    assert len(data["profile"]["rows"]) == 5
    assert data["profile"]["rows"][0][0] == "2026-01-01T01:00:00+00:00"
    assert data["profile"]["columns"][1]["unit"] == "Wh"


async def test_clock_by_default_and_usage_errors() -> None:
    assert "2026-01-01" in await run()
    with pytest.raises(InputError):
        await run("--from", "2026-01-01T00:00Z")

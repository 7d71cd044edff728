"""``metercom simulate dlms|iec21|modbus``: fleets with ``--meters N``, the shared ``--faults``
syntax and ``--export-config`` (each export parses with ``metercom.service.config.parse_config``),
the single-meter paths kept as they were, and ``simulate dlms --pty`` read by our DLMS client.

Tests that write the export file run on the real clock (the file is written from a worker
thread); the pty test runs on a virtual clock with a small real grace period for the kernel's
pty queue (tests/transport/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from metercom.cli import dlms_simulate, iec21, modbus
from metercom.clock import VirtualClock
from metercom.errors import InputError
from metercom.service.config import parse_config
from metercom.session.dlms import DlmsClient
from metercom.session.iec21 import Iec21Session
from metercom.session.modbus import open_modbus
from metercom.transport import open_transport


def _parse(register: Callable[[Any], None], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


async def _running(
    start: Callable[[asyncio.Event, Callable[[Any], None]], Coroutine[Any, Any, int]],
) -> tuple[asyncio.Task[int], asyncio.Event, list[Any]]:
    stop, started, seen = asyncio.Event(), asyncio.Event(), []

    def ready(value: Any) -> None:
        seen.append(value)
        started.set()

    task = asyncio.get_running_loop().create_task(start(stop, ready))
    done, _ = await asyncio.wait(
        [task, asyncio.ensure_future(started.wait())], timeout=10, return_when="FIRST_COMPLETED"
    )
    if task in done:
        task.result()  # raises what the command raised
    return task, stop, seen


@pytest.mark.realtime
async def test_iec21_fleet_prints_addresses_and_exports(tmp_path: Path) -> None:
    target = tmp_path / "iec21.toml"
    args = _parse(
        iec21.register_simulate,
        [
            "iec21",
            "--listen",
            "tcp://127.0.0.1:0",
            "--meters",
            "3",
            "--seed",
            "7",
            "--export-config",
            str(target),
        ],
    )
    config = iec21.meter_config(args)
    out = io.StringIO()
    task, stop, seen = await _running(
        lambda stop, ready: iec21.simulate(args, config, out=out, stop=stop, ready=ready)
    )
    try:
        lines = [line for line in out.getvalue().splitlines() if line.startswith("iec21-")]
        assert len(lines) == 3
        parsed = parse_config(target.read_text(encoding="utf-8"), source=str(target))
        assert [m.id for m in parsed.meters] == ["iec21-0001", "iec21-0002", "iec21-0003"]
        assert "METERCOM_SIM_P1=00000000" in out.getvalue()
        async with await open_transport(seen[0]) as link:
            readout = await Iec21Session(link, address="00700001").readout()
        assert readout.identification_text.endswith("00700001")
    finally:
        stop.set()
        assert await task == 0


@pytest.mark.realtime
async def test_modbus_fleet_on_one_port_exports_a_line(tmp_path: Path) -> None:
    target = tmp_path / "modbus.toml"
    args = _parse(
        modbus.register_simulate,
        [
            "modbus",
            "--listen",
            "tcp://127.0.0.1:0",
            "--meters",
            "4",
            "--faults",
            "unreachable=0.5",
            "--seed",
            "2",
            "--export-config",
            str(target),
        ],
    )
    out = io.StringIO()
    task, stop, seen = await _running(
        lambda stop, ready: modbus.simulate_fleet(args, out=out, stop=stop, ready=ready)
    )
    try:
        assert len(seen[0]) == 4
        parsed = parse_config(target.read_text(encoding="utf-8"), source=str(target))
        assert len(parsed.lines) == 1
        assert [m.line for m in parsed.meters] == [parsed.lines[0].id] * 4
        reachable = [line for line in seen[0] if "unreachable" not in line]
        assert reachable
        unit = int(reachable[0].split("unit=")[1].split()[0])
        async with await open_modbus(parsed.lines[0].url) as session:
            assert await session.device(unit, "pzem004t").read()
    finally:
        stop.set()
        assert await task == 0


@pytest.mark.realtime
async def test_dlms_fleet_export_with_shared_fault_syntax(tmp_path: Path) -> None:
    target = tmp_path / "dlms.toml"
    args = _parse(
        dlms_simulate.register_simulate,
        [
            "dlms",
            "--meters",
            "3",
            "--listen",
            "tcp://127.0.0.1:0",
            "--faults",
            "drift=1:-300:15,corrupt=0.5:10",
            "--client",
            "32",
            "--export-config",
            str(target),
        ],
    )
    out = io.StringIO()
    task, stop, seen = await _running(
        lambda stop, ready: dlms_simulate.simulate(args, out=out, stop=stop, ready=ready)
    )
    try:
        assert all("drift -300ppm +15s" in line for line in seen[0])
        parsed = parse_config(target.read_text(encoding="utf-8"), source=str(target))
        assert {m.authentication for m in parsed.meters} == {"low"}
    finally:
        stop.set()
        assert await task == 0


def test_fleet_options_are_refused_where_they_cannot_apply() -> None:
    args = _parse(modbus.register_simulate, ["modbus", "--pty", "--meters", "2"])
    with pytest.raises(InputError):
        asyncio.run(modbus.simulate_fleet(args, out=io.StringIO()))
    args = _parse(
        modbus.register_simulate, ["modbus", "--listen", "tcp://127.0.0.1:0", "--meters", "2", "--unit", "3"]
    )
    with pytest.raises(InputError):
        asyncio.run(modbus.simulate_fleet(args, out=io.StringIO()))
    args = _parse(iec21.register_simulate, ["iec21", "--pty", "--meters", "2"])
    assert iec21.is_fleet(args)
    with pytest.raises(InputError):
        asyncio.run(iec21.simulate(args, iec21.meter_config(args), out=io.StringIO()))
    single = _parse(iec21.register_simulate, ["iec21", "--listen", "tcp://127.0.0.1:0"])
    assert not iec21.is_fleet(single)
    assert not modbus.is_fleet(_parse(modbus.register_simulate, ["modbus", "--listen", "tcp://127.0.0.1:0"]))


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(real_grace_s=0.05)


@pytest.mark.parametrize("mode_e", [False, True], ids=["hdlc", "mode-e"])
async def test_dlms_pty_cli_path_is_read_by_our_client(vclock: VirtualClock, mode_e: bool) -> None:
    argv = ["dlms", "--pty", "--quirk", "ua-no-info"] + (["--mode-e"] if mode_e else [])
    args = _parse(dlms_simulate.register_simulate, argv)
    out = io.StringIO()
    task, stop, seen = await _running(
        lambda stop, ready: dlms_simulate.simulate(args, out=out, stop=stop, ready=ready)
    )
    try:
        line = seen[0][0]
        url = line.split()[2]
        assert url.startswith("iec21+hdlc://" if mode_e else "hdlc+serial://")
        physical = int(line.split("physical=")[1])
        async with DlmsClient.connect(url, physical=physical) as client:
            assert await client.get("0-0:96.1.0") in ("00000001", b"00000001")
    finally:
        stop.set()
        assert await task == 0

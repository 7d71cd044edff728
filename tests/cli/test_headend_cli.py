"""``metercom serve`` and ``metercom status``: apply, collect, reload on a file change, stop, report.

The service runs in-process on the real clock (``@pytest.mark.realtime``) against the demo's
simulated IEC 62056-21 meter on a simulated optical port, so only the link is simulated.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from metercom.cli.demo import DemoFleet, demo_config_text
from metercom.cli.headend import collect_status, default_store, serve, status_file_for
from metercom.cli.main import main
from metercom.service.meters import LinkPool
from metercom.service.store import Store

BROKEN = """
[[lines]]
id = "bus"
url = "/dev/ttyUSB0"
type = "rs485"

[[meters]]
id = "m-1"
protocol = "modbus"
line = "bux"
address = { unit = 300 }
"""


def test_serve_with_an_invalid_file_changes_nothing_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(BROKEN, encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown line 'bux'" in err
    assert "out of range 1..247" in err  # every problem is listed
    assert main(["status", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config_version"] is None
    assert report["meters"] == []


def test_serve_refuses_unknown_profiles_and_supply_rules_on_meters_without_a_relay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = (Path(__file__).resolve().parents[2] / "examples" / "fleet.toml").read_text(encoding="utf-8")
    text = example.replace('device_profile = "pzem004t"', 'device_profile = "pzem-004t"', 1).replace(
        'group = "residential"                 # meters', 'group = "feeders"  # meters', 1
    )
    lines = text.splitlines()
    profile_at = next(i for i, line in enumerate(lines, 1) if '"pzem-004t"' in line)
    target_at = next(i for i, line in enumerate(lines, 1) if line.startswith("targets = "))
    config = tmp_path / "fleet.toml"
    config.write_text(text, encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{config}:{profile_at}: meters[4].device_profile: unknown Modbus device profile 'pzem-004t' "
        "(did you mean 'pzem004t'?); known: pmtr3, pzem004t" in err
    )
    assert (
        f"{config}:{target_at}: rules[0].targets[0]: target 'relay1': meter 'm-0003' (IEC 62056-21) "
        "cannot switch its supply" in err
    )
    assert "2 problems" in err


def test_status_without_a_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--store", str(tmp_path / "none.db")]) == 2
    assert "there is no store" in capsys.readouterr().err


@pytest.mark.realtime
async def test_serve_collects_reloads_on_change_and_stops(tmp_path: Path) -> None:
    fleet = DemoFleet(1)
    await fleet.start()
    config = tmp_path / "fleet.toml"
    config.write_text(demo_config_text(fleet, every_s=1), encoding="utf-8")
    store_url = default_store(config)
    snapshot = status_file_for(store_url)
    assert snapshot == tmp_path / "fleet.db.status.json"
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(
            config,
            store_url,
            status_file=snapshot,
            poll_s=0.2,
            stop_timeout_s=2.0,
            ready=ready,
            stop=stop,
            headend_options={"links": LinkPool(fleet.open)},
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with await Store.open(store_url) as store:
            for _ in range(100):
                if await store.readings("iec-01"):
                    break
                await asyncio.sleep(0.1)
            assert await store.readings("iec-01")
            # Edit the file: the service applies it as version 2 without a restart.
            config.write_text(config.read_text().replace("metercom-demo", "renamed"), encoding="utf-8")
            for _ in range(50):
                if len(await store.config_versions()) == 2:
                    break
                await asyncio.sleep(0.1)
            versions = await store.config_versions()
            assert [v.version for v in versions] == [2, 1]
            assert versions[0].actor == "metercom serve"
            # A broken edit is refused and logged; version 2 stays in force.
            config.write_text(BROKEN, encoding="utf-8")
            await asyncio.sleep(0.6)
            assert len(await store.config_versions()) == 2
            assert snapshot is not None
            report = await collect_status(store, snapshot)
            assert report.service.startswith("running"), report.service
            (row,) = report.rows
            assert row.meter_id == "iec-01"
            assert row.last_read_at is not None
            assert row.next_read_at is not None
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await fleet.close()
    async with await Store.open(store_url) as store:
        report = await collect_status(store, snapshot)
        assert report.service.startswith("stopped")
        assert (await store.check_integrity()).ok


UNREACHABLE = """
[[meters]]
id = "far-1"
protocol = "dlms"
url = "tcp://127.0.0.1:9"
address = {{ client = 16, logical = 1 }}
groups = ["all"]
description = "{description}"

[[groups]]
id = "all"

[[plans]]
id = "clock"
objects = ["0-0:1.0.0*255"]

[[schedules]]
id = "often"
group = "all"
plan = "clock"
every = "1s"
"""


def test_serve_process_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "fleet.toml"
    config.write_text(UNREACHABLE.format(description="first"), encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "metercom.cli.main", "serve", "--config", str(config), "--poll", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    try:
        while "metercom: serving" not in (line := proc.stderr.readline()):
            assert line, "serve ended before it was ready"
        config.write_text(UNREACHABLE.format(description="second"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        while "reloaded" not in (line := proc.stderr.readline()):
            assert line, "serve ended without reloading"
        assert "version 2 in force" in line
        time.sleep(1.5)  # a read or two fail (nothing listens), and a snapshot is written
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=20) == 0, rest
        assert "head-end stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    out = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "metercom.cli.main", "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    assert report["config_version"] == 2
    assert report["service"].startswith("stopped")
    (meter,) = report["meters"]
    assert meter["meter_id"] == "far-1"
    assert meter["last_read_at"] is None
    assert meter["last_error"]

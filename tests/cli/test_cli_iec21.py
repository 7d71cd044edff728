"""``metercom read iec21``, ``simulate iec21`` and ``demo`` end to end.

``main([...])`` runs its own event loop on the real clock, so the simulated meter it reads runs
in a thread with its own loop, over real TCP on 127.0.0.1. Nothing sleeps: the tests only wait
for the reader's reaction times (200 ms each for ``LTT``) and, where a time-out is the point,
for a short ``--timeout``. Most meters here are ``LTt``: a lower-case third FLAG letter allows
20 ms reaction times on both sides, which keeps the tests quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from metercom.cli import iec21 as cli_iec21
from metercom.cli.main import main
from metercom.clock import VirtualClock
from metercom.session.iec21 import Iec21Session
from metercom.sim.iec21 import ALWAYS, Iec21Faults, Iec21MeterConfig, serve_iec21
from metercom.transport import open_transport

FAST = 0.02
QUICK = Iec21MeterConfig(manufacturer="LTt")


@contextmanager
def meter_in_thread(config: Iec21MeterConfig | None = None) -> Iterator[str]:
    """A simulated meter served over TCP by a thread with its own (real-time) event loop."""
    config = config or QUICK
    started = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()

    async def run() -> None:
        server = await serve_iec21("tcp://127.0.0.1:0", config)
        stop = asyncio.Event()
        box["url"], box["stop"] = server.url, stop
        started.set()
        await stop.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the simulated meter did not start"
        yield str(box["url"])
    finally:
        stop = box.get("stop")
        if isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_read_json(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread() as url:
        assert main(["read", "iec21", url, "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["identification"] == "/LTt597705377"
    assert result["mode"] == "C"
    assert result["baud_rate"] == 9600
    readings = {reading["code"]: reading for reading in result["readings"]}
    assert readings["1.8.0"]["value"] == "343642.9"
    assert readings["1.8.0"]["unit"] == "kWh"
    assert readings["1.6.0"]["captured_at"] == "2010-02-01T00:15:00+00:00"
    assert out.err == ""  # no progress line when stderr is not a terminal


def test_read_table(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread(Iec21MeterConfig(reaction_time_s=FAST, full_readout=True)) as url:
        assert main(["read", "iec21", url, "--baud-max", "0", "--tz", "Europe/Berlin"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("/LTT597705377  mode C  9600 Bd  431 bytes")
    assert lines[1].split() == ["code", "name", "value", "unit", "time"]
    energy = next(line for line in lines if line.startswith("1.8.0 "))
    assert "Active energy import (+A) total" in energy
    assert "343642.9" in energy
    assert "kWh" in energy
    demand = next(line for line in lines if line.startswith("1.6.0 "))
    assert "2010-02-01 00:15:00+01:00" in demand
    assert len(lines) == 2 + 1 + 19


def test_read_registers_in_programming_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread() as url:
        code = main(
            ["read", "iec21", url, "--password", "00000000", "--register", "1.8.0", "--register", "0.9.2"]
        )
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "/LTt597705377  programming mode at 9600 Bd"
        assert [line.split()[0] for line in lines[3:]] == ["1.8.0", "0.9.2"]
        assert main(["read", "iec21", url, "--register", "1.8.0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["readings"][0]["value"] == "343642.9"


def test_exit_code_for_a_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    config = Iec21MeterConfig(manufacturer="LTt", faults=Iec21Faults(no_answer=ALWAYS))
    with meter_in_thread(config) as url:
        assert main(["read", "iec21", url, "--timeout", "0.2", "--retries", "0"]) == 4
    err = capsys.readouterr().err
    assert "TransportTimeout" in err
    assert "identification" in err


def test_exit_code_for_a_bcc_that_stays_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    config = Iec21MeterConfig(manufacturer="LTt", faults=Iec21Faults(corrupt_bcc=ALWAYS))
    with meter_in_thread(config) as url:
        assert main(["read", "iec21", url, "--retries", "0"]) == 3
    assert "FrameError" in capsys.readouterr().err


def test_exit_code_for_a_wrong_password(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread() as url:
        assert main(["read", "iec21", url, "--register", "1.8.0", "--password", "secret99"]) == 6
    err = capsys.readouterr().err
    assert "AuthenticationError" in err
    assert "secret99" not in err


def test_exit_code_for_a_rejected_register(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread() as url:
        assert main(["read", "iec21", url, "--register", "9.9.9"]) == 5
    assert "DeviceRejectedError" in capsys.readouterr().err


def test_exit_code_for_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "iec21", "nonsense://x"]) == 2
    assert main(["simulate", "iec21", "--listen", "tcp://127.0.0.1:0", "--fault", "sparks"]) == 2
    assert main(["simulate", "iec21", "--listen", "tcp://127.0.0.1:0", "--manufacturer", "X"]) == 2
    err = capsys.readouterr().err
    assert "unknown fault" in err
    assert "FLAG ID" in err


def test_exit_code_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    with meter_in_thread() as url:
        pass  # the port is free again
    assert main(["read", "iec21", url]) == 4
    assert "ConnectError" in capsys.readouterr().err


def _simulate_args(*argv: str) -> argparse.Namespace:
    from metercom.cli.main import build_parser

    return build_parser().parse_args(["simulate", "iec21", *argv])


async def test_simulate_serves_until_stopped() -> None:
    args = _simulate_args(
        "--listen", "tcp://127.0.0.1:0", "--mode", "E", "--fault", "corrupt-bcc=1", "--full"
    )
    config = cli_iec21.meter_config(args)
    stop, listening = asyncio.Event(), asyncio.Event()
    urls: list[str] = []
    lines: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        listening.set()

    class Out:
        def write(self, text: str) -> int:
            lines.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    task = asyncio.get_running_loop().create_task(
        cli_iec21.simulate(args, config, out=Out(), stop=stop, ready=ready)  # type: ignore[arg-type]
    )
    await listening.wait()
    async with await open_transport(urls[0]) as transport:
        readout = await Iec21Session(transport).readout()
    stop.set()
    assert await task == 0
    assert readout.identification_text == "/LTT5\\297705377"
    assert len(readout.readings) == 19
    assert "".join(lines).startswith(f"listening on {urls[0]}\n")


async def test_simulate_on_a_pty_prints_the_path() -> None:
    args = _simulate_args("--pty", "--baud-max", "19200", "--reaction-ms", "20")
    config = cli_iec21.meter_config(args)
    assert config.reaction_time_s == pytest.approx(0.02)
    stop, listening = asyncio.Event(), asyncio.Event()
    urls: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        listening.set()

    class Out:
        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    task = asyncio.get_running_loop().create_task(
        cli_iec21.simulate(args, config, out=Out(), stop=stop, ready=ready)  # type: ignore[arg-type]
    )
    await listening.wait()
    assert urls[0].startswith("/dev/")
    stop.set()
    assert await task == 0


def test_demo_on_a_virtual_clock(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_iec21, "_demo_clock", VirtualClock)
    assert main(["demo", "--iec21"]) == 0
    out = capsys.readouterr().out
    assert "/LTT597705377  mode C  9600 Bd  431 bytes in 1.9 s" in out
    assert "line 300 -> 9600 -> 300 Bd" in out
    assert "1.8.1" in out
    assert "wire time 1.30 s, elapsed 1.90 s" in out

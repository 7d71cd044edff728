"""``metercom demo``: the mixed simulated fleet collected by the head-end, and ``--iec21``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from metercom.cli import iec21 as cli_iec21
from metercom.cli.demo import run_fleet_demo
from metercom.cli.main import main
from metercom.clock import VirtualClock
from metercom.service.config import load_config
from metercom.service.store import Store


@pytest.mark.realtime
async def test_fleet_demo_collects_every_protocol_and_leaves_a_valid_store(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await run_fleet_demo(
        out, duration_s=3.0, every_s=2, iec21=1, dlms=1, modbus=1, directory=tmp_path
    )
    text = out.getvalue()
    assert result.integrity_ok
    assert result.reads_failed == 0, text
    assert result.readings > 0
    assert "collected in" in text
    assert f"store:  {tmp_path / 'store.db'}" in text
    for meter in ("iec-01", "dlms-01", "modbus-01"):
        assert meter in text
    config = load_config(result.config_path)  # the file it wrote is an ordinary configuration
    assert {m.protocol.value for m in config.meters} == {"iec21", "dlms", "modbus"}
    async with await Store.open(result.store_path) as store:
        for meter in ("iec-01", "dlms-01", "modbus-01"):
            assert await store.readings(meter), meter
        assert await store.profile_rows("dlms-01", "1-0:99.1.0*255")


def test_demo_iec21_is_the_single_meter_readout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_iec21, "_demo_clock", VirtualClock)
    assert main(["demo", "--iec21"]) == 0
    out = capsys.readouterr().out
    assert "/LTT597705377  mode C  9600 Bd  431 bytes in 1.9 s" in out


def test_demo_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "0"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_live_table_redraws_in_place_on_a_terminal() -> None:
    from metercom.cli.demo import _Display
    from metercom.service.status import MeterStatus

    out = io.StringIO()
    display = _Display(out, live=True)
    rows = [MeterStatus("iec-01", line_id="optical-1", reads_ok=2), MeterStatus("dlms-01", reads_failed=1)]
    display.show(1.0, 20.0, rows, 8)
    display.show(2.0, 20.0, rows, 8)
    text = out.getvalue()
    assert text.count("2 reads ok, 1 failed, 8 readings stored") == 2
    assert "\x1b[5F\x1b[J" in text  # cursor back over the 5 lines drawn, then clear
    plain = io.StringIO()
    display = _Display(plain, live=False)
    display.show(1.0, 20.0, rows, 8)
    display.show(2.0, 20.0, rows, 8)  # nothing changed: no second line
    assert plain.getvalue().count("\n") == 1

"""``metercom rules slots METER``: a relay meter's rule slots, read over its configured link and
decoded, against simulated pmtr3 meters the real head-end pushed rules into."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest

from headend_support import PMTR3_START, pmtr3_fleet, port_of, running_headend, serve_pmtr3, until
from metercom.cli.main import main
from metercom.cli.rules import read_slots, render_slots
from metercom.clock import VirtualClock
from metercom.service.config_validate import parse_config

OVER_VOLTAGE = "(L1U > 253) || (L2U > 253) || (L3U > 253)"
RULES = f"""
[[rules]]
name = "ov-meter"
meters = ["p3m"]
expression = "{OVER_VOLTAGE}"
window = "10s"
recovery = "60s"
evaluate = "meter"

[[rules]]
name = "lamp"
meters = ["p3m"]
expression = "L2U > 250"
action = "high"
targets = ["relay3"]
dry_run = true
slot = 3
evaluate = "meter"

[[rules]]
name = "ov-headend"
meters = ["p3h"]
expression = "{OVER_VOLTAGE}"
"""


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(PMTR3_START, real_grace_s=0.005)


def fleet(port: int) -> str:
    return pmtr3_fleet(
        port, {"p3h": 1, "p3m": 2}, name="slots", objects=["32.7.0", "52.7.0", "72.7.0"], extra=RULES
    )


async def test_slots_show_the_pushed_rules_and_their_state(tmp_path: Path, vclock: VirtualClock) -> None:
    _bus, server = await serve_pmtr3([1, 2])
    port = port_of(server)
    config = parse_config(fleet(port))
    try:
        async with running_headend(tmp_path / "store.db", fleet(port), tmp_path / "state") as headend:
            await until(vclock, 5)
            before = await read_slots(config, "p3m")
            await until(vclock, 110)
            after = await read_slots(config, "p3m")
            headend_only = await read_slots(config, "p3h")
            await headend.schedules.stop()
            await headend.wait_idle()
    finally:
        server.close()
        await server.wait_closed()

    assert [v.slot for v in after] == list(range(1, 9))
    assert [v.empty for v in after] == [False, True, False, True, True, True, True, True]
    first, third = after[0], after[2]
    assert (first.name, first.expression, first.window, first.recovery) == (
        "ov-meter",
        OVER_VOLTAGE,
        timedelta(seconds=10),
        timedelta(seconds=60),
    )
    assert (first.action, first.targets, first.enabled, first.dry_run) == (
        "disconnect",
        ("relay1",),
        True,
        False,
    )
    assert (third.name, third.expression, third.action, third.targets, third.dry_run) == (
        "lamp",
        "L2U > 250",
        "high",
        ("relay3",),
        True,
    )
    # The meter's own state: normal at 5 s, triggered (once) on its sample of 107 s.
    assert (before[0].state, before[0].triggered_count, before[0].changed_at) == ("normal", 0, None)
    assert (first.state, first.triggered_count) == ("triggered", 1)
    assert first.changed_at == PMTR3_START + timedelta(seconds=107)
    assert not any(v.error for v in after)
    # Rules the head-end evaluates are not in the meter.
    assert all(v.empty for v in headend_only)

    out = StringIO()
    render_slots("p3m", after, out)
    text = out.getvalue()
    assert "ov-meter" in text
    assert OVER_VOLTAGE in text
    assert "10s" in text
    assert "1m" in text  # the recovery
    assert "relay3" in text
    assert "(empty)" in text
    assert "triggered" in text


def test_slots_of_an_unknown_meter_or_one_without_slots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(
        fleet(1)
        + """
[[meters]]
id = "optical"
protocol = "iec21"
url = "tcp://127.0.0.1:2"
""",
        encoding="utf-8",
    )
    assert main(["rules", "slots", "nope", "--config", str(config)]) == 2
    assert "no meter 'nope'" in capsys.readouterr().err
    assert main(["rules", "slots", "optical", "--config", str(config)]) == 2
    assert "has no rule slots" in capsys.readouterr().err

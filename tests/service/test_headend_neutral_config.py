"""Broken-neutral detector settings per meter and group (``[[neutral]]``): validated ranges,
defaults, and their effect in the real head-end on the virtual clock."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headend_support import port_of, running_headend
from metercom.clock import VirtualClock
from metercom.service.config_validate import ConfigValidationError, parse_config
from metercom.service.notify import AlarmKind
from metercom.service.rules import NeutralConfig
from metercom.sim.modbus import PhaseValues, build_bus

START = datetime(2026, 3, 2, tzinfo=UTC)
E = 230.0
# The star point displaced 15 % of E towards L1: L1 falls to 0.85 E, L2 and L3 rise to
# E * sqrt(1 + 0.15^2 + 0.15) (law of cosines, 120 degrees) - a floating neutral.
BROKEN = (0.85 * E, E * math.sqrt(1 + 0.15**2 + 0.15), E * math.sqrt(1 + 0.15**2 + 0.15))


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


def broken_neutral(phase: int, now: datetime) -> PhaseValues:
    return PhaseValues(voltage_v=BROKEN[phase - 1], current_a=2.0, power_w=400.0)


def fleet(port: int, neutral: str) -> str:
    meters = "".join(
        f"""
[[meters]]
id = "{name}"
protocol = "modbus"
line = "gw"
address = {{ unit = {unit} }}
device_profile = "pmtr3"
groups = [{groups}]
"""
        for name, unit, groups in (
            ("plain", 1, '"all"'),
            ("lenient", 2, '"all", "lenient"'),
            ("off", 3, '"all"'),
        )
    )
    return f"""
[[lines]]
id = "gw"
url = "tcp://127.0.0.1:{port}"
type = "tcp"
response_timeout_s = 1
{meters}
[[groups]]
id = "all"

[[groups]]
id = "lenient"

[[plans]]
id = "voltages"
objects = ["32.7.0", "52.7.0", "72.7.0"]

[[schedules]]
id = "every-second"
group = "all"
plan = "voltages"
every = "1s"
{neutral}
"""


SETTINGS = """
[[neutral]]
min_duration = "10s"

[[neutral]]
group = "lenient"
deviation = 0.2
time_constant = "1m"
alarm_score = 0.8
clear_score = 0.3

[[neutral]]
meters = ["off"]
enabled = false
"""


def test_settings_per_meter_and_group_with_defaults() -> None:
    config = parse_config(fleet(5020, SETTINGS))
    plain, lenient, off = (config.neutral_of(m) for m in ("plain", "lenient", "off"))
    assert plain is not None
    assert plain.default
    assert dict(plain.settings) == {"min_duration": timedelta(seconds=10)}
    assert lenient is not None
    assert dict(lenient.settings) == {
        "deviation": 0.2,
        "time_constant": timedelta(minutes=1),
        "alarm_score": 0.8,
        "clear_score": 0.3,
    }
    assert NeutralConfig(**lenient.settings).deviation == 0.2  # type: ignore[arg-type]
    assert off is not None
    assert not off.enabled
    assert parse_config(fleet(5020, "")).neutral_of("plain") is None  # no entries: the defaults


@pytest.mark.parametrize(
    ("neutral", "fragment"),
    [
        ("[[neutral]]\ndeviation = 0.6", "0.6 is out of range 0.01..0.45"),
        ("[[neutral]]\nnominal_voltage_v = 20", "20 is out of range 50..1000"),
        ('[[neutral]]\ntime_constant = "0s"', "is out of range 0:00:01..6:00:00"),
        ("[[neutral]]\nalarm_score = 0.5\nclear_score = 0.6", "need 0 <= clear_score < alarm_score"),
        ("[[neutral]]\n[[neutral]]", "a second [[neutral]] default"),
        ('[[neutral]]\nmeters = ["plain"]\n[[neutral]]\ngroup = "all"', "'plain' is already covered"),
        ('[[neutral]]\nmeters = ["nope"]', "unknown meter 'nope'"),
        ("[[neutral]]\nthreshold = 3", "threshold"),
        ('[[neutral]]\ndeviation = "high"', "expected"),
    ],
)
def test_invalid_settings_are_refused(neutral: str, fragment: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse_config(fleet(5020, neutral))
    assert fragment in str(info.value)


async def test_the_head_end_uses_each_meters_settings(tmp_path: Path, vclock: VirtualClock) -> None:
    bus = build_bus({1: "pmtr3", 2: "pmtr3", 3: "pmtr3"}, values=broken_neutral, start=START)
    server = await bus.serve_url("tcp://127.0.0.1:0", "tcp")
    text = fleet(port_of(server), SETTINGS)
    try:
        async with running_headend(tmp_path / "store.db", text, tmp_path / "state") as headend:
            await asyncio.sleep(120)
            await headend.schedules.stop()
            await headend.wait_idle()
            alarms = await headend.alarms(kind=AlarmKind.BROKEN_NEUTRAL)
            detectors = dict(headend.automation.neutral)
    finally:
        server.close()
        await server.wait_closed()
    # Only the meter with the default band (+-10 %) sees L1 at -15 %; +-20 % tolerates it, and
    # the third meter's detector is off.
    assert [a.meter_id for a in alarms] == ["plain"]
    assert detectors["plain"].config.min_duration == timedelta(seconds=10)
    assert detectors["lenient"].config.deviation == 0.2
    assert "off" not in detectors
    # score >= 0.75 after 30 s x ln 4 = 41.6 s of evidence, then held 10 s (not the default 20 s)
    assert START + timedelta(seconds=50) <= alarms[0].first_at <= START + timedelta(seconds=55)

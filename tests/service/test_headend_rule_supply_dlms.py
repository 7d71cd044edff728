"""A head-end rule whose target is the supply of a DLMS meter: its disconnect control (class 70)
is operated by recorded ``disconnect``/``reconnect`` commands and read back, on the virtual
clock, against the simulated DLMS meter over HLS-GMAC on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headend_support import DLMS_SECRETS, dlms_meter_toml, running_headend, serve_dlms_meter
from metercom.clock import VirtualClock
from metercom.model.rules import Command, RuleState
from metercom.service.config_validate import ConfigValidationError, parse_config
from metercom.service.store import CommandState
from metercom.sim.dlms import secret_environment

START = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.01)


def fleet(port: int, rule: str) -> str:
    return f"""{DLMS_SECRETS}{dlms_meter_toml("house-1", port, "houses")}
[[groups]]
id = "houses"

[[plans]]
id = "voltage"
objects = ["32.7.0"]

[[schedules]]
id = "minutely"
group = "houses"
plan = "voltage"
every = "1m"

[[rules]]
name = "test-trip"
group = "houses"
{rule}
"""


TRIP = 'expression = "L1U > 100"\naction = "disconnect"\ntargets = ["supply"]'


async def test_a_rule_disconnects_a_dlms_meter_through_its_disconnect_control(
    tmp_path: Path, vclock: VirtualClock
) -> None:
    meter = await serve_dlms_meter(vclock, seed=3)
    text = fleet(meter.port, TRIP)
    try:
        async with running_headend(
            tmp_path / "store.db", text, tmp_path / "state", env=secret_environment()
        ) as headend:
            await asyncio.sleep(90)
            await headend.schedules.stop()
            await headend.wait_idle()
            commands = await headend.store.commands(meter_id="house-1")
            actions = headend.rule_actions()
            relay = await headend.command(
                "read", "house-1", {"objects": ["0.0.96.3.10.255"]}, requested_by="test"
            )
    finally:
        meter.server.close()
        await meter.server.wait_closed()
    (action,) = actions
    assert (action.transition.state, action.transition.command, action.acted) == (
        RuleState.TRIGGERED,
        Command.DISCONNECT,
        True,
    )
    assert action.transition.at - START <= timedelta(seconds=61)  # the first read (10:01) decides
    (disconnect,) = commands
    assert (disconnect.kind, disconnect.requested_by, disconnect.state) == (
        "disconnect",
        "rule:test-trip",
        CommandState.SUCCEEDED,
    )
    assert disconnect.result == {"relay": "open", "confirmed": True}
    assert relay.state is CommandState.SUCCEEDED
    assert relay.result is not None
    assert [r["value"] for r in relay.result["readings"]] == [False]


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ('expression = "L1U > 100"\naction = "high"\ntargets = ["relay2"]', "has no output 'relay2'"),
        ('expression = "L1U > 100"\nevaluate = "meter"', "cannot evaluate rules itself"),
    ],
)
def test_a_dlms_meter_has_only_its_supply(rule: str, fragment: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse_config(fleet(4059, rule))
    assert fragment in str(info.value)

"""Rules the relay meter evaluates itself, pushed by the real head-end, and auxiliary outputs.

Two simulated pmtr3 meters behind one Modbus TCP gateway on loopback see the same voltages
(L2 at 260 V for the samples from t = 100 s to t = 199 s), both read every second on the virtual
clock. On ``p3h`` the head-end evaluates the over-voltage rule of the issue (10 s average, 60 s
recovery); on ``p3m`` the same rule has ``evaluate = "meter"``: the head-end pushes it into the
meter's rule slot (a recorded ``push_rules`` command: read back, compare, write what differs),
and the meter samples its own values once per second of its clock and switches itself. Both
open the supply relay on the sample of 107 s and close it on the sample of 262 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from headend_support import PMTR3_START, pmtr3_fleet, port_of, running_headend, serve_pmtr3, until
from metercom.clock import VirtualClock
from metercom.model.rules import Command, RuleState
from metercom.service.config_store import ConfigStore
from metercom.service.config_validate import ConfigValidationError, parse_config
from metercom.service.headend import HeadEnd
from metercom.service.notify import AlarmKind
from metercom.service.store import CommandState, Store
from metercom.sim.modbus import ModbusBus, SimulatedModbusDevice

START = PMTR3_START
S = timedelta(seconds=1)
OVER_VOLTAGE = "(L1U > 253) || (L2U > 253) || (L3U > 253)"


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


def fleet(port: int, rules: str, *, events: bool = False) -> str:
    log = 'events = [{ obis = "0-0:99.98.0*255", history = "1d" }]' if events else ""
    return pmtr3_fleet(
        port,
        {"p3h": 1, "p3m": 2},
        name="meter-rules",
        objects=["32.7.0", "52.7.0", "72.7.0", "31.7.0"],
        plan_extra=log,
        extra=rules,
    )


def rule(name: str, meter: str, *, evaluate: str = "head-end", extra: str = "") -> str:
    return f"""
[[rules]]
name = "{name}"
meters = ["{meter}"]
expression = "{OVER_VOLTAGE}"
window = "10s"
recovery = "60s"
evaluate = "{evaluate}"
{extra}
"""


BOTH = rule("ov-headend", "p3h") + rule("ov-meter", "p3m", evaluate="meter")


@dataclass
class Rig:
    store: Store
    configs: ConfigStore
    headend: HeadEnd
    bus: ModbusBus
    port: int

    def device(self, unit: int) -> SimulatedModbusDevice:
        return self.bus.devices[unit]

    def relay(self, unit: int, number: int = 1) -> bool:
        return bool(self.device(unit).registers("holding", 0x30, 1)[0] >> (number - 1) & 1)

    async def apply(self, rules: str) -> None:
        await self.configs.apply(fleet(self.port, rules), actor="test")


@asynccontextmanager
async def rig(tmp_path: Path, rules: str, *, events: bool = False) -> AsyncIterator[Rig]:
    bus, server = await serve_pmtr3([1, 2])
    port = port_of(server)
    try:
        async with running_headend(
            tmp_path / "store.db", fleet(port, rules, events=events), tmp_path / "state"
        ) as h:
            yield Rig(h.store, h.configs, h, bus, port)
    finally:
        server.close()
        await server.wait_closed()


def switched(device: SimulatedModbusDevice, relay: int = 1) -> list[tuple[str, float]]:
    """Relay changes in the device's event log: (event, seconds after START by its clock)."""
    spec = device.profile.event_log
    assert spec is not None
    out = []
    for seq, name, detail in device.events():
        if name in ("relay_opened", "relay_closed") and detail == relay:
            base = spec.entries.address(spec.index_of(seq))
            low, high = device.registers("holding", base + 2, 2)
            out.append((name, float((high << 16 | low) - int(START.timestamp()))))
    return out


async def finish(r: Rig) -> None:
    await r.headend.schedules.stop()
    await r.headend.wait_idle()
    await r.headend.automation.wait_pushes()


async def test_a_pushed_rule_switches_at_the_same_samples_as_the_head_end(
    tmp_path: Path, vclock: VirtualClock
) -> None:
    async with rig(tmp_path, BOTH, events=True) as r:
        await until(vclock, 5)
        assert r.headend.automation.pushed_rules("p3m") == ("ov-meter", "", "", "", "", "", "", "")
        await until(vclock, 106.5)
        assert r.relay(1)
        assert r.relay(2)
        await until(vclock, 108.5)
        assert not r.relay(1)
        assert not r.relay(2)
        await until(vclock, 263.5)
        assert r.relay(1)
        assert r.relay(2)
        await finish(r)
        head_commands = await r.store.commands(meter_id="p3h")
        meter_commands = await r.store.commands(meter_id="p3m")
        actions = r.headend.rule_actions()
        audit = await r.store.audit_log(action="command.*", limit=1000)
        alarms = await r.headend.alarms(kind=AlarmKind.RULE, meter_id="p3m")

    # The head-end's decisions for p3h ...
    assert [(a.transition.meter_id, a.transition.state, a.transition.at) for a in actions] == [
        ("p3h", RuleState.TRIGGERED, START + 107 * S),
        ("p3h", RuleState.RECOVERED, START + 262 * S),
    ]
    assert [c.kind for c in head_commands] == ["disconnect", "reconnect"]
    # ... and the meter's own for p3m, at exactly the same samples, by its own clock.
    assert switched(r.device(2)) == [("relay_opened", 107.0), ("relay_closed", 262.0)]
    for command, second in zip(head_commands, (107, 262), strict=True):  # requested on the sample
        assert second <= (command.requested_at - START).total_seconds() < second + 1
    assert r.device(2).rule_status(0)["triggered_count"] == 1
    # One recorded, audited push; the head-end never commanded p3m's relay.
    (push,) = meter_commands
    assert (push.kind, push.state, push.requested_by) == ("push_rules", CommandState.SUCCEEDED, "rules")
    assert push.result == {
        "written": [1],
        "cleared": [],
        "unchanged": [2, 3, 4, 5, 6, 7, 8],
        "confirmed": True,
    }
    assert push.args["slots"][0]["rule"] == "ov-meter"
    pushes = {e.action for e in audit if e.actor == "rules"}
    assert pushes >= {"command.requested", "command.running", "command.succeeded"}
    # The meter's rule events come back as rule alarms through its event log.
    (alarm,) = alarms
    assert alarm.first_at == START + 107 * S
    assert alarm.cleared_at == START + 262 * S


async def test_a_dry_run_pushed_rule_logs_but_does_not_switch(tmp_path: Path, vclock: VirtualClock) -> None:
    rules = rule("ov-meter", "p3m", evaluate="meter", extra="dry_run = true")
    async with rig(tmp_path, rules) as r:
        await until(vclock, 150)
        assert r.relay(2)
        await until(vclock, 265)
        assert r.relay(2)
        await finish(r)
        commands = await r.store.commands(meter_id="p3m")
    assert [c.kind for c in commands] == ["push_rules"]
    assert switched(r.device(2)) == []
    names = [name for _, name, _ in r.device(2).events() if name.startswith("rule_dry_run")]
    assert names == ["rule_dry_run_triggered", "rule_dry_run_recovered"]


async def test_an_auxiliary_output_goes_high_then_low(tmp_path: Path, vclock: VirtualClock) -> None:
    aux = 'action = "high"\ntargets = ["relay3"]'
    rules = rule("lamp-headend", "p3h", extra=aux) + rule("lamp-meter", "p3m", evaluate="meter", extra=aux)
    async with rig(tmp_path, rules) as r:
        await until(vclock, 106.5)
        assert not r.relay(1, 3)
        assert not r.relay(2, 3)
        await until(vclock, 108.5)
        assert r.relay(1, 3)
        assert r.relay(2, 3)
        assert r.relay(1)  # the supply stays on
        assert r.relay(2)
        await until(vclock, 263.5)
        assert not r.relay(1, 3)
        assert not r.relay(2, 3)
        await finish(r)
        commands = await r.store.commands(meter_id="p3h")
        actions = r.headend.rule_actions()
    assert [(c.kind, c.args["level"], c.state, c.result) for c in commands] == [
        ("set_output", "high", CommandState.SUCCEEDED, {"output": 3, "level": "high", "confirmed": True}),
        ("set_output", "low", CommandState.SUCCEEDED, {"output": 3, "level": "low", "confirmed": True}),
    ]
    assert [(a.transition.command, a.transition.at, a.acted) for a in actions] == [
        (Command.HIGH, START + 107 * S, True),
        (Command.LOW, START + 262 * S, True),
    ]
    assert switched(r.device(2), 3) == [("relay_closed", 107.0), ("relay_opened", 262.0)]


async def test_pushing_twice_writes_once_and_a_deleted_rule_is_cleared(
    tmp_path: Path, vclock: VirtualClock
) -> None:
    two = rule("ov-meter", "p3m", evaluate="meter") + rule(
        "lamp", "p3m", evaluate="meter", extra='action = "high"\ntargets = ["relay2"]\nslot = 4'
    )
    async with rig(tmp_path, two) as r:
        await until(vclock, 5)
        assert r.device(2).rule_slot_writes == 2
        again = await r.headend.automation.push_rules("p3m")
        assert again.result == {
            "written": [],
            "cleared": [],
            "unchanged": [1, 2, 3, 4, 5, 6, 7, 8],
            "confirmed": True,
        }
        # An unrelated change of the configuration pushes nothing new.
        await r.apply(two + '\n[[rules]]\nname = "other"\nmeters = ["p3h"]\nexpression = "L1I > 16"\n')
        await until(vclock, 10)
        assert r.device(2).rule_slot_writes == 2
        # The lamp rule is deleted: its slot (4) is cleared on the next read.
        await r.apply(rule("ov-meter", "p3m", evaluate="meter"))
        await until(vclock, 15)
        await r.headend.automation.wait_pushes()
        assert r.device(2).rule_slot_writes == 3
        assert r.device(2).rule_status(3)["crc"] == 0
        assert r.device(2).rule_status(0)["crc"] != 0
        # Every rule for the meter deleted: slot 1 is cleared too, then the head-end lets go.
        await r.apply("")
        await until(vclock, 20)
        await finish(r)
        commands = await r.store.commands(meter_id="p3m")
    assert r.device(2).rule_status(0)["crc"] == 0
    assert r.headend.automation.pushed_rules("p3m") is None
    assert [c.result["written"] if c.result else None for c in commands] == [[1, 4], [], [], []]
    assert [c.result["cleared"] if c.result else None for c in commands] == [[], [], [4], [1]]


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        (
            rule("x", "p3m", evaluate="meter", extra='targets = ["relay9"]\naction = "high"'),
            "has no output 'relay9'",
        ),
        (rule("x", "p3m", evaluate="somewhere"), "evaluate is 'head-end' or 'meter'"),
        (rule("x", "p3m", extra='action = "high"'), "switched with connect/disconnect, not high"),
        (rule("x", "p3m", extra='targets = ["relay2"]'), "switched with high/low, not disconnect"),
        (rule("x", "p3m", extra='targets = ["lamp"]'), "unknown target 'lamp'"),
    ],
)
def test_rule_targets_and_evaluation_are_validated(rules: str, fragment: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse_config(fleet(5020, rules))
    assert fragment in str(info.value)


def test_only_relay_meters_with_rule_slots_evaluate_rules() -> None:
    text = fleet(5020, rule("x", "pz", evaluate="meter")).replace(
        "[[groups]]",
        '[[meters]]\nid = "pz"\nprotocol = "modbus"\nline = "gw"\naddress = { unit = 3 }\n'
        'device_profile = "pzem004t"\n\n[[groups]]',
    )
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text)
    assert "meter 'pz' (pzem004t) cannot evaluate rules itself" in str(info.value)
    long_name = rule("x" * 30, "p3m", evaluate="meter").replace(
        OVER_VOLTAGE, " || ".join(f"(L{n % 3 + 1}U > {200 + n})" for n in range(20))
    )
    with pytest.raises(ConfigValidationError, match="a rule slot holds 232"):
        parse_config(fleet(5020, long_name))

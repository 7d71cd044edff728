"""Rules through the real head-end: a simulated pmtr3 relay meter (Modbus TCP on loopback) read
every second on the virtual clock, the over-voltage rule of the issue with a 10 s average and a
60 s recovery, relay commands recorded, executed once, read back and audited.

L2 is at 260 V for the samples from t = 100 s to t = 199 s (the meter stamps its values with its
own clock, whole seconds). The first 10 s average above 253 V is at t = 107 ((2 x 230 + 8 x 260)
/ 10 = 254), the first false one at t = 202, so the relay opens on the sample of 107 s and
closes on the sample of 262 s (60 s later); the commands are requested right then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from headend_support import PMTR3_START, pmtr3_fleet, port_of, running_headend, serve_pmtr3, until
from metercom.clock import VirtualClock
from metercom.model.rules import Command, RuleState
from metercom.service.automation import quantities
from metercom.service.headend import HeadEnd
from metercom.service.notify import AlarmKind
from metercom.service.store import CommandState, Store
from metercom.sim.modbus import ModbusBus, SimulatedModbusDevice

START = PMTR3_START
S = timedelta(seconds=1)
RULE = """
[[rules]]
name = "over-voltage"
group = "relays"
expression = "(L1U > 253) || (L2U > 253) || (L3U > 253)"
window = "10s"
recovery = "60s"
action = "disconnect"
targets = ["relay1"]
dry_run = {dry_run}
"""


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


def fleet(port: int, *, dry_run: bool = False, every: str = "1s") -> str:
    return pmtr3_fleet(
        port,
        {"p3": 1},
        name="rules",
        objects=["32.7.0", "52.7.0", "72.7.0", "31.7.0", "21.7.0"],
        every=every,
        extra=RULE.format(dry_run="true" if dry_run else "false"),
    )


@dataclass
class Rig:
    store: Store
    headend: HeadEnd
    bus: ModbusBus

    @property
    def device(self) -> SimulatedModbusDevice:
        return self.bus.devices[1]

    def relay_closed(self) -> bool:
        point = self.device.profile.point("relay_control")
        return bool(self.device.registers(point.table, point.address, 1)[0] & 1)


@asynccontextmanager
async def rig(store_url: str, tmp_path: Path, text: Callable[[int], str]) -> AsyncIterator[Rig]:
    bus, server = await serve_pmtr3([1])
    try:
        async with running_headend(store_url, text(port_of(server)), tmp_path / "state") as headend:
            yield Rig(headend.store, headend, bus)
    finally:
        server.close()
        await server.wait_closed()


async def test_over_voltage_rule_switches_the_relay_exactly_when_it_should(
    store_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with rig(store_url, tmp_path, fleet) as r:
        await until(vclock, 106.5)
        assert r.relay_closed()
        await until(vclock, 108.5)
        assert not r.relay_closed()  # opened on the sample of 107 s
        await until(vclock, 261.5)
        assert not r.relay_closed()  # the recovery holds it open
        await until(vclock, 263.5)
        assert r.relay_closed()
        await r.headend.schedules.stop()
        await r.headend.wait_idle()
        commands = await r.store.commands(meter_id="p3")
        actions = r.headend.rule_actions()
        audit = await r.store.audit_log(action="rule.*", subject="p3")
        alarms = await r.headend.alarms(kind=AlarmKind.RULE)

    assert [(c.kind, c.requested_by, c.state) for c in commands] == [
        ("disconnect", "rule:over-voltage", CommandState.SUCCEEDED),
        ("reconnect", "rule:over-voltage", CommandState.SUCCEEDED),
    ]
    # Requested on the deciding sample (107 s, 262 s), before the next one a second later.
    for command, second in zip(commands, (107, 262), strict=True):
        offset = (command.requested_at - START).total_seconds()
        assert second <= offset < second + 1, (command.kind, offset)
        assert command.finished_at is not None
    assert commands[0].result == {"relay": "open", "confirmed": True}
    assert commands[1].result == {"relay": "closed", "confirmed": True}
    assert commands[0].args == {"reason": "rule over-voltage"}
    assert [(a.transition.state, a.transition.command, a.transition.at, a.acted) for a in actions] == [
        (RuleState.TRIGGERED, Command.DISCONNECT, START + 107 * S, True),
        (RuleState.RECOVERED, Command.CONNECT, START + 262 * S, True),
    ]
    assert actions[0].transition.values_seen["L2U"] == Decimal(254)
    assert {(e.action, e.result) for e in audit} >= {("rule.triggered", "ok"), ("rule.recovered", "ok")}
    (alarm,) = alarms
    assert alarm.first_at == START + 107 * S
    assert alarm.cleared_at == START + 262 * S


async def test_a_dry_run_records_but_leaves_the_relay_untouched(
    store_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with rig(store_url, tmp_path, lambda port: fleet(port, dry_run=True)) as r:
        await until(vclock, 110)
        assert r.relay_closed()
        await until(vclock, 265)
        assert r.relay_closed()
        await r.headend.schedules.stop()
        await r.headend.wait_idle()
        commands = await r.store.commands(meter_id="p3")
        actions = r.headend.rule_actions()
        audit = await r.store.audit_log(action="rule.*", subject="p3")
    assert commands == []
    assert [(a.transition.state, a.transition.at, a.acted, a.dry_run) for a in actions] == [
        (RuleState.TRIGGERED, START + 107 * S, False, True),
        (RuleState.RECOVERED, START + 262 * S, False, True),
    ]
    assert [(e.action, e.result) for e in audit] == [
        ("rule.triggered", "dry_run"),
        ("rule.recovered", "dry_run"),
    ]


def test_obis_codes_map_to_rule_quantities() -> None:
    from metercom.model.obis import Obis
    from metercom.model.reading import Reading

    def r(code: str, value: str, unit: str | None = None, address: str = "") -> Reading:
        return Reading(Obis.parse(code), Decimal(value), unit, address=address)

    values = quantities(
        [
            r("1-0:32.7.0", "230.1", "V"),
            r("1-0:52.7.0", "231.0", "V"),
            r("1-0:72.7.0", "0.2299", "kV"),
            r("1-0:31.7.0", "1500", "mA"),
            r("1-0:21.7.0", "1.2", "kW"),
            r("1-0:41.7.0", "300", "W"),
            r("1-0:14.7.0", "50.0", "Hz", address="l1.frequency"),
            r("1-0:33.7.0", "0.97"),
            r("1-0:1.8.0", "12345", "Wh"),
            r("1-0:32.7.128", "400", "V"),  # line-to-line: no rule quantity
        ]
    )
    assert values == {
        "L1U": Decimal("230.1"),
        "L2U": Decimal("231.0"),
        "L3U": Decimal("229.9000"),
        "L1I": Decimal("1.500"),
        "L1p": Decimal("1200.0"),
        "L2p": Decimal(300),
        "Tf": Decimal("50.0"),
        "L1f": Decimal("50.0"),
        "L1pf": Decimal("0.97"),
        "Te": Decimal("12.345"),
        "TU": (Decimal("230.1") + Decimal("231.0") + Decimal("229.9")) / 3,
        "TI": Decimal("1.500"),
        "Tp": Decimal("1500.0"),
    }


def test_single_phase_codes_map_to_phase_one() -> None:
    """12.7.0 / 11.7.0 (any phase: the PZEM-004T's and IS 15959 meters' voltage and current)
    are L1U / L1I, unless the meter also gives the per-phase codes."""
    from metercom.model.obis import Obis
    from metercom.model.reading import Reading

    def r(code: str, value: str, unit: str | None = None) -> Reading:
        return Reading(Obis.parse(code), Decimal(value), unit)

    single = quantities(
        [r("1-0:12.7.0*255", "262.5", "V"), r("1-0:11.7.0", "2500", "mA"), r("1-0:1.7.0", "0.5", "kW")]
    )
    assert single == {
        "L1U": Decimal("262.5"),
        "L1I": Decimal("2.500"),
        "Tp": Decimal("500.0"),
        "TU": Decimal("262.5"),
        "TI": Decimal("2.500"),
    }
    both = quantities(
        [
            r("1-0:11.7.0", "9", "A"),
            r("1-0:12.7.0", "240", "V"),
            r("1-0:32.7.0", "230", "V"),
            r("1-0:31.7.0", "5", "A"),
        ]
    )
    assert (both["L1U"], both["L1I"], both["TU"], both["TI"]) == (230, 5, 230, 5)

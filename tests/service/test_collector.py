# ruff: noqa: ARG002
"""Collector and commands with scripted fake meter sessions: retry timing by error class,
quarantine with one unavailable and one available notification, priorities, idempotent commands."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metercom.clock import VirtualClock
from metercom.errors import AuthenticationError, RemoteProtocolError, TransportTimeout
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.collector import RetryPolicy
from metercom.service.config_model import LineConfig, MeterConfig, ReadPlan
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import (
    Borrowed,
    Capabilities,
    CollectedData,
    LinkPool,
    MeterContext,
    MeterSession,
)
from metercom.service.store import CommandState, ProfileRow, Store
from metercom.transport import SimulatedLine, Transport

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


CONFIG = """
[[lines]]
id = "bus"
url = "serial:///dev/ttyTEST0"
type = "rs485"
[[lines]]
id = "gw"
url = "tcp://192.0.2.1:502"
type = "tcp"
max_conversations = 2
[[meters]]
id = "a"
protocol = "iec21"
line = "bus"
address = { device = "1" }
[[meters]]
id = "b"
protocol = "iec21"
line = "bus"
address = { device = "2" }
[[meters]]
id = "c"
protocol = "iec21"
line = "bus"
address = { device = "3" }
[[meters]]
id = "t1"
protocol = "modbus"
line = "gw"
address = { unit = 1 }
device_profile = "pzem004t"
[[meters]]
id = "t2"
protocol = "modbus"
line = "gw"
address = { unit = 2 }
device_profile = "pzem004t"
[[meters]]
id = "t3"
protocol = "modbus"
line = "gw"
address = { unit = 3 }
device_profile = "pzem004t"
[[plans]]
id = "p"
objects = ["1.8.0"]
"""


class Fleet:
    """Fake sessions: per meter a script of outcomes (exceptions to raise, else success), a
    conversation length, and a log of (meter, start, end) in loop time."""

    def __init__(self, duration_s: float = 10.0) -> None:
        self.duration_s = duration_s
        self.script: dict[str, list[BaseException | None]] = {}
        self.log: list[tuple[str, float, float]] = []
        self.relay: dict[str, bool] = {}
        self.clock_offset_s: dict[str, float] = {}
        self.relay_broken = False
        self.line = SimulatedLine()

    async def open(self, line: LineConfig, meter: MeterConfig) -> Transport:
        return Borrowed(self.line.a)

    async def factory(self, ctx: MeterContext) -> MeterSession:
        return FakeSession(self, ctx.meter.id)


class FakeSession:
    capabilities = Capabilities(registers=True, profiles=True, read_clock=True, set_clock=True, relay=True)

    def __init__(self, fleet: Fleet, meter_id: str) -> None:
        self.fleet, self.meter_id = fleet, meter_id

    async def _talk(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(self.fleet.duration_s)
        self.fleet.log.append((self.meter_id, began, loop.time()))
        script = self.fleet.script.get(self.meter_id)
        if script:
            outcome = script.pop(0)
            if outcome is not None:
                raise outcome

    async def read(self, plan: ReadPlan, *, since: Mapping[str, datetime], now: datetime) -> CollectedData:
        await self._talk()
        return CollectedData(readings=(Reading(Obis.parse("1.8.0"), value=None, unit="kWh"),))

    async def read_objects(self, objects: Sequence[Obis]) -> list[Reading]:
        await self._talk()
        return [Reading(o, value="1") for o in objects]

    async def read_profile(self, obis: Obis, start: datetime, end: datetime) -> list[ProfileRow]:
        await self._talk()
        return []

    async def read_clock(self) -> datetime:
        await self._talk()
        now = asyncio.get_running_loop().time()
        return START + timedelta(seconds=now + self.fleet.clock_offset_s.get(self.meter_id, 0.0))

    async def set_clock(self, when: datetime) -> None:
        await self._talk()
        self.fleet.clock_offset_s[self.meter_id] = 0.0

    async def read_relay(self) -> bool:
        return self.fleet.relay.get(self.meter_id, True)

    async def disconnect(self) -> None:
        if not self.fleet.relay_broken:
            self.fleet.relay[self.meter_id] = False

    async def reconnect(self) -> None:
        self.fleet.relay[self.meter_id] = True

    async def close(self) -> None:
        return None


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def on_meter_unavailable(self, meter: str, at: datetime, error: BaseException) -> None:
        self.calls.append(("unavailable", meter))

    async def on_meter_available(self, meter: str, at: datetime) -> None:
        self.calls.append(("available", meter))


async def setup(store_url: str, fleet: Fleet, **options: Any) -> tuple[Store, HeadEnd]:
    store = await Store.open(store_url)
    configs = ConfigStore(store)
    await configs.apply(CONFIG, actor="test")
    headend = HeadEnd(store, configs, links=LinkPool(fleet.open), session_factory=fleet.factory, **options)
    await headend.start()
    return store, headend


async def test_transport_errors_retry_with_exponential_backoff(store_url: str, vclock: VirtualClock) -> None:
    fleet = Fleet(duration_s=1.0)
    fleet.script["a"] = [TransportTimeout("x"), TransportTimeout("x"), TransportTimeout("x"), None]
    store, headend = await setup(
        store_url, fleet, retry=RetryPolicy(transport_retries=3, transport_backoff_s=30)
    )
    t0 = asyncio.get_running_loop().time()
    outcome = await headend.read_now("a", "p")
    assert outcome.ok
    assert outcome.attempts == 4
    starts = [round(s - t0, 6) for _, s, _ in fleet.log]
    # each retry waits its backoff after the failed attempt ended (1 s conversations)
    assert starts == [0.0, 31.0, 92.0, 213.0]
    assert len(await store.readings("a", obis="1-0:1.8.0*255")) == 1
    await headend.stop()
    await store.close()


async def test_protocol_error_retried_once_then_quarantined_with_bytes_audited(
    store_url: str, vclock: VirtualClock
) -> None:
    fleet = Fleet(duration_s=1.0)
    bad = RemoteProtocolError("bad BCC", layer="iec62056-21", data=b"\x02garbage\x03")
    fleet.script["a"] = [bad, bad]
    listener = Listener()
    store, headend = await setup(store_url, fleet, listener=listener)
    outcome = await headend.read_now("a", "p")
    assert not outcome.ok
    assert outcome.attempts == 2
    (status,) = [s for s in headend.status() if s.meter_id == "a"]
    assert status.quarantined
    assert status.quarantined_until is not None
    entries = await store.audit_log(action="meter.protocol_error")
    assert len(entries) == 2
    assert entries[0].detail is not None
    assert entries[0].detail["bytes"] == b"\x02garbage\x03".hex()
    assert listener.calls == [("unavailable", "a")]
    await headend.stop()
    await store.close()


async def test_auth_failure_quarantines_with_one_alarm_each_way(store_url: str, vclock: VirtualClock) -> None:
    fleet = Fleet(duration_s=1.0)
    fleet.script["a"] = [AuthenticationError("wrong password")]
    listener = Listener()
    store, headend = await setup(store_url, fleet, listener=listener)
    first = await headend.read_now("a", "p")
    assert not first.ok
    assert first.attempts == 1
    again = await headend.read_now("a", "p")  # quarantined: no conversation
    assert not again.ok
    assert len(fleet.log) == 1
    assert headend.collector.request("a", "p") is False
    assert headend.release("a")
    assert (await headend.read_now("a", "p")).ok
    assert (await headend.read_now("a", "p")).ok
    assert listener.calls == [("unavailable", "a"), ("available", "a")]
    await headend.stop()
    await store.close()


async def test_serial_line_one_at_a_time_and_on_demand_overtakes(
    store_url: str, vclock: VirtualClock
) -> None:
    fleet = Fleet(duration_s=10.0)
    store, headend = await setup(store_url, fleet)
    for meter in ("a", "b", "c"):
        headend.collector.request(meter, "p")
    await asyncio.sleep(1.0)  # "a" is talking, "b" and "c" wait
    # An on-demand read (no store work before its conversation, so the timing is exact).
    assert (await headend.read_now("c", "p")).ok
    await headend.wait_idle()
    order = [meter for meter, _, _ in fleet.log]
    assert order[:2] == ["a", "c"]  # the command ran right after the running conversation
    spans = sorted((s, e) for _, s, e in fleet.log)
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))
    await headend.stop()
    await store.close()


async def test_tcp_line_runs_in_parallel_up_to_its_limit(store_url: str, vclock: VirtualClock) -> None:
    fleet = Fleet(duration_s=10.0)
    store, headend = await setup(store_url, fleet)
    for meter in ("t1", "t2", "t3"):
        headend.collector.request(meter, "p")
    await headend.wait_idle()
    lines = {s.line_id: s for s in headend.line_status()}
    assert lines["gw"].peak_running == 2
    starts = sorted(round(s, 6) for m, s, _ in fleet.log)
    assert starts[0] == starts[1]
    assert starts[2] >= starts[0] + 10.0
    await headend.stop()
    await store.close()


async def test_command_idempotency_and_relay_read_back(store_url: str, vclock: VirtualClock) -> None:
    fleet = Fleet(duration_s=1.0)
    store, headend = await setup(store_url, fleet)
    first = await headend.command("disconnect", "t1", requested_by="alice", idempotency_key="k-1")
    assert first.state is CommandState.SUCCEEDED
    assert first.result == {"relay": "open", "confirmed": True}
    again = await headend.command("disconnect", "t1", requested_by="alice", idempotency_key="k-1")
    assert again.id == first.id
    assert again.result == first.result
    assert fleet.relay["t1"] is False
    fleet.relay_broken = True
    fleet.relay["t2"] = True
    failed = await headend.command("disconnect", "t2", requested_by="bob", idempotency_key="k-2")
    assert failed.state is CommandState.FAILED
    assert failed.error is not None
    assert "reads back closed" in failed.error
    audit = await store.audit_log(action="command.*")
    assert {e.action for e in audit} >= {"command.requested", "command.running", "command.succeeded"}
    assert all(e.actor in ("alice", "bob") for e in audit)
    await headend.stop()
    await store.close()


async def test_time_sync_only_beyond_threshold_and_confirmed(store_url: str, vclock: VirtualClock) -> None:
    fleet = Fleet(duration_s=1.0)
    store, headend = await setup(store_url, fleet)
    fleet.clock_offset_s["a"] = 4.0
    small = await headend.command("time_sync", "a", {"threshold_s": 10}, requested_by="op")
    assert small.result is not None
    assert small.result["set"] is False
    fleet.clock_offset_s["a"] = -95.0
    big = await headend.command("time_sync", "a", {"threshold_s": 10}, requested_by="op")
    assert big.state is CommandState.SUCCEEDED
    assert big.result is not None
    assert big.result["set"] is True
    assert big.result["confirmed"] is True
    assert abs(big.result["skew_s"] + 95.0) < 1e-3
    assert abs(big.result["skew_after_s"]) < 10
    await headend.stop()
    await store.close()

"""``[[upstreams]]``: validation with lines, the sinks built from it, and the head-end forwarding
what it collects (sinks registered before collection, re-applied on a configuration change)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headend_support import OpticalLine
from metercom.clock import VirtualClock
from metercom.service.central import CentralReceiver
from metercom.service.config_forward import build_upstreams
from metercom.service.config_store import ConfigStore
from metercom.service.config_validate import ConfigValidationError, parse_config
from metercom.service.forward import HttpSink, JetStreamSink, MqttSink
from metercom.service.headend import HeadEnd
from metercom.service.meters import LinkPool
from metercom.service.secrets import Secret
from metercom.service.store import Store

START = datetime(2026, 3, 2, tzinfo=UTC)
ENV = {"CENTRAL_SECRET": "s3cret", "MQTT_PASSWORD": "pw"}

BASE = """\
[service]
name = "substation-7"

[secrets]
central = "env:CENTRAL_SECRET"

[[lines]]
id = "opt-1"
url = "serial:///dev/ttyTEST0"
type = "serial"

[[meters]]
id = "m-1"
protocol = "iec21"
line = "opt-1"
address = { device = "1000" }
groups = ["all"]

[[groups]]
id = "all"

[[plans]]
id = "billing"
objects = ["1.8.0", "2.8.0"]

[[schedules]]
id = "hourly"
group = "all"
plan = "billing"
every = "1h"
"""

THREE = """
[[upstreams]]
id = "central"
kind = "http"
url = "https://central.example/batches"
secret = "secret:central"
interval = "30s"
batch_size = 200
max_rate_per_s = 500
keep_unsent = "30d"

[[upstreams]]
id = "home"
kind = "mqtt"
url = "mqtt://127.0.0.1:1883"
username = "meter"
password = "env:MQTT_PASSWORD"
topic_prefix = "home/meters"
discovery = false
state_topics = true

[[upstreams]]
id = "js"
kind = "nats"
url = "nats://127.0.0.1:4222"
stream = "FLEET"
subject_prefix = "fleet.batches"
duplicate_window = "2h"
enabled = false
"""


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_three_upstreams_parse_into_sinks_and_policies() -> None:
    config = parse_config(BASE + THREE, check_secrets=True, env=ENV)
    central, home, js = config.upstreams
    assert (central.kind, central.batch_size, central.max_rate_per_s) == ("http", 200, 500.0)
    assert central.interval == timedelta(seconds=30)
    assert central.keep_unsent == timedelta(days=30)
    assert home.keep_unsent == timedelta(days=90)  # the default
    assert (home.topic_prefix, home.discovery, home.state_topics) == ("home/meters", False, True)
    assert (js.stream, js.subject_prefix, js.duplicate_window, js.enabled) == (
        "FLEET",
        "fleet.batches",
        timedelta(hours=2),
        False,
    )
    built = build_upstreams(config, env=ENV)
    assert [u.sink.name for u in built] == ["central", "home"]  # js is disabled
    http, mqtt = (u.sink for u in built)
    assert isinstance(http, HttpSink)
    assert http.source == "substation-7"
    assert http.build_request  # signed with the resolved secret, never shown
    assert "s3cret" not in repr(http)
    assert isinstance(mqtt, MqttSink)
    assert mqtt.data_topic == "home/meters/substation-7/batches"
    assert (mqtt.discovery, mqtt.state_topics) == (False, True)
    assert mqtt.confirm == "receiver"  # the central echoes ids unless confirm = "broker"
    assert built[0].policy.batch_size == 200
    assert built[0].policy.max_rate_per_s == 500.0
    assert built[0].policy.interval_s == 30.0
    assert built[0].keep_unsent == timedelta(days=30)
    assert built[1].policy.max_rate_per_s is None


def test_a_nats_upstream_builds_a_jetstream_sink() -> None:
    text = BASE + THREE.replace("enabled = false", "enabled = true")
    (_, _, js) = build_upstreams(parse_config(text))
    assert isinstance(js.sink, JetStreamSink)
    assert (js.sink.stream, js.sink.subject) == ("FLEET", "fleet.batches.substation-7")
    assert js.sink.duplicate_window_s == 7200.0


@pytest.mark.parametrize(
    ("replace", "by", "key", "message"),
    [
        ('kind = "http"', 'kind = "ftp"', "upstreams[0].kind", "one of http, mqtt, nats"),
        ('url = "https://central', 'url = "mqtt://central', "upstreams[0].url", "https://host"),
        ('url = "mqtt://127.0.0.1:1883"', 'url = "mqtt://u:p@h"', "upstreams[1].url", "no credentials"),
        ('secret = "secret:central"', 'secret = "secret:nope"', "upstreams[0].secret", "unknown secret"),
        ('interval = "30s"', 'interval = "soon"', "upstreams[0].interval", "cannot read the duration"),
        ("batch_size = 200", "batch_size = 0", "upstreams[0].batch_size", "out of range"),
        ("max_rate_per_s = 500", "max_rate_per_s = -1", "upstreams[0].max_rate_per_s", "positive"),
        ('keep_unsent = "30d"', 'keep_unsent = "0s"', "upstreams[0].keep_unsent", "more than 0"),
        ('topic_prefix = "home/meters"', 'topic_prefix = "a/#"', "upstreams[1].topic_prefix", "topic"),
        ('stream = "FLEET"', 'stream = "a.b"', "upstreams[2].stream", "stream name"),
        ("discovery = false", "discovery = 1", "upstreams[1].discovery", "expected"),
        ("state_topics = true", 'confirm = "nobody"', "upstreams[1].confirm", "receiver or broker"),
        ('duplicate_window = "2h"', 'stream_x = "2h"', "upstreams[2].stream_x", "unknown key"),
    ],
)
def test_problems_point_at_the_line(replace: str, by: str, key: str, message: str) -> None:
    text = BASE + THREE.replace(replace, by, 1)
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text, source="fleet.toml")
    problems = [p for p in info.value.problems if p.key == key]
    assert problems, [str(p) for p in info.value.problems]
    assert message in problems[0].message
    assert problems[0].line == line_of(text, by)
    assert str(problems[0]).startswith(f"fleet.toml:{problems[0].line}: {key}: ")


def test_http_needs_a_secret_and_ids_are_unique() -> None:
    text = BASE + THREE.replace('secret = "secret:central"\n', "").replace('id = "home"', 'id = "central"')
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text, source="fleet.toml")
    shown = [str(p) for p in info.value.problems]
    assert any("upstreams[0]: an http upstream needs 'secret'" in s for s in shown), shown
    assert any("upstreams[1].id: duplicate upstream id 'central'" in s for s in shown), shown


def test_absent_upstreams_mean_no_forwarding() -> None:
    assert parse_config(BASE).upstreams == ()


# -- the head-end --------------------------------------------------------------------------------


def upstream(name: str, url: str) -> str:
    return (
        f'\n[[upstreams]]\nid = "{name}"\nkind = "http"\nurl = "{url}"\nsecret = "secret:central"\n'
        'interval = "1m"\nconfirm_timeout_s = 20\n'
    )


async def received(store: Store) -> set[tuple[str, datetime]]:
    return {(r.obis, r.capture_time) for r in await store.readings("m-1")}


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


async def test_the_head_end_forwards_what_it_collects_and_follows_config_changes(
    tmp_path: Path, vclock: VirtualClock
) -> None:
    clock = vclock
    secret = Secret("s3cret", origin="test")
    async with (
        await Store.open(tmp_path / "a.db") as central_a,
        await Store.open(tmp_path / "b.db") as central_b,
    ):
        receiver_a, receiver_b = (
            CentralReceiver(central_a, secret=secret),
            CentralReceiver(central_b, secret=secret),
        )
        url_a = await receiver_a.start_http("http://127.0.0.1:0")
        url_b = await receiver_b.start_http("http://127.0.0.1:0")
        sim = OpticalLine("opt-1")
        store = await Store.open(tmp_path / "local.db", clock=clock)
        configs = ConfigStore(store)
        await configs.apply(BASE + upstream("central", url_a), actor="test")
        headend = HeadEnd(store, configs, links=LinkPool(sim.open), clock=clock, env=ENV)
        await headend.start()
        # Registered before the first read: the first readings collected are in the outbox.
        assert [b.sink for b in await store.outbox_backlog()] == ["central"]
        await asyncio.sleep(2.5 * 3600)
        await headend.schedules.stop()
        await headend.wait_idle()
        assert headend.forwarding.forwarder is not None
        headend.forwarding.wake()
        await asyncio.sleep(120)
        local = {(r.obis, r.capture_time) for r in await store.readings("m-1")}
        assert len(local) >= 2  # read at 01:00 and 02:00
        assert await received(central_a) == local
        (status,) = await headend.forwarding_status()
        assert (status.sink, status.pending, status.confirmed_total) == ("central", 0, len(local))
        assert receiver_a.stats.inserted == len(local)

        # A new version adds a second upstream, without a restart: the running forwarder is
        # replaced, and the new sink sees what is collected from now on.
        first = headend.forwarding.forwarder
        await configs.apply(BASE + upstream("central", url_a) + upstream("backup", url_b), actor="test")
        assert headend.forwarding.forwarder is not first
        assert set(headend.forwarding.forwarder.sinks) == {"central", "backup"}  # type: ignore[union-attr]
        await headend.read_now("m-1", "billing")
        headend.forwarding.wake()
        await asyncio.sleep(120)
        local = await received(store)
        assert await received(central_a) == local
        newest = max(t for _, t in local)
        assert await received(central_b) == {(o, t) for o, t in local if t == newest}

        # An unchanged upstream list leaves forwarding alone; removing all of them stops it
        # (the removed sinks stay registered: dropping their data is explicit).
        same = headend.forwarding.forwarder
        await configs.apply(
            BASE + upstream("central", url_a) + upstream("backup", url_b) + "\n# x\n", actor="t"
        )
        assert headend.forwarding.forwarder is same
        await configs.apply(BASE, actor="test")
        assert headend.forwarding.forwarder is not None
        assert headend.forwarding.forwarder.sinks == ()
        assert {b.sink for b in await store.outbox_backlog()} == {"central", "backup"}
        assert await headend.forwarding_status() == []
        await headend.stop()
        assert headend.forwarding.forwarder is None
        await sim.close()
        await store.close()
        await receiver_a.close()
        await receiver_b.close()


async def test_without_upstreams_nothing_is_forwarded_or_enqueued(
    tmp_path: Path, vclock: VirtualClock
) -> None:
    sim = OpticalLine("opt-1")
    async with await Store.open(tmp_path / "local.db", clock=vclock) as store:
        configs = ConfigStore(store)
        await configs.apply(BASE, actor="test")
        headend = HeadEnd(store, configs, links=LinkPool(sim.open), clock=vclock, env=ENV)
        await headend.start()
        await asyncio.sleep(1.5 * 3600)
        await headend.schedules.stop()
        await headend.wait_idle()
        assert await store.readings("m-1")
        assert headend.forwarding.forwarder is None
        assert await headend.forwarding_status() == []
        assert await store.outbox_backlog() == []
        await headend.stop()
    await sim.close()

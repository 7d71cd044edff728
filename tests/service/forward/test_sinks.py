"""Each sink against the real servers on loopback and the reference receiver: HTTP (signed,
id echoed), MQTT via Mosquitto (QoS 1, id echoed on the reply topic, retained state and Home
Assistant discovery), NATS JetStream (Nats-Msg-Id, PubAck). A broker's acknowledgement alone
never confirms a batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import nats
import pytest

from metercom.clock import VirtualClock
from metercom.errors import UploadError
from metercom.service.central import CentralReceiver
from metercom.service.forward import (
    Forwarder,
    ForwardPolicy,
    HttpSink,
    JetStreamSink,
    MqttSink,
    Upstream,
)
from metercom.service.secrets import Secret
from metercom.service.store import Store

from .conftest import Fleet

SECRET = Secret("s3cret-for-tests", origin="test")
FAST = ForwardPolicy(batch_size=50, interval_s=1.0, confirm_timeout_s=5.0, retry_min_s=0.5, retry_max_s=5.0)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(real_grace_s=0.02)


async def all_readings(store: Store, ids: list[str]) -> set[tuple[str, str, object, str]]:
    out = set()
    for meter_id in ids:
        for r in await store.readings(meter_id):
            out.add((r.meter_id, r.obis, r.capture_time, str(r.value)))
    return out


async def forward_all(local: Store, sink: object, *, policy: ForwardPolicy = FAST) -> Forwarder:
    forwarder = Forwarder(local, [Upstream(sink, policy)])  # type: ignore[arg-type]
    await forwarder.start()
    async with asyncio.timeout(300):
        await forwarder.wait_drained(poll_s=0.5)
    await forwarder.stop()
    return forwarder


async def test_http_sink(tmp_path: Path, fleet: Callable[..., Fleet], vclock: VirtualClock) -> None:
    f = fleet(5)
    async with (
        await f.open(tmp_path / "local.db") as local,
        await Store.open(tmp_path / "central.db") as central,
    ):
        receiver = CentralReceiver(central, secret=SECRET)
        url = await receiver.start_http("http://127.0.0.1:0")
        sink = HttpSink("central", url, source="node-a", secret=SECRET)
        await Forwarder(local, [Upstream(sink, FAST)]).register()
        for tick in range(10):
            await f.write(local, tick)
        await forward_all(local, sink)
        assert await all_readings(central, f.ids) == f.expected(range(10))
        assert receiver.stats.inserted == 200
        assert receiver.stats.duplicates == receiver.stats.unchanged == 0
        # A wrong signature is refused and confirms nothing.
        await f.write(local, 10)
        batch = await local.claim_outbox_batch("central", limit=5)
        assert batch is not None
        bad = HttpSink("central", url, source="node-a", secret=Secret("wrong", origin="test"))
        with pytest.raises(UploadError, match="401"):
            await bad.send(batch)
        await bad.close()
        # The right one: the receiver echoes the id, a resend is recognised.
        await sink.send(batch)
        await sink.send(batch)
        assert receiver.stats.duplicates == 1
        await sink.close()
        await receiver.close()


async def clear_retained(topics: list[str]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)


async def retained(prefix: str, count: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(prefix, qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                out[str(message.topic)] = bytes(message.payload)  # type: ignore[arg-type]
                if len(out) >= count:
                    break
    return out


async def test_mqtt_sink(
    tmp_path: Path,
    fleet: Callable[..., Fleet],
    mqtt_url: str,
    unique: str,
    vclock: VirtualClock,
) -> None:
    mqtt_cleanup: list[str] = []
    try:
        await _mqtt_sink(tmp_path, fleet(3), mqtt_url, unique, mqtt_cleanup)
    finally:
        await clear_retained(mqtt_cleanup)


async def _mqtt_sink(tmp_path: Path, f: Fleet, mqtt_url: str, unique: str, mqtt_cleanup: list[str]) -> None:
    prefix = f"mctest{unique}"
    node = f"node-{unique}"
    async with (
        await f.open(tmp_path / "local.db") as local,
        await Store.open(tmp_path / "central.db") as central,
    ):
        sink = MqttSink("broker", mqtt_url, source=node, topic_prefix=prefix)
        await Forwarder(local, [Upstream(sink, FAST)]).register()
        for tick in range(6):
            await f.write(local, tick)
        # No receiver: the broker accepts every publish (PUBACK), but nothing is confirmed.
        batch = await local.claim_outbox_batch("broker", limit=10)
        assert batch is not None
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                await sink.send(batch)
        (backlog,) = await local.outbox_backlog("broker")
        assert backlog.confirmed_total == 0
        receiver = CentralReceiver(central)
        await receiver.start_mqtt(mqtt_url, topic_prefix=prefix)
        await forward_all(local, sink)
        assert await all_readings(central, f.ids) == f.expected(range(6))
        assert receiver.stats.unchanged == 0
        await receiver.close()
    # Retained state (newest values) and Home Assistant discovery.
    series = len(f.ids) * 4
    mqtt_cleanup.extend(
        [f"{prefix}/{node}/state/{m}/{o}" for m in f.ids for o in ("1-0_1_8_0_255", "1-0_2_8_0_255")]
    )
    state = await retained(f"{prefix}/{node}/state/#", series)
    mqtt_cleanup.extend(state)
    assert state[f"{prefix}/{node}/state/m001/1-0_1_8_0_255"] == b"5.1"  # tick 5 of meter 1: (50+1)/10
    configs = await retained(f"homeassistant/sensor/{node}/+/config", series)
    mqtt_cleanup.extend(configs)
    energy = json.loads(configs[f"homeassistant/sensor/{node}/m001_1-0_1_8_0_255/config"])
    assert energy["device_class"] == "energy"
    assert energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "kWh"
    assert energy["state_topic"] == f"{prefix}/{node}/state/m001/1-0_1_8_0_255"
    assert energy["device"]["identifiers"] == [f"metercom_{node.replace('-', '-')}_m001"]
    volts = json.loads(configs[f"homeassistant/sensor/{node}/m001_1-0_32_7_0_255/config"])
    assert (volts["device_class"], volts["state_class"]) == ("voltage", "measurement")


async def test_jetstream_sink(
    tmp_path: Path, fleet: Callable[..., Fleet], nats_url: str, unique: str, vclock: VirtualClock
) -> None:
    f = fleet(3)
    stream = f"MCTEST{unique}"
    subjects = f"mctest{unique}"
    try:
        async with (
            await f.open(tmp_path / "local.db") as local,
            await Store.open(tmp_path / "central.db") as central,
        ):
            sink = JetStreamSink(
                "js",
                nats_url,
                source="node-a",
                stream=stream,
                subject_prefix=subjects,
                duplicate_window_s=120,
            )
            await Forwarder(local, [Upstream(sink, FAST)]).register()
            for tick in range(6):
                await f.write(local, tick)
            # The PubAck confirms: the stream stored it. A resend of the same id is a duplicate.
            batch = await local.claim_outbox_batch("js", limit=10)
            assert batch is not None
            await sink.send(batch)
            await sink.send(batch)
            assert sink.duplicates == 1
            await local.confirm_outbox_batch("js", batch.batch_id)
            receiver = CentralReceiver(central)
            await receiver.start_nats(nats_url, stream=stream, subject_prefix=subjects, fetch_timeout_s=1.0)
            await forward_all(local, sink)
            async with asyncio.timeout(60):
                while receiver.stats.inserted < 72:  # noqa: ASYNC110 - a counter, no event
                    await asyncio.sleep(0.2)
            assert await all_readings(central, f.ids) == f.expected(range(6))
            assert receiver.stats.unchanged == receiver.stats.duplicates == 0
            await receiver.close()
    finally:
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()


async def test_unreachable_sinks_fail_with_upload_error(
    tmp_path: Path, fleet: Callable[..., Fleet], vclock: VirtualClock
) -> None:
    f = fleet(1)
    async with await f.open(tmp_path / "local.db") as local:
        sinks = [
            HttpSink("h", "http://127.0.0.1:9/batches", source="n", secret=SECRET, timeout_s=2),
            MqttSink("m", "mqtt://127.0.0.1:9", source="n", connect_timeout_s=2),
            JetStreamSink("j", "nats://127.0.0.1:9", source="n", connect_timeout_s=2),
        ]
        await local.register_outbox_sinks([s.name for s in sinks])
        await f.write(local, 0)
        for s in sinks:
            batch = await local.claim_outbox_batch(s.name, limit=10)
            assert batch is not None
            with pytest.raises(UploadError):
                await s.send(batch)
            await s.close()
        forwarder = Forwarder(local, [Upstream(s, FAST) for s in sinks])
        await forwarder.start()
        await asyncio.sleep(30)
        status = await forwarder.status()
        await forwarder.stop()
        assert all(s.pending == 4 and s.in_flight == 4 and not s.available for s in status), status
        assert all(s.oldest_age_s >= 30 for s in status)
        assert all(s.last_error for s in status)

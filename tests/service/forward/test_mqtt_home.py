"""MQTT for a home without a central receiver (``confirm = "broker"``): Mosquitto and Home
Assistant only. The broker's PUBACKs confirm, the retained state topics carry the newest values
and the discovery configs make the meters appear; profile rows and events never get a state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.service.forward import MqttSink
from metercom.service.store import MeterEvent

from .conftest import T0, Fleet
from .test_sinks import FAST, clear_retained, forward_all, retained


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(real_grace_s=0.02)


async def test_home_assistant_without_a_central(
    tmp_path: Path, fleet: Callable[..., Fleet], mqtt_url: str, unique: str, vclock: VirtualClock
) -> None:
    f = fleet(2)
    node = f"home-{unique}"
    prefix = f"mctest{unique}"
    batches: list[bytes] = []
    cleanup: list[str] = []
    try:
        async with aiomqtt.Client("127.0.0.1", 1883) as listener:
            await listener.subscribe(f"{prefix}/{node}/batches", qos=1)

            async def listen() -> None:
                async for message in listener.messages:
                    batches.append(bytes(message.payload))  # type: ignore[arg-type]  # noqa: PERF401 - read while running

            task = asyncio.create_task(listen())
            async with await f.open(tmp_path / "local.db") as local:
                sink = MqttSink("home", mqtt_url, source=node, topic_prefix=prefix, confirm="broker")
                await local.register_outbox_sinks(["home"])
                for tick in range(3):
                    await f.write(local, tick)
                await local.save_events("m000", [MeterEvent(T0, 1, "0-0:99.98.0*255", "power down")])
                forwarder = await forward_all(local, sink, policy=FAST)
                (status,) = await forwarder.status()
                assert (status.pending, status.confirmed_total) == (0, 3 * 2 * 4 + 1)
            async with asyncio.timeout(20):
                while sum(len(json.loads(b)["readings"]) for b in batches) < 3 * 2 * 4:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert any("events" in json.loads(b) for b in batches)
        series = len(f.ids) * 4
        state = await retained(f"{prefix}/{node}/state/#", series)
        cleanup.extend(state)
        assert len(state) == series  # readings only: the event made no state topic
        assert state[f"{prefix}/{node}/state/m001/1-0_1_8_0_255"] == b"2.1"  # tick 2 of meter 1
        configs = await retained(f"homeassistant/sensor/{node}/+/config", series)
        cleanup.extend(configs)
        power = json.loads(configs[f"homeassistant/sensor/{node}/m000_1-0_16_7_0_255/config"])
        assert (power["device_class"], power["unit_of_measurement"]) == ("power", "W")
    finally:
        await clear_retained(cleanup)


def test_confirm_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match="confirm is one of receiver, broker"):
        MqttSink("x", "mqtt://127.0.0.1", source="n", confirm="nobody")

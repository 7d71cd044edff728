"""MQTT sink (aiomqtt): batches published with QoS 1, confirmed by the central's echo of the id;
retained state topics and Home Assistant discovery so a home user's meters appear by themselves.

Rule: the broker's PUBACK only says the broker took the message, not that the central system
stored it, so it is not a confirmation. A batch counts as delivered when the central receiver
(:mod:`metercom.service.central`, or any system speaking the same topics) publishes the batch
id on the reply topic after storing the batch. Topics (``<node>`` is the source name made
topic-safe by :func:`topic_token`)::

    <prefix>/<node>/batches               batch JSON (metercom-batch/1), QoS 1     -> central
    <prefix>/<node>/confirmations         {"batch_id": ...} after storing, QoS 1  <- central
    <prefix>/<node>/state/<meter>/<obis>  last value, retained, QoS 1 (after confirmation)
    homeassistant/sensor/<node>/<meter>_<obis>/config   discovery config, retained

Without a central receiver (a home: Mosquitto and Home Assistant, nothing else), there is
nobody to echo an id: with ``confirm="broker"`` the sink publishes the batch and the state
topics with QoS 1 and counts the broker's PUBACKs as the confirmation (the broker is then the
destination: it keeps the retained state Home Assistant reads). That is the only confirmation
such a setup offers, and it is never the default.

Theory of operation: one connection per sink (clean session), made on first send and again
after any failure; a reader task resolves the waiting send when the confirmation with its id
arrives. A confirmation lost anywhere (the central was down, the reply was dropped, we were
disconnected) ends in the forwarder's timeout and a resend of the same batch, which the
central recognises and confirms again. State topics carry the newest value of each
(meter, OBIS) seen in a confirmed batch, never an older one (a backlog drained after an outage
does not make the dashboard go back in time). Discovery configs (``device_class``, ``unit``,
``state_class`` from the unit) are published once per series and process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import urllib.parse
from datetime import datetime
from typing import Any, Final

import aiomqtt

from metercom.errors import ConfigError, InputError, UploadError
from metercom.model.obis import Obis
from metercom.service.forward.sink import resolve_secret_text
from metercom.service.forward.wire import decode_confirmation, encode_batch, is_reading
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import OutboxBatch, OutboxItem

__all__ = [
    "CONFIRM_MODES",
    "MqttSink",
    "discovery_config",
    "parse_mqtt_url",
    "topic_token",
]

log = logging.getLogger(__name__)

_STATE_CONCURRENCY: Final = 8
#: Who confirms a batch: the central receiver (its echo of the id) or the broker (PUBACKs).
CONFIRM_MODES: Final = ("receiver", "broker")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
#: unit -> (Home Assistant device_class, state_class)
_HA_CLASSES: Final[dict[str, tuple[str | None, str]]] = {
    "Wh": ("energy", "total_increasing"),
    "kWh": ("energy", "total_increasing"),
    "MWh": ("energy", "total_increasing"),
    "W": ("power", "measurement"),
    "kW": ("power", "measurement"),
    "MW": ("power", "measurement"),
    "V": ("voltage", "measurement"),
    "kV": ("voltage", "measurement"),
    "A": ("current", "measurement"),
    "mA": ("current", "measurement"),
    "Hz": ("frequency", "measurement"),
    "VA": ("apparent_power", "measurement"),
    "kVA": ("apparent_power", "measurement"),
    "var": ("reactive_power", "measurement"),
    "kvar": ("reactive_power", "measurement"),
    "varh": (None, "total_increasing"),
    "kvarh": (None, "total_increasing"),
}


def topic_token(text: str) -> str:
    """``text`` as one MQTT topic level / Home Assistant id: letters, digits, ``_`` and ``-``."""
    token = _UNSAFE.sub("_", text)
    if not token:
        raise InputError("a topic level cannot be empty")
    return token


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise ConfigError(f"MQTT URL must be mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    if parsed.username or parsed.password:
        raise ConfigError("put no credentials in the MQTT URL; give username and a password reference")
    tls = parsed.scheme == "mqtts"
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"bad port in MQTT URL {url!r}") from None
    return parsed.hostname, port, tls


def discovery_config(node: str, item: OutboxItem, state_topic: str) -> tuple[str, dict[str, Any]]:
    """The Home Assistant MQTT discovery topic and config for the series of ``item``."""
    meter, code = topic_token(item.meter_id), topic_token(item.obis)
    try:
        label = Obis.parse(item.obis).name or item.obis
    except (InputError, ValueError):
        label = item.obis
    config: dict[str, Any] = {
        "name": label,
        "unique_id": f"metercom_{node}_{meter}_{code}",
        "state_topic": state_topic,
        "device": {
            "identifiers": [f"metercom_{node}_{meter}"],
            "name": f"Meter {item.meter_id}",
            "manufacturer": "metercom",
            "model": "electricity meter",
        },
        "origin": {"name": "metercom"},
    }
    if item.value_kind == "decimal":
        if item.unit:
            config["unit_of_measurement"] = item.unit
        device_class, state_class = _HA_CLASSES.get(item.unit or "", (None, "measurement"))
        if device_class is not None:
            config["device_class"] = device_class
        config["state_class"] = state_class
    return f"homeassistant/sensor/{node}/{meter}_{code}/config", config


class MqttSink:
    """Publishes batches to an MQTT broker for the central receiver (see the module docstring)."""

    def __init__(
        self,
        name: str,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        source: str,
        topic_prefix: str = "metercom",
        username: str | None = None,
        password: SecretRef | Secret | None = None,
        client_id: str | None = None,
        state_topics: bool = True,
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        keepalive_s: int = 60,
        connect_timeout_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        confirm: str = "receiver",
    ) -> None:
        self.host, self.port, tls = parse_mqtt_url(url)
        if confirm not in CONFIRM_MODES:
            raise ConfigError(
                f"confirm is one of {', '.join(CONFIRM_MODES)}, got {confirm!r}", where=f"sink {name}"
            )
        self.confirm = confirm
        if password is not None and username is None:
            raise ConfigError("an MQTT password needs a username", where=f"sink {name}")
        self._name = name
        self.url = url
        self.source = source
        self.node = topic_token(source)
        prefix = topic_prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#"):
            raise ConfigError(f"bad topic prefix {topic_prefix!r}", where=f"sink {name}")
        self.data_topic = f"{prefix}/{self.node}/batches"
        self.reply_topic = f"{prefix}/{self.node}/confirmations"
        self.state_prefix = f"{prefix}/{self.node}/state"
        self.discovery_prefix = discovery_prefix.strip("/")
        self.username = username
        self._password = password
        self.client_id = client_id or f"metercom-{self.node}-{topic_token(name)}"[:128]
        self.state_topics = state_topics
        self.discovery = discovery
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        if tls_context is None and tls:
            tls_context = ssl.create_default_context()
        self._tls = tls_context
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._published: dict[tuple[str, str], datetime] = {}
        self._discovered: set[tuple[str, str]] = set()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"MqttSink({self._name!r}, {self.url!r}, topic={self.data_topic!r})"

    def state_topic(self, item: OutboxItem) -> str:
        return f"{self.state_prefix}/{topic_token(item.meter_id)}/{topic_token(item.obis)}"

    async def _ensure(self) -> aiomqtt.Client:
        if self._client is not None and self._reader is not None and not self._reader.done():
            return self._client
        await self.close()
        password = None
        if self._password is not None:
            password = resolve_secret_text(self._password, f"sink {self._name}")
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=password,
            keepalive=self.keepalive_s,
            timeout=self.connect_timeout_s,
            clean_session=True,
            tls_context=self._tls,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise UploadError(f"sink {self._name}: cannot connect to {self.url}: {exc}") from None
        try:
            if self.confirm == "receiver":
                await client.subscribe(self.reply_topic, qos=1)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
            raise UploadError(f"sink {self._name}: cannot subscribe to {self.reply_topic}: {exc}") from None
        self._client = client
        self._reader = asyncio.create_task(self._read(client), name=f"mqtt-confirmations:{self._name}")
        return client

    async def _read(self, client: aiomqtt.Client) -> None:
        reason = "the connection closed"
        try:
            async for message in client.messages:
                try:
                    batch_id = decode_confirmation(bytes(message.payload))
                except InputError as exc:
                    log.debug("sink %s: ignoring a message on %s: %s", self._name, message.topic, exc)
                    continue
                waiter = self._waiters.get(batch_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        except aiomqtt.MqttError as exc:
            reason = str(exc)
        for waiter in self._waiters.values():
            if not waiter.done():
                error = UploadError(f"sink {self._name}: disconnected from {self.url}: {reason}")
                waiter.set_exception(error)

    async def send(self, batch: OutboxBatch) -> None:
        """Publish ``batch`` and wait for the central's confirmation of its id (with
        ``confirm="broker"``: for the broker's PUBACKs of the batch and the state topics)."""
        client = await self._ensure()
        if self.confirm == "broker":
            try:
                await client.publish(self.data_topic, encode_batch(batch, source=self.source), qos=1)
                await self._publish_state(client, batch)
            except aiomqtt.MqttError as exc:
                await self.close()
                raise UploadError(f"sink {self._name}: publishing to {self.url} failed: {exc}") from None
            return
        payload = encode_batch(batch, source=self.source)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[batch.batch_id] = waiter
        try:
            await client.publish(self.data_topic, payload, qos=1)
            await waiter
        except aiomqtt.MqttError as exc:
            await self.close()
            raise UploadError(f"sink {self._name}: publishing to {self.url} failed: {exc}") from None
        finally:
            self._waiters.pop(batch.batch_id, None)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved, so asyncio does not warn about it
        if self.state_topics or self.discovery:
            try:
                await self._publish_state(client, batch)
            except aiomqtt.MqttError as exc:
                # The batch is confirmed; state topics are a view that the next batch refreshes.
                log.info("sink %s: state topics not updated: %s", self._name, exc)
                await self.close()

    async def _publish_state(self, client: aiomqtt.Client, batch: OutboxBatch) -> None:
        newest: dict[tuple[str, str], OutboxItem] = {}
        for item in filter(is_reading, batch.items):  # profile rows and events have no state topic
            key = (item.meter_id, item.obis)
            if key not in newest or item.capture_time >= newest[key].capture_time:
                newest[key] = item
        publishes = []
        discovered: list[tuple[str, str]] = []
        for key, item in newest.items():
            seen = self._published.get(key)
            if seen is not None and seen > item.capture_time:
                continue
            topic = self.state_topic(item)
            if self.discovery and key not in self._discovered:
                config_topic, config = discovery_config(self.node, item, topic)
                config_topic = config_topic.replace("homeassistant/", f"{self.discovery_prefix}/", 1)
                body = json.dumps(config, separators=(",", ":"), sort_keys=True)
                publishes.append(client.publish(config_topic, body, qos=1, retain=True))
                discovered.append(key)
            if self.state_topics:
                value = item.value_text if item.value_text is not None else ""
                publishes.append(client.publish(topic, value, qos=1, retain=True))
            self._published[key] = item.capture_time
        # A few at a time: aiomqtt warns above ten publishes waiting for their PUBACK.
        for start in range(0, len(publishes), _STATE_CONCURRENCY):
            await asyncio.gather(*publishes[start : start + _STATE_CONCURRENCY])
        self._discovered.update(discovered)

    async def close(self) -> None:
        client, self._client = self._client, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
